"""The memory store: AITBC's ai-memory/ layout, written safely by concurrent runs.

Layout (DESIGN.md):
  daily/YYYY-MM-DD.md            append-only, one entry per run or significant action
  decisions/                     change records (deploys, rollbacks, restores, config changes)
  failures/failure-archive.md    failure patterns
  failures/debugging-notes.md    the debugging playbook, `## <symptom>` sections
  knowledge/environment.md       generated from the inventory
  incidents/                     one record per incident

Appends take a per-file lock and go out in one write() on an O_APPEND descriptor, so concurrent
writers never interleave. Whole-file writes go to a temporary file that is renamed into place.
"""

from __future__ import annotations

import datetime as dt
import os
import re
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path

from filelock import FileLock

AGENT = "ops"
MEMORY_DIR_ENV = "OPSRUNNER_MEMORY_DIR"
DEFAULT_MEMORY_DIR = "ai-memory"
LOCK_TIMEOUT_S = 60

SUBDIRS = ("daily", "decisions", "failures", "knowledge", "incidents")

FAILURE_ARCHIVE_HEADER = """# Failure archive

Failure patterns seen by the ops agent. Each entry: Failure, Cause, Resolution, Detected.
"""


def resolve_memory_dir(explicit: str | os.PathLike[str] | None = None) -> Path:
    """--memory-dir, else $OPSRUNNER_MEMORY_DIR, else ./ai-memory (the runner and callback share this)."""
    chosen = explicit or os.environ.get(MEMORY_DIR_ENV) or DEFAULT_MEMORY_DIR
    return Path(chosen).expanduser().absolute()


def utcnow() -> dt.datetime:
    return dt.datetime.now(dt.UTC).replace(microsecond=0)


def format_time(moment: dt.datetime) -> str:
    return moment.astimezone(dt.UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def parse_time(text: str) -> dt.datetime:
    return dt.datetime.strptime(text, "%Y-%m-%dT%H:%M:%SZ").replace(tzinfo=dt.UTC)


def one_line(text: object, limit: int = 400) -> str:
    """Entries are line-oriented: fold newlines and bound the length."""
    flat = " ⏎ ".join(part.strip() for part in str(text).strip().splitlines() if part.strip())
    return flat if len(flat) <= limit else flat[: limit - 1] + "…"


# -- daily entries ---------------------------------------------------------------------------------

ENTRY_HEADING = "### "
FIELD_RE = re.compile(r"^- \*\*(?P<key>[A-Za-z ]+):\*\* ?(?P<value>.*)$")


@dataclass
class DailyEntry:
    """One entry of daily/YYYY-MM-DD.md: one run or significant action."""

    time: dt.datetime
    event: str
    title: str
    outcome: str
    hosts: list[str] = field(default_factory=list)
    actions: str = ""
    details: list[str] = field(default_factory=list)
    incidents: list[str] = field(default_factory=list)
    run_id: str = ""
    source: str = ""
    agent: str = AGENT

    def to_markdown(self) -> str:
        lines = [
            f"{ENTRY_HEADING}{format_time(self.time)} · {one_line(self.event, 40)} · "
            f"{one_line(self.title, 120)} · {one_line(self.outcome, 40)}",
            f"- **Agent:** {self.agent}",
            f"- **Event:** {one_line(self.event, 40)}",
            f"- **Hosts:** {', '.join(self.hosts) or '-'}",
            f"- **Actions:** {one_line(self.actions) or '-'}",
            f"- **Outcome:** {one_line(self.outcome, 40)}",
            f"- **Incidents:** {', '.join(self.incidents) or 'none'}",
        ]
        lines += [f"- **Detail:** {one_line(detail)}" for detail in self.details]
        lines.append(f"- **Run:** {self.run_id or '-'} ({self.source or '-'})")
        return "\n".join(lines) + "\n\n"

    @classmethod
    def from_markdown(cls, block: str) -> DailyEntry:
        heading, *body = block.strip().splitlines()
        if not heading.startswith(ENTRY_HEADING):
            raise ValueError(f"not a daily entry: {heading[:60]!r}")
        parts = heading[len(ENTRY_HEADING) :].split(" · ")
        if len(parts) < 4:
            raise ValueError(f"malformed entry heading: {heading[:80]!r}")
        fields: dict[str, list[str]] = {}
        for line in body:
            match = FIELD_RE.match(line)
            if match:
                fields.setdefault(match["key"], []).append(match["value"].strip())

        def one(key: str) -> str:
            values = fields.get(key)
            if not values:
                raise ValueError(f"entry {parts[0]} lacks field {key}")
            return values[0]

        run, _, source = one("Run").partition(" (")
        listed = [h.strip() for h in one("Hosts").split(",") if h.strip() and h.strip() != "-"]
        incidents = one("Incidents")
        return cls(
            time=parse_time(parts[0]),
            event=one("Event"),
            title=" · ".join(parts[2:-1]),
            outcome=one("Outcome"),
            hosts=listed,
            actions="" if one("Actions") == "-" else one("Actions"),
            details=fields.get("Detail", []),
            incidents=[] if incidents == "none" else [i.strip() for i in incidents.split(",")],
            run_id="" if run == "-" else run,
            source="" if source.rstrip(")") == "-" else source.rstrip(")"),
            agent=one("Agent"),
        )


def parse_daily(text: str) -> list[DailyEntry]:
    """Entries of a daily file, in the order written."""
    blocks = re.split(r"^(?=### )", text, flags=re.MULTILINE)
    return [DailyEntry.from_markdown(b) for b in blocks if b.startswith(ENTRY_HEADING)]


# -- decision records ------------------------------------------------------------------------------

DECISION_HEADING = "# Decision: "
DECISION_SECTIONS = ("Context", "Rationale", "Impact")
DETAILS_SECTION = "Details"
SLUG_MAX = 48


def paragraph(text: object) -> str:
    """A multi-line paragraph, normalized: no surrounding blank lines, no trailing spaces."""
    return "\n".join(line.rstrip() for line in str(text).strip().splitlines())


def _escape_paragraph(text: str) -> str:
    # A line of the text that starts with '#' would read as a heading (and end the section when parsed).
    # Markdown shows '\#' as '#', and '\\' as '\', so the escape is invisible to a reader and reversible.
    return "\n".join("\\" + line if line.startswith(("#", "\\")) else line for line in text.splitlines())


def _unescape_paragraph(lines: list[str]) -> str:
    return paragraph("\n".join(line[1:] if line.startswith("\\") else line for line in lines))


def slugify(text: object, limit: int = SLUG_MAX) -> str:
    """'Restore wallet DB (t1)' -> 'restore-wallet-db-t1': lowercase ASCII words joined by '-', cut to
    at most `limit` characters at a word boundary."""
    slug = re.sub(r"[^a-z0-9]+", "-", str(text).lower()).strip("-")
    if len(slug) <= limit:
        return slug
    cut = slug[: limit + 1].rpartition("-")[0]  # at a word boundary, unless that loses too much
    return cut if len(cut) >= limit // 2 else slug[:limit].rstrip("-")


@dataclass
class Decision:
    """One change record of decisions/: why a deploy, rollback, restore or config change was made."""

    decision: str
    date: dt.datetime
    kind: str
    context: str = ""
    rationale: str = ""
    impact: str = ""
    hosts: list[str] = field(default_factory=list)
    outcome: str = "ok"
    run_id: str = ""
    details: list[str] = field(default_factory=list)

    def to_markdown(self) -> str:
        lines = [
            f"{DECISION_HEADING}{one_line(self.decision, 200)}",
            "",
            f"- **Date:** {format_time(self.date)}",
            f"- **Kind:** {one_line(self.kind, 40)}",
            f"- **Hosts:** {', '.join(one_line(h, 100) for h in self.hosts) or '-'}",
            f"- **Outcome:** {one_line(self.outcome, 40) or '-'}",
            f"- **Run:** {one_line(self.run_id, 80) or '-'}",
        ]
        for title, text in zip(DECISION_SECTIONS, (self.context, self.rationale, self.impact), strict=True):
            lines += ["", f"## {title}", "", _escape_paragraph(paragraph(text)) or "-"]
        if self.details:
            lines += ["", f"## {DETAILS_SECTION}", ""]
            lines += [f"- {one_line(detail)}" for detail in self.details]
        return "\n".join(lines) + "\n"

    @classmethod
    def from_markdown(cls, text: str) -> Decision:
        heading, *body = text.strip().splitlines() or [""]
        if not heading.startswith(DECISION_HEADING):
            raise ValueError(f"not a decision record: {heading[:60]!r}")
        fields: dict[str, str] = {}
        sections: dict[str, list[str]] = {}
        current: list[str] | None = None
        for line in body:
            if line.startswith("## "):
                current = sections.setdefault(line[3:].strip(), [])
            elif current is not None:
                current.append(line)
            else:
                match = FIELD_RE.match(line)
                if match:
                    fields.setdefault(match["key"], match["value"].strip())

        def one(key: str) -> str:
            if key not in fields:
                raise ValueError(f"decision record {heading[:60]!r} lacks field {key}")
            return "" if fields[key] == "-" else fields[key]

        def section(name: str) -> str:
            if name not in sections:
                raise ValueError(f"decision record {heading[:60]!r} lacks section {name}")
            body_text = _unescape_paragraph(sections[name])
            return "" if body_text == "-" else body_text

        bullets = sections.get(DETAILS_SECTION, [])
        details = [line[2:] for line in bullets if line[:2] in ("- ", "-")]
        return cls(
            decision=heading[len(DECISION_HEADING) :].strip(),
            date=parse_time(one("Date")),
            kind=one("Kind"),
            context=section("Context"),
            rationale=section("Rationale"),
            impact=section("Impact"),
            hosts=[h.strip() for h in one("Hosts").split(",") if h.strip()],
            outcome=one("Outcome"),
            run_id=one("Run"),
            details=details,
        )

    def file_stem(self) -> str:
        """YYYY-MM-DD-HHMMSS-<kind>-<slug> (UTC), the name of its file in decisions/ without '.md'."""
        moment = self.date.astimezone(dt.UTC).strftime("%Y-%m-%d-%H%M%S")
        return f"{moment}-{slugify(self.kind, 32) or 'change'}-{slugify(self.decision) or 'decision'}"


# -- the store -------------------------------------------------------------------------------------


class MemoryStore:
    """Reads and writes the ai-memory tree. Safe for concurrent processes."""

    def __init__(self, root: str | os.PathLike[str] | None = None) -> None:
        self.root = resolve_memory_dir(root)

    def path(self, *parts: str) -> Path:
        return self.root.joinpath(*parts)

    def ensure_layout(self) -> None:
        for sub in SUBDIRS:
            self.path(sub).mkdir(parents=True, exist_ok=True)
        self.path(".locks").mkdir(exist_ok=True)
        archive = self.path("failures", "failure-archive.md")
        if not archive.exists():
            self.write_text("failures/failure-archive.md", FAILURE_ARCHIVE_HEADER, only_if_missing=True)
        notes = self.path("failures", "debugging-notes.md")
        if not notes.exists():
            seed = Path(__file__).with_name("data") / "debugging-notes.md"
            self.write_text("failures/debugging-notes.md", seed.read_text(), only_if_missing=True)

    @contextmanager
    def locked(self, relpath: str) -> Iterator[Path]:
        """Hold the lock that guards one file of the store."""
        lock_dir = self.path(".locks")
        lock_dir.mkdir(parents=True, exist_ok=True)
        lock_name = relpath.replace(os.sep, "__") + ".lock"
        with FileLock(str(lock_dir / lock_name), timeout=LOCK_TIMEOUT_S):
            yield self.path(relpath)

    def write_text(self, relpath: str, text: str, *, only_if_missing: bool = False) -> bool:
        """Replace a file atomically. Returns False when nothing changed."""
        with self.locked(relpath) as target:
            if only_if_missing and target.exists():
                return False
            if target.exists() and target.read_text() == text:
                return False
            atomic_write(target, text)
            return True

    def append(self, relpath: str, text: str, header: str = "") -> Path:
        """Append text in one write; the header goes first when the file is new."""
        with self.locked(relpath) as target:
            target.parent.mkdir(parents=True, exist_ok=True)
            fd = os.open(target, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o640)
            try:
                payload = text
                if os.fstat(fd).st_size == 0 and header:
                    payload = header + text
                write_all(fd, payload.encode())
                os.fsync(fd)
            finally:
                os.close(fd)
            return target

    # daily memory

    def daily_relpath(self, day: dt.date) -> str:
        return f"daily/{day.isoformat()}.md"

    def append_daily(self, entry: DailyEntry) -> Path:
        day = entry.time.astimezone(dt.UTC).date()
        header = f"# Daily memory — {day.isoformat()}\n\nAgent: {AGENT}. One entry per run or action.\n\n"
        return self.append(self.daily_relpath(day), entry.to_markdown(), header=header)

    def read_daily(self, day: dt.date) -> list[DailyEntry]:
        target = self.path(self.daily_relpath(day))
        if not target.exists():
            return []
        return parse_daily(target.read_text())

    def daily_dates(self) -> list[dt.date]:
        dates = []
        for item in sorted(self.path("daily").glob("*.md")):
            try:
                dates.append(dt.date.fromisoformat(item.stem))
            except ValueError:
                continue
        return dates

    # decision records

    def write_decision(self, decision: Decision) -> Path:
        """Write decisions/<date>-<time>-<kind>-<slug>.md; an existing record is never replaced."""
        stem = decision.file_stem()
        text = decision.to_markdown()
        # One lock for the folder: picking a free name and writing it is one step for concurrent runs.
        with self.locked("decisions"):
            folder = self.path("decisions")
            folder.mkdir(parents=True, exist_ok=True)
            target = folder / f"{stem}.md"
            suffix = 1
            while target.exists():
                suffix += 1
                target = folder / f"{stem}-{suffix}.md"
            atomic_write(target, text)
        return target

    def decisions(self) -> list[Decision]:
        """The decision records, oldest first (records that are not ours are skipped)."""
        found = []
        for item in sorted(self.path("decisions").glob("*.md")):
            try:
                found.append(Decision.from_markdown(item.read_text()))
            except ValueError:
                continue
        return sorted(found, key=lambda d: d.date)


def atomic_write(target: Path, text: str | bytes, mode: int = 0o640) -> None:
    """Write to a sibling temporary file, fsync, then rename over the target."""
    target.parent.mkdir(parents=True, exist_ok=True)
    tmp = target.with_name(f".{target.name}.{os.getpid()}.tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, mode)
    try:
        write_all(fd, text if isinstance(text, bytes) else text.encode())
        os.fsync(fd)
    finally:
        os.close(fd)
    os.replace(tmp, target)


def write_all(fd: int, data: bytes) -> None:
    view = memoryview(data)
    while view:
        written = os.write(fd, view)
        view = view[written:]

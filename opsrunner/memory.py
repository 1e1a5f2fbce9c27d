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


def atomic_write(target: Path, text: str, mode: int = 0o640) -> None:
    """Write to a sibling temporary file, fsync, then rename over the target."""
    target.parent.mkdir(parents=True, exist_ok=True)
    tmp = target.with_name(f".{target.name}.{os.getpid()}.tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, mode)
    try:
        write_all(fd, text.encode())
        os.fsync(fd)
    finally:
        os.close(fd)
    os.replace(tmp, target)


def write_all(fd: int, data: bytes) -> None:
    view = memoryview(data)
    while view:
        written = os.write(fd, view)
        view = view[written:]

"""Incident records (ai-memory/incidents/), and the changes backups and deploys make to them.

An incident is keyed by host + service + check and deduplicated on that key: while one is not
resolved, failures update it instead of opening another. Records are Markdown that people read and
this module parses back; each write replaces the file atomically under the store's lock.

Every resolver (the heartbeat, backup verification, deploys, `opsrunner incidents resolve`) saves through
`IncidentStore.save()`, which notices the transition to resolved (against the record on disk) and files
the cause and resolution in failures/failure-archive.md (see failures.py); the record gets an Archive line.

`settle` is the lifecycle of one incident key (open, note, resolve) that backup verification and deploys
share; respond.py turns the changes into pages and tickets.
"""

from __future__ import annotations

import datetime as dt
import logging
import re
from collections.abc import Callable, Iterator
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from . import failures
from .memory import FIELD_RE, MemoryStore, atomic_write, format_time, one_line, parse_time, utcnow

# needs-guidance: a question waits for a person (`opsrunner incidents answer`); remediation of it pauses.
STATUSES = ("open", "acknowledged", "needs-guidance", "resolved")
CATEGORIES = ("ops", "security", "code")
# Who told us: our own heartbeat, monitoring, another agent, a person, or the intake itself (dead-man).
SOURCES = ("heartbeat", "alertmanager", "agent", "manual", "intake")
INCIDENT_DIR = "incidents"
# The heartbeat's state (heartbeat.py); its lock serialises every change to incidents, whoever makes it.
STATE_FILE = "incidents/.heartbeat-state.json"
ID_RE = re.compile(r"^INC-\d{8}-\d{3,}$")
TIMELINE_RE = re.compile(r"^- (?P<time>\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ) (?P<text>.*)$")
# The fields a record cannot be read without.
REQUIRED_FIELDS = ("Status", "Host", "Service", "Check", "Opened", "Updated")
ARCHIVE_LINK = "[failure-archive.md](../failures/failure-archive.md)"

log = logging.getLogger(__name__)


class IncidentError(Exception):
    """An unknown incident id, or a transition that makes no sense (resolving a resolved one)."""


@dataclass
class TimelineEntry:
    time: dt.datetime
    text: str


@dataclass
class Incident:
    id: str
    host: str
    service: str
    check: str
    summary: str
    status: str = "open"
    severity: str = "critical"
    opened: dt.datetime = field(default_factory=utcnow)
    updated: dt.datetime = field(default_factory=utcnow)
    resolved: dt.datetime | None = None
    escalated: bool = False
    restarts: int = 0
    cause: str = ""
    resolution: str = ""
    archive: str = ""  # the failure archive entry (F-xxxxxxxx) it was filed under when resolved
    category: str = "ops"  # ops | security | code
    source: str = "heartbeat"
    fingerprints: list[str] = field(default_factory=list)  # the reporters' identities of this problem
    reported: str = ""  # the reporter's latest word: firing | resolved ("" for the heartbeat's own)
    ticket: str = ""  # the developers' ticket (tracker:id)
    question: str = ""  # what needs-guidance asks
    acknowledged_by: str = ""  # the person (or agent) who took it; pages remind until someone does
    paged: dt.datetime | None = None  # the last page about it (reminders count from here)
    timeline: list[TimelineEntry] = field(default_factory=list)
    diagnostics: str = ""
    debugging_notes: str = ""

    @property
    def key(self) -> str:
        return incident_key(self.host, self.service, self.check)

    @property
    def active(self) -> bool:
        return self.status != "resolved"

    def note(self, text: str, when: dt.datetime | None = None) -> None:
        when = when or utcnow()
        self.timeline.append(TimelineEntry(when, one_line(text, 600)))
        self.updated = when

    def to_markdown(self) -> str:
        fields = [
            ("Status", self.status),
            ("Severity", self.severity),
            ("Host", self.host),
            ("Service", self.service),
            ("Check", self.check),
            ("Opened", format_time(self.opened)),
            ("Updated", format_time(self.updated)),
            ("Resolved", format_time(self.resolved) if self.resolved else "-"),
            ("Escalated", "yes" if self.escalated else "no"),
            ("Restarts", str(self.restarts)),
            ("Cause", one_line(self.cause) or "-"),
            ("Resolution", one_line(self.resolution) or "-"),
        ]
        if self.archive:
            fields.append(("Archive", f"{self.archive} in {ARCHIVE_LINK}"))
        fields += [("Category", self.category), ("Source", self.source)]
        optional = [
            ("Fingerprints", ", ".join(self.fingerprints)),
            ("Reported", self.reported),
            ("Ticket", self.ticket),
            ("Question", one_line(self.question, 600)),
            ("Acknowledged by", one_line(self.acknowledged_by, 120)),
            ("Paged", format_time(self.paged) if self.paged else ""),
        ]
        fields += [(key, value) for key, value in optional if value]
        lines = [f"# {self.id}: {one_line(self.summary, 200)}", ""]
        lines += [f"- **{key}:** {value}" for key, value in fields]
        lines += ["", "## Timeline", ""]
        lines += [f"- {format_time(t.time)} {t.text}" for t in self.timeline]
        if self.diagnostics:
            fence = fence_for(self.diagnostics)
            lines += ["", "## Diagnostics", "", f"{fence}text", self.diagnostics.rstrip(), fence]
        if self.debugging_notes:
            lines += ["", "## Debugging notes", "", self.debugging_notes.rstrip()]
        return "\n".join(lines) + "\n"

    @classmethod
    def from_markdown(cls, text: str) -> Incident:
        """Parse a record. Host text inside it (log lines in the timeline or diagnostics) is data: lines
        end only at a newline (not at U+2028, FS or FF, as str.splitlines would have it) and headings in a
        fence are not headings. A record that lacks its id or fields raises IncidentError."""
        heading, _, rest = text.partition("\n")
        incident_id, _, summary = heading.removeprefix("# ").partition(": ")
        if not ID_RE.match(incident_id):
            raise IncidentError(f"not an incident record (heading {heading[:60]!r})")
        fields: dict[str, str] = {}
        timeline: list[TimelineEntry] = []
        sections = _sections(rest)
        for line in sections.get("", "").split("\n"):
            match = FIELD_RE.match(line)
            if match:
                fields.setdefault(match["key"], match["value"].strip())
        missing = [name for name in REQUIRED_FIELDS if name not in fields]
        if missing:
            raise IncidentError(f"{incident_id}: record lacks {', '.join(missing)}")
        for line in sections.get("Timeline", "").split("\n"):
            match = TIMELINE_RE.match(line)
            if match:
                timeline.append(TimelineEntry(parse_time(match["time"]), match["text"]))
        diagnostics = _unfenced(sections.get("Diagnostics", ""))
        resolved = fields.get("Resolved", "-")
        archive = failures.ENTRY_ID_RE.search(fields.get("Archive", ""))
        return cls(
            id=incident_id,
            host=fields["Host"],
            service=fields["Service"],
            check=fields["Check"],
            summary=summary,
            status=fields["Status"],
            severity=fields.get("Severity", "critical"),
            opened=parse_time(fields["Opened"]),
            updated=parse_time(fields["Updated"]),
            resolved=None if resolved == "-" else parse_time(resolved),
            escalated=fields.get("Escalated") == "yes",
            restarts=int(fields.get("Restarts", "0")),
            cause="" if fields.get("Cause", "-") == "-" else fields["Cause"],
            resolution="" if fields.get("Resolution", "-") == "-" else fields["Resolution"],
            archive=archive.group(0) if archive else "",
            category=_choice(fields.get("Category"), CATEGORIES, "ops"),
            source=_choice(fields.get("Source"), SOURCES, "heartbeat"),
            fingerprints=[f for f in fields.get("Fingerprints", "").split(", ") if FINGERPRINT_RE.match(f)],
            reported=_choice(fields.get("Reported"), ("firing", "resolved"), ""),
            ticket=fields.get("Ticket", ""),
            question=fields.get("Question", ""),
            acknowledged_by=fields.get("Acknowledged by", ""),
            paged=_time_or_none(fields.get("Paged", "")),
            timeline=timeline,
            diagnostics=diagnostics,
            debugging_notes=sections.get("Debugging notes", "").strip(),
        )

    def to_resolution(self) -> failures.Resolution:
        """What the failure archive files of this incident once it is resolved."""
        return failures.Resolution(
            incident=self.id,
            host=self.host,
            service=self.service,
            check=self.check,
            cause=self.cause,
            resolution=self.resolution,
            opened=self.opened,
        )

    def to_dict(self) -> dict[str, Any]:
        data = asdict(self)
        for key in ("opened", "updated", "resolved", "paged"):
            data[key] = format_time(data[key]) if data[key] else None
        data["timeline"] = [{"time": format_time(t.time), "text": t.text} for t in self.timeline]
        return data


FENCE_RE = re.compile(r"^(`{3,})")
FINGERPRINT_RE = re.compile(r"^[A-Za-z0-9_.:-]{1,128}$")


def _choice(value: str | None, allowed: tuple[str, ...], default: str) -> str:
    """A field's value when it is one of ``allowed``: a hand-edited record cannot invent a category."""
    return value if value in allowed else default


def _time_or_none(value: str) -> dt.datetime | None:
    try:
        return parse_time(value) if value else None
    except ValueError:
        return None


def fence_for(text: str) -> str:
    """A code fence longer than any run of backticks in ``text``, so no line of it can close the fence."""
    longest = max((len(run) for run in re.findall(r"`+", text)), default=0)
    return "`" * max(3, longest + 1)


def _unfenced(section: str) -> str:
    """The content of the fenced block of a section."""
    lines = section.strip().split("\n")
    opening = FENCE_RE.match(lines[0]) if lines else None
    if opening is None:
        return section.strip()
    fence = opening.group(1)
    body = lines[1:-1] if len(lines) > 1 and lines[-1].strip() == fence else lines[1:]
    return "\n".join(body).strip()


def _sections(text: str) -> dict[str, str]:
    """Level-2 sections of a record body; '' holds what precedes the first heading. Lines end at a newline
    only, and a `## ` line inside a code fence is content, not a heading."""
    sections: dict[str, list[str]] = {"": []}
    current = ""
    fence = ""
    for line in text.split("\n"):
        opening = FENCE_RE.match(line)
        if fence:
            if opening and line.strip() == opening.group(1) and len(opening.group(1)) >= len(fence):
                fence = ""
        elif opening:
            fence = opening.group(1)
        elif line.startswith("## "):
            current = line[3:].strip()
            sections[current] = []
            continue
        sections[current].append(line)
    return {name: "\n".join(lines) for name, lines in sections.items()}


def incident_key(host: str, service: str, check: str) -> str:
    return f"{host}|{service}|{check}"


class IncidentStore:
    """incidents/<id>.md, one file per incident."""

    def __init__(self, store: MemoryStore) -> None:
        self.store = store

    @property
    def folder(self) -> Path:
        return self.store.path(INCIDENT_DIR)

    def all(self) -> list[Incident]:
        """Every readable record. A stray or broken file under incidents/ is skipped with a warning: it
        must not stop a heartbeat before its pages and its daily entry."""
        if not self.folder.is_dir():
            return []
        found = [incident for path in sorted(self.folder.glob("INC-*.md")) if (incident := _read(path))]
        return sorted(found, key=lambda i: (i.opened, i.id))

    def get(self, incident_id: str) -> Incident:
        if not ID_RE.match(incident_id):
            raise IncidentError(f"not an incident id: {incident_id!r} (expected INC-YYYYMMDD-NNN)")
        path = self.folder / f"{incident_id}.md"
        if not path.is_file():
            raise IncidentError(f"no such incident: {incident_id}")
        return Incident.from_markdown(path.read_text())

    def active(self) -> dict[str, Incident]:
        """Unresolved incidents by key: the deduplication index. Every heartbeat asks, and resolved records
        pile up: their Status is read from the head of the file, and only the others are parsed."""
        if not self.folder.is_dir():
            return {}
        found = [_read(path) for path in sorted(self.folder.glob("INC-*.md")) if not _resolved_head(path)]
        return {i.key: i for i in sorted(filter(None, found), key=lambda i: (i.opened, i.id)) if i.active}

    def save(self, incident: Incident) -> Path:
        """Write the record; on its transition to resolved, file it in the failure archive first."""
        path = self.folder / f"{incident.id}.md"
        with self.store.locked(f"{INCIDENT_DIR}/{incident.id}.md"):
            if incident.status == "resolved" and not incident.archive and not _resolved_on_disk(path):
                _archive(self.store, incident)
            atomic_write(path, incident.to_markdown())
        return path

    def open(
        self,
        host: str,
        service: str,
        check: str,
        summary: str,
        note: str,
        now: dt.datetime,
        *,
        cause: str = "",
        diagnostics: str = "",
        debugging_notes: str = "",
    ) -> Incident:
        """A new incident, opened `now` with the first timeline line `note`; call under the heartbeat lock.
        It is saved at once: that reserves its id before the next one is chosen."""
        incident = Incident(
            id=self.new_id(now),
            host=host,
            service=service,
            check=check,
            summary=summary,
            opened=now,
            updated=now,
            cause=cause,
            diagnostics=diagnostics,
            debugging_notes=debugging_notes,
        )
        incident.note(note, now)
        self.save(incident)
        return incident

    def new_id(self, when: dt.datetime | None = None) -> str:
        """The next free INC-YYYYMMDD-NNN; call under the heartbeat lock."""
        day = (when or utcnow()).strftime("%Y%m%d")
        taken = [int(p.stem.rsplit("-", 1)[1]) for p in self.folder.glob(f"INC-{day}-*.md")]
        return f"INC-{day}-{max(taken, default=0) + 1:03d}"

    def change(self, incident_id: str, action: Callable[[Incident], None]) -> Incident:
        """Load, change and save one incident under the incident lock; `action` raises IncidentError for a
        change that makes no sense."""
        with self.store.locked(STATE_FILE):
            incident = self.get(incident_id)
            action(incident)
            self.save(incident)
        return incident

    def acknowledge(self, incident_id: str, note: str = "", by: str = "operator") -> Incident:
        """A person (or agent) has taken it: reminders stop; an open question stays open."""

        def take(incident: Incident) -> None:
            _require_active(incident, "acknowledge")
            if incident.status == "open":
                incident.status = "acknowledged"
            incident.acknowledged_by = by
            incident.note(f"acknowledged by {by}{': ' + note if note else ''}")

        return self.change(incident_id, take)

    def add_note(self, incident_id: str, text: str, by: str = "operator") -> Incident:
        def add(incident: Incident) -> None:
            if not text.strip():
                raise IncidentError("a note needs some text")
            incident.note(f"note by {by}: {text}")

        return self.change(incident_id, add)

    def ask(self, incident_id: str, question: str, by: str = "operator") -> Incident:
        """Put it in needs-guidance: remediation of it pauses until `answer`."""

        def put(incident: Incident) -> None:
            _require_active(incident, "ask about")
            if not question.strip():
                raise IncidentError("needs-guidance needs a question")
            incident.status, incident.question = "needs-guidance", one_line(question, 600)
            incident.note(f"needs guidance (asked by {by}): {question}")

        return self.change(incident_id, put)

    def answer(self, incident_id: str, text: str, by: str = "operator") -> Incident:
        """Record the answer to its question; remediation resumes (status acknowledged: a person spoke)."""

        def reply(incident: Incident) -> None:
            if incident.status != "needs-guidance":
                raise IncidentError(f"{incident.id} asks nothing (status {incident.status})")
            if not text.strip():
                raise IncidentError("an answer needs some text")
            incident.status, incident.question = "acknowledged", ""
            incident.acknowledged_by = incident.acknowledged_by or by
            incident.note(f"answered by {by}: {text}; remediation resumes")

        return self.change(incident_id, reply)

    def resolve(
        self, incident_id: str, cause: str = "", resolution: str = "", by: str = "operator"
    ) -> Incident:
        def end(incident: Incident) -> None:
            if not incident.active:
                raise IncidentError(f"{incident_id} is already resolved")
            close(incident, f"resolved by {by}", cause=cause, resolution=resolution)

        return self.change(incident_id, end)


def _require_active(incident: Incident, what: str) -> None:
    if not incident.active:
        raise IncidentError(f"{incident.id} is resolved; nothing to {what}")


def _read(path: Path) -> Incident | None:
    """The record in ``path``, or None (with a warning) when it is not one, or its id is not its name."""
    try:
        incident = Incident.from_markdown(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeError, ValueError, IncidentError) as exc:
        log.warning("skipping %s: %s", path.name, exc)
        return None
    if incident.id != path.stem:
        log.warning("skipping %s: it holds the record of %s", path.name, incident.id)
        return None
    return incident


# The fields block of a record is its first lines; a resolved record says so there.
HEAD_BYTES = 4096
RESOLVED_FIELD = "- **Status:** resolved"


def _resolved_head(path: Path) -> bool:
    """Does the record's fields block (before its first `## ` heading) say resolved? A cheap read of the
    file's head; anything unclear is False, and the full parse decides."""
    try:
        with path.open("rb") as handle:
            head = handle.read(HEAD_BYTES).decode("utf-8", "replace")
    except OSError:
        return False
    fields = head.split("\n## ", 1)[0].split("\n")
    return RESOLVED_FIELD in fields[1:]


def _resolved_on_disk(path: Path) -> bool:
    """Is the saved record resolved? Its Status field, parsed: a logged status line elsewhere is data."""
    if not path.is_file():
        return False
    saved = _read(path)
    return saved is not None and saved.status == "resolved"


def _archive(store: MemoryStore, incident: Incident) -> None:
    """File a resolved incident in the failure archive. A broken archive never stops the resolve."""
    try:
        incident.archive = failures.record_resolution(store, incident.to_resolution())
    except Exception as exc:  # noqa: BLE001 - the resolution itself must be saved whatever happens here
        log.warning("failure archive not updated for %s: %s", incident.id, exc)
        incident.note(f"failure archive not updated: {type(exc).__name__}: {exc}", incident.resolved)
        return
    incident.note(f"filed in the failure archive as {incident.archive}", incident.resolved)


def close(incident: Incident, text: str, cause: str = "", resolution: str = "") -> None:
    now = utcnow()
    incident.status = "resolved"
    incident.resolved = now
    incident.cause = cause or incident.cause
    incident.resolution = resolution or incident.resolution
    incident.note(text, now)


def debugging_section(store: MemoryStore, service: str, check: str) -> str:
    """The `## <symptom>` section of failures/debugging-notes.md that best matches a failure."""
    path = store.path("failures", "debugging-notes.md")
    if not path.is_file():
        return ""
    sections = {name: body for name, body in _sections(path.read_text()).items() if name}
    # Most specific first: the whole check ("backup freshness"), the check without its service prefix
    # ("disk" of "host disk"), the service, then single words. "host" alone says nothing.
    rest = check.split(" ", 1)[1] if check.startswith(f"{service} ") else check
    phrases = [p for p in (check, rest, service if service != "host" else "") if p]
    phrases += [w for w in rest.split() if w != "host"]
    for phrase in phrases:
        for name, body in sections.items():
            if name.lower().startswith(phrase.lower()):
                return f"### {name}\n{body.strip()}"
    for phrase in phrases:
        for name, body in sections.items():
            if phrase.lower() in name.lower():
                return f"### {name}\n{body.strip()}"
    return ""


def iter_incidents(store: MemoryStore, status: str | None = None) -> Iterator[Incident]:
    for incident in IncidentStore(store).all():
        if status is None or incident.status == status:
            yield incident


# -- changes decided from a run's results ----------------------------------------------------------

# An incident change decided outside the heartbeat: (kind: opened | noted | resolved, incident, text).
IncidentChange = tuple[str, Incident, str]


def settle(
    incidents: IncidentStore,
    active: dict[str, Incident],
    host: str,
    service: str,
    check: str,
    *,
    ok: bool,
    detail: str,
    summary: str,
    cause: str = "",
    default_cause: str = "",
    resolution: str = "",
    repeat: str = "still failing",
    detail_in_run: bool = False,
) -> IncidentChange | None:
    """Bring the incident of (host, service, check) in line with a check's latest result; saves what it
    changes and returns the change to report (None: nothing to report). Call it inside `decide` of
    `record_incident_changes`, which holds the incident lock; `active` is updated with what it opens.

    - ok, one active: closed with `resolved: <detail>`, its cause (the one recorded when it opened, else
      `default_cause`) and `resolution`: ("resolved", incident, "<id> resolved: <summary>").
    - ok, none active: None.
    - failing, one active: noted as `<repeat>: <detail>`: ("noted", incident, "<id> still open: <detail>").
    - failing, none active: opened with `summary` and `cause`, noted as `opened: <detail>`:
      ("opened", incident, "<id> opened: <summary>: <detail>").

    `detail_in_run`: the caller has put `detail` in the run's details already, so the texts leave it out
    and a repeat is only noted in the timeline (None).
    """
    key = incident_key(host, service, check)
    incident = active.get(key)
    now = utcnow()
    if ok:
        if incident is None:
            return None
        close(
            incident,
            f"resolved: {detail}",
            cause=incident.cause or default_cause,
            resolution=resolution,
        )
        incidents.save(incident)
        return "resolved", incident, f"{incident.id} resolved: {incident.summary}"
    if incident is not None:
        incident.note(f"{repeat}: {detail}", now)
        incidents.save(incident)
        return None if detail_in_run else ("noted", incident, f"{incident.id} still open: {detail}")
    notes = debugging_section(incidents.store, service, check)
    incident = incidents.open(
        host, service, check, summary, f"opened: {detail}", now, cause=cause, debugging_notes=notes
    )
    active[key] = incident
    text = f"{incident.id} opened: {incident.summary}"
    return "opened", incident, text if detail_in_run else f"{text}: {detail}"

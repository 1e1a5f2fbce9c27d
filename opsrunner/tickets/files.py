"""The file tracker (the default): one Markdown ticket per signature in <memory>/tickets/.

    # TICKET-0001: coordinator-api /health failing after 3 restarts

    - **Status:** open
    - **Signature:** F-1a2b3c4d
    - **Incident:** INC-20261204-001
    - **Failure:** F-1a2b3c4d
    - **Opened:** 2026-12-04T10:00:00Z
    - **Updated:** 2026-12-04T10:00:00Z
    - **Closed:** -

    ## Description

    ```text
    (the caller's text, fenced: host output is data)
    ```

    ## Notes

    - 2026-12-04T10:00:00Z opened
    - 2026-12-04T11:00:00Z seen again: INC-20261204-004

Parsing follows the incident records (incidents.py): lines end at "\\n" only, a `## ` line inside the fence
is content, and only the block before the first heading holds fields, so no text of a body or a note can
change a field. Every write takes the store's lock for the folder and replaces the file atomically.
"""

from __future__ import annotations

import datetime as dt
import re
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path

from ..incidents import _sections, _unfenced, fence_for
from ..memory import FIELD_RE, MemoryStore, atomic_write, format_time, one_line, parse_time, utcnow
from .base import Ticket, TicketRequest, TrackerError

TICKET_DIR = "tickets"
ID_RE = re.compile(r"^TICKET-\d{4,}$")
NOTE_RE = re.compile(r"^- (?P<time>\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ) (?P<text>.*)$")
REQUIRED_FIELDS = ("Status", "Signature", "Opened", "Updated")
NOTE_LIMIT = 2000


@dataclass
class Note:
    time: dt.datetime
    text: str


@dataclass
class TicketRecord:
    """One ticket file."""

    id: str
    title: str
    signature: str
    status: str = "open"
    incident: str = ""
    failure: str = ""
    description: str = ""
    opened: dt.datetime = field(default_factory=utcnow)
    updated: dt.datetime = field(default_factory=utcnow)
    closed: dt.datetime | None = None
    notes: list[Note] = field(default_factory=list)

    def note(self, text: str, when: dt.datetime | None = None) -> None:
        when = when or utcnow()
        self.notes.append(Note(when, one_line(text, NOTE_LIMIT)))
        self.updated = when

    def to_markdown(self) -> str:
        fields = [
            ("Status", self.status),
            ("Signature", one_line(self.signature, 200)),
            ("Incident", self.incident or "-"),
            ("Failure", self.failure or "-"),
            ("Opened", format_time(self.opened)),
            ("Updated", format_time(self.updated)),
            ("Closed", format_time(self.closed) if self.closed else "-"),
        ]
        lines = [f"# {self.id}: {one_line(self.title, 200)}", ""]
        lines += [f"- **{key}:** {value}" for key, value in fields]
        fence = fence_for(self.description)
        lines += ["", "## Description", "", f"{fence}text", self.description.rstrip(), fence]
        lines += ["", "## Notes", ""]
        lines += [f"- {format_time(n.time)} {n.text}" for n in self.notes]
        return "\n".join(lines) + "\n"

    @classmethod
    def from_markdown(cls, text: str) -> TicketRecord:
        heading, _, rest = text.partition("\n")
        ticket_id, _, title = heading.removeprefix("# ").partition(": ")
        if not ID_RE.match(ticket_id):
            raise ValueError(f"not a ticket record (heading {heading[:60]!r})")
        sections = _sections(rest)
        fields: dict[str, str] = {}
        for line in sections.get("", "").split("\n"):
            match = FIELD_RE.match(line)
            if match:
                fields.setdefault(match["key"], match["value"].strip())
        missing = [name for name in REQUIRED_FIELDS if name not in fields]
        if missing:
            raise ValueError(f"{ticket_id}: record lacks {', '.join(missing)}")
        if fields["Status"] not in ("open", "closed"):
            raise ValueError(f"{ticket_id}: unknown status {fields['Status'][:20]!r}")
        notes = []
        for line in sections.get("Notes", "").split("\n"):
            match = NOTE_RE.match(line)
            if match:
                notes.append(Note(parse_time(match["time"]), match["text"]))
        closed = fields.get("Closed", "-")
        return cls(
            id=ticket_id,
            title=title,
            signature=fields["Signature"],
            status=fields["Status"],
            incident=_optional(fields.get("Incident", "-")),
            failure=_optional(fields.get("Failure", "-")),
            description=_unfenced(sections.get("Description", "")),
            opened=parse_time(fields["Opened"]),
            updated=parse_time(fields["Updated"]),
            closed=None if closed == "-" else parse_time(closed),
            notes=notes,
        )


def _optional(value: str) -> str:
    return "" if value == "-" else value


class FileTracker:
    """Tickets as Markdown files in <memory>/tickets/TICKET-NNNN.md."""

    name = "file"

    def __init__(self, store: MemoryStore) -> None:
        self.store = store

    @property
    def folder(self) -> Path:
        return self.store.path(TICKET_DIR)

    def find(self, signature: str) -> Ticket | None:
        wanted = one_line(signature, 200)
        found = [record for record in self._records() if record.signature == wanted]
        if not found:
            return None
        # An open one first (a second could only come from a hand-made copy), else the newest.
        best = min(found, key=lambda r: (r.status != "open", -int(r.id.split("-")[1])))
        return self._ticket(best)

    def get(self, ticket_id: str) -> TicketRecord:
        path = self._path(ticket_id)
        try:
            return TicketRecord.from_markdown(path.read_text(encoding="utf-8"))
        except FileNotFoundError:
            raise TrackerError(f"no such ticket: {ticket_id}") from None
        except (OSError, UnicodeError, ValueError) as exc:
            raise TrackerError(f"ticket {ticket_id} cannot be read: {one_line(exc, 200)}") from None

    def create(self, request: TicketRequest) -> Ticket:
        now = utcnow()
        with self._locked():
            record = TicketRecord(
                id=self._next_id(),
                title=request.title,
                signature=request.signature,
                incident=request.incident,
                failure=request.failure,
                description=request.body,
                opened=now,
                updated=now,
            )
            record.note(_opened_text(request), now)
            self._write(record)
        return self._ticket(record)

    def note(self, ticket_id: str, text: str) -> None:
        self._change(ticket_id, text, status=None)

    def reopen(self, ticket_id: str, text: str) -> None:
        self._change(ticket_id, f"reopened: {text}", status="open")

    def close(self, ticket_id: str, text: str) -> None:
        self._change(ticket_id, f"closed: {text}", status="closed")

    # internals

    def _change(self, ticket_id: str, text: str, status: str | None) -> None:
        with self._locked():
            record = self.get(ticket_id)
            now = utcnow()
            if status is not None:
                record.status = status
                record.closed = now if status == "closed" else None
            record.note(text, now)
            self._write(record)

    @contextmanager
    def _locked(self) -> Iterator[None]:
        """The folder's lock; a lock or disk failure (filelock's Timeout is an OSError) is a TrackerError."""
        try:
            with self.store.locked(TICKET_DIR):
                yield
        except OSError as exc:
            raise TrackerError(f"ticket store: {one_line(exc, 200)}") from None

    def _path(self, ticket_id: str) -> Path:
        if not ID_RE.match(ticket_id):
            raise TrackerError(f"not a file ticket id: {ticket_id[:40]!r} (expected TICKET-NNNN)")
        return self.folder / f"{ticket_id}.md"

    def _next_id(self) -> str:
        taken = [int(p.stem.split("-")[1]) for p in self.folder.glob("TICKET-*.md") if ID_RE.match(p.stem)]
        return f"TICKET-{max(taken, default=0) + 1:04d}"

    def _write(self, record: TicketRecord) -> None:
        atomic_write(self._path(record.id), record.to_markdown())

    def _records(self) -> list[TicketRecord]:
        """Every readable ticket; a stray or broken file is skipped (it must not hide the others)."""
        if not self.folder.is_dir():
            return []
        found = []
        for path in sorted(self.folder.glob("TICKET-*.md")):
            try:
                record = TicketRecord.from_markdown(path.read_text(encoding="utf-8"))
            except (OSError, UnicodeError, ValueError):
                continue
            if record.id == path.stem:
                found.append(record)
        return found

    def _ticket(self, record: TicketRecord) -> Ticket:
        path = self.folder / f"{record.id}.md"
        return Ticket(
            id=record.id,
            url=path.as_uri(),
            status=record.status,
            tracker=self.name,
            signature=record.signature,
        )


def _opened_text(request: TicketRequest) -> str:
    links = [link for link in (request.incident, request.failure) if link]
    return "opened" + (f" for {', '.join(links)}" if links else "")

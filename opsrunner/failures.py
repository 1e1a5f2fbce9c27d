"""The failure archive (ai-memory/failures/failure-archive.md): one entry per failure pattern.

A resolved incident becomes an occurrence of the entry for its stable signature: the service, the check
(without the service's own prefix) and the cause, normalised so ids, counts and versions do not split one
pattern into many. The entry id is `F-` + the first 8 hex digits of the signature's SHA-1, so the same
failure always lands on the same entry, whatever else the file holds. A repeat links the new incident
under the entry's Occurrences instead of adding a duplicate.

    ## F-3f0c2a1b: coordinator-api /health failing — service down

    - **Failure:** coordinator-api /health failing
    - **Cause:** service down
    - **Resolution:** restarted coordinator-api by the heartbeat
    - **Detected:** 2026-11-23T10:00:00Z
    - **Signature:** `coordinator-api|/health|service down`
    - **Occurrences:** 2
      - [INC-20261123-001](../incidents/INC-20261123-001.md) 2026-11-23T10:00:00Z t2
      - [INC-20261124-003](../incidents/INC-20261124-003.md) 2026-11-24T08:30:00Z t1

Sections that are not entries (written by hand, or moved from proposed-signatures.md) and unknown lines
inside an entry are kept as they are. The file is read, changed and replaced atomically under the store's
lock for it, so concurrent resolvers lose no link.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import re
from dataclasses import dataclass, field

from .memory import (
    FAILURE_ARCHIVE_HEADER,
    FIELD_RE,
    MemoryStore,
    atomic_write,
    format_time,
    one_line,
    parse_time,
)

ARCHIVE = "failures/failure-archive.md"
ENTRY_ID_RE = re.compile(r"F-[0-9a-f]{8}")
HEADING_RE = re.compile(r"^## (?P<id>F-[0-9a-f]{8}): ?(?P<title>.*)$")
OCCURRENCE_RE = re.compile(
    r"^\s+- \[(?P<incident>[^\]]+)\]\([^)]*\) (?P<time>\S+) (?P<host>\S+)(?: — (?P<note>.*))?$"
)
TITLE_SEPARATOR = " — "
UNKNOWN_CAUSE = "unknown cause"
REACHABILITY_CHECK = "reachable"  # the check of a host's reachability (the heartbeat's, incidents')
DEPLOY_CHECK = "deploy"  # the check of a deploy's health gate (a rolled-back release's incident)


# -- signatures ------------------------------------------------------------------------------------


def normalise(text: str) -> str:
    """Lowercase words with ids, hex digests and numbers replaced, so repeats of one cause compare equal."""
    flat = one_line(text, 400).lower()
    flat = re.sub(r"\b(?:inc-\d{8}-\d+|[0-9a-f]{8,})\b", "<id>", flat)
    flat = re.sub(r"\d+(?:\.\d+)*", "<n>", flat)
    flat = re.sub(r"[\s|`]+", " ", flat)
    return flat.strip(" .,;:!")


def check_name(service: str, check: str) -> str:
    """The check without its service prefix: 'coordinator-api /health' -> '/health'."""
    return check[len(service) + 1 :] if check.startswith(f"{service} ") else check


def signature(service: str, check: str, cause: str) -> str:
    return "|".join(
        (normalise(service), normalise(check_name(service, check)), normalise(cause) or UNKNOWN_CAUSE)
    )


def entry_id(sig: str) -> str:
    return "F-" + hashlib.sha1(sig.encode()).hexdigest()[:8]


def failure_text(service: str, check: str) -> str:
    """What failed, without the host: 'coordinator-api /health failing', 'host unreachable'."""
    if check == REACHABILITY_CHECK:
        return "host unreachable"
    return f"{service} {check_name(service, check)} failing"


# -- entries ---------------------------------------------------------------------------------------


@dataclass
class Occurrence:
    incident: str
    time: dt.datetime
    host: str
    note: str = ""

    def to_markdown(self) -> str:
        note = f"{TITLE_SEPARATOR}{one_line(self.note, 200)}" if self.note else ""
        link = f"[{self.incident}](../incidents/{self.incident}.md)"
        return f"  - {link} {format_time(self.time)} {self.host or '-'}{note}"


@dataclass
class FailureEntry:
    id: str
    title: str
    failure: str
    cause: str
    resolution: str
    detected: dt.datetime
    signature: str = ""
    occurrences: list[Occurrence] = field(default_factory=list)
    extra: list[str] = field(default_factory=list)  # lines we do not know (notes added by hand)

    def to_markdown(self) -> str:
        lines = [
            f"## {self.id}: {one_line(self.title, 200)}",
            "",
            f"- **Failure:** {one_line(self.failure) or '-'}",
            f"- **Cause:** {one_line(self.cause) or '-'}",
            f"- **Resolution:** {one_line(self.resolution) or '-'}",
            f"- **Detected:** {format_time(self.detected)}",
        ]
        if self.signature:
            lines.append(f"- **Signature:** `{self.signature}`")
        lines += self.extra
        lines.append(f"- **Occurrences:** {len(self.occurrences)}")
        lines += [occurrence.to_markdown() for occurrence in self.occurrences]
        return "\n".join(lines) + "\n"

    @classmethod
    def from_markdown(cls, text: str) -> FailureEntry:
        heading, *body = text.rstrip("\n").splitlines()
        match = HEADING_RE.match(heading)
        if not match:
            raise ValueError(f"not a failure archive entry: {heading[:60]!r}")
        fields: dict[str, str] = {}
        occurrences: list[Occurrence] = []
        extra: list[str] = []
        for line in body:
            _parse_line(line, fields, occurrences, extra)
        while extra and not extra[0].strip():
            extra.pop(0)
        while extra and not extra[-1].strip():
            extra.pop()

        def value(key: str) -> str:
            found = fields.get(key, "-")
            return "" if found == "-" else found

        return cls(
            id=match["id"],
            title=match["title"].strip(),
            failure=value("Failure"),
            cause=value("Cause"),
            resolution=value("Resolution"),
            detected=_detected(value("Detected"), occurrences),
            signature=value("Signature").strip("`"),
            occurrences=occurrences,
            extra=extra,
        )

    def linked(self, incident_id: str) -> bool:
        return any(o.incident == incident_id for o in self.occurrences)


KNOWN_FIELDS = ("Failure", "Cause", "Resolution", "Detected", "Signature", "Occurrences")


def _parse_line(line: str, fields: dict[str, str], occurrences: list[Occurrence], extra: list[str]) -> None:
    match = FIELD_RE.match(line)
    if match and match["key"] in KNOWN_FIELDS and match["key"] not in fields:
        fields[match["key"]] = match["value"].strip()
        return
    occurrence = OCCURRENCE_RE.match(line)
    if occurrence:
        try:
            when = parse_time(occurrence["time"])
        except ValueError:
            extra.append(line)
            return
        host = "" if occurrence["host"] == "-" else occurrence["host"]
        occurrences.append(Occurrence(occurrence["incident"], when, host, occurrence["note"] or ""))
        return
    extra.append(line)


def _detected(text: str, occurrences: list[Occurrence]) -> dt.datetime:
    """The Detected field; a missing or hand-mangled one falls back to the first occurrence."""
    try:
        return parse_time(text)
    except ValueError:
        return min((o.time for o in occurrences), default=dt.datetime(1970, 1, 1, tzinfo=dt.UTC))


# -- the archive file ------------------------------------------------------------------------------


@dataclass
class Archive:
    """The archive file as blocks: the preamble, then sections; entries parsed, other sections verbatim."""

    preamble: str
    blocks: list[FailureEntry | str] = field(default_factory=list)

    @classmethod
    def parse(cls, text: str) -> Archive:
        preamble, *sections = re.split(r"(?m)^(?=## )", text)
        blocks: list[FailureEntry | str] = []
        for section in sections:
            try:
                blocks.append(FailureEntry.from_markdown(section))
            except ValueError:
                blocks.append(section)
        return cls(preamble, blocks)

    def render(self) -> str:
        out = self.preamble
        for block in self.blocks:
            if out.strip() and not out.endswith("\n\n"):
                out = out.rstrip("\n") + "\n\n"
            out += block.to_markdown() if isinstance(block, FailureEntry) else block
        return out

    def entries(self) -> list[FailureEntry]:
        return [block for block in self.blocks if isinstance(block, FailureEntry)]

    def find(self, wanted_id: str) -> FailureEntry | None:
        return next((e for e in self.entries() if e.id == wanted_id), None)

    def holding(self, incident_id: str) -> FailureEntry | None:
        return next((e for e in self.entries() if e.linked(incident_id)), None)


def read_archive(store: MemoryStore) -> Archive:
    path = store.path(ARCHIVE)
    return Archive.parse(path.read_text() if path.is_file() else FAILURE_ARCHIVE_HEADER)


# -- recording a resolution ------------------------------------------------------------------------


@dataclass(frozen=True)
class Resolution:
    """What the archive needs of a resolved incident (`Incident.to_resolution()` builds it)."""

    incident: str  # the incident id, INC-YYYYMMDD-NNN
    host: str
    service: str
    check: str
    cause: str
    resolution: str
    opened: dt.datetime


def entry_for(resolved: Resolution) -> FailureEntry:
    """A new entry describing the failure an incident was."""
    sig = signature(resolved.service, resolved.check, resolved.cause)
    failure = failure_text(resolved.service, resolved.check)
    cause = one_line(resolved.cause) or UNKNOWN_CAUSE
    return FailureEntry(
        id=entry_id(sig),
        title=f"{failure}{TITLE_SEPARATOR}{one_line(cause, 120)}",
        failure=failure,
        cause=cause,
        resolution=one_line(resolved.resolution),
        detected=resolved.opened,
        signature=sig,
    )


def occurrence_of(resolved: Resolution, entry: FailureEntry) -> Occurrence:
    """The incident as a link; its own resolution is noted when it differs from the entry's."""
    own = one_line(resolved.resolution)
    note = own if own and own != entry.resolution else ""
    return Occurrence(resolved.incident, resolved.opened, resolved.host, note)


def record_resolution(store: MemoryStore, resolved: Resolution) -> str:
    """Add the resolved incident to the archive, or link it to the known entry; returns the entry id.

    Idempotent: an incident already linked anywhere in the archive is not linked again.
    """
    with store.locked(ARCHIVE) as path:
        archive = Archive.parse(path.read_text() if path.is_file() else FAILURE_ARCHIVE_HEADER)
        known = archive.holding(resolved.incident)
        if known is not None:
            return known.id
        fresh = entry_for(resolved)
        entry = archive.find(fresh.id)
        if entry is None:
            entry = fresh
            archive.blocks.append(entry)
        _update(entry, resolved)
        atomic_write(path, archive.render())
        return entry.id


def _update(entry: FailureEntry, resolved: Resolution) -> None:
    """Link the incident; fill what the entry lacks, keep what it has (people may have edited it)."""
    entry.resolution = entry.resolution or one_line(resolved.resolution)
    entry.detected = min(entry.detected, resolved.opened)
    entry.occurrences.append(occurrence_of(resolved, entry))
    entry.occurrences.sort(key=lambda o: (o.time, o.incident))

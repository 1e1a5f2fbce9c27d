"""The spool: a write-ahead log of every accepted request, on disk before its 202, kept until the handler
has had all its reports.

A request is logged as it was received: its kind, when it came, which of its reports were new (the rest
were duplicates) and its body's bytes. Replay parses the body again with the same parser and the same
received time, so logging costs one write of bytes already in hand. Internal reports (the dead-man's
switch) are logged as the JSON of the report, kind "report".

Layout: <memory dir>/intake/spool/NNNNNNNNNNNN.log, segments of SEGMENT_BYTES, mode 0600. A segment is
filled with zeros when it is made (the file and the folder fsynced then), so a commit of the requests that
arrived together is one pwrite and one fdatasync: no file is created, renamed or removed per request, and
the fdatasync has no metadata to journal (measured: about half the time of an fsynced new file, and a new
file would also need its folder fsynced). A segment is removed once it is full and all its reports are
handled. A record is a header line (kind, received, keep, size, crc32 of the body), the body and a
newline; the first record that is not whole (zeros: the end; anything else: a torn last write, never
acknowledged) ends its segment.

The worker notes how many reports of each segment it has handled in progress.json after every batch
(written in place, not fsynced: a process crash keeps it, a power loss replays from further back). Replay
skips them: a restart does not handle a report twice, a power loss may (at least once, never lost).
"""

from __future__ import annotations

import contextlib
import datetime as dt
import json
import logging
import os
import threading
import time
import zlib
from dataclasses import dataclass, field, fields
from pathlib import Path
from typing import Any

from ..reports import Report
from .schema import PARSERS

log = logging.getLogger("opsrunner.intake")

SPOOL_DIR = "intake/spool"
SUFFIX = ".log"
PROGRESS_FILE = "progress.json"
SEGMENT_BYTES = (
    1 << 20
)  # about 700 Alertmanager groups of 5 alerts; one is made about every 1/4 s at full load
ZEROS = bytes(64 << 10)
REPORT_KIND = "report"

REPORT_FIELDS = [f.name for f in fields(Report)]


def report_to_json(report: Report) -> dict[str, Any]:
    # By hand rather than dataclasses.asdict, whose deep copies cost more than the rest of a request.
    data = {name: getattr(report, name) for name in REPORT_FIELDS}
    data["labels"] = dict(report.labels)
    data["received"] = report.received.isoformat()
    return data


def report_from_json(data: dict[str, Any]) -> Report:
    values = dict(data)
    values["received"] = dt.datetime.fromisoformat(values["received"])
    values["labels"] = {str(k): str(v) for k, v in (values.get("labels") or {}).items()}
    return Report(**values)


# -- records -------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Entry:
    """One accepted request as received. `keep` lists the indices of its reports that were new; None: all."""

    kind: str  # a key of schema.PARSERS, or REPORT_KIND
    body: bytes
    received: dt.datetime
    keep: list[int] | None = None

    @classmethod
    def of_report(cls, report: Report) -> Entry:
        body = json.dumps(report_to_json(report), separators=(",", ":")).encode()
        return cls(REPORT_KIND, body, report.received)

    def encode(self) -> bytes:
        """The header line (JSON written by hand: every value is a fixed word, a time or numbers, and this
        runs once per request), the body and a newline."""
        if self.kind != REPORT_KIND and self.kind not in PARSERS:
            raise ValueError(f"unknown kind {self.kind!r}")
        keep = "null" if self.keep is None else "[" + ",".join(map(str, self.keep)) + "]"
        header = (
            f'{{"kind":"{self.kind}","received":"{self.received.isoformat()}","keep":{keep},'
            f'"size":{len(self.body)},"crc":{zlib.crc32(self.body)}}}\n'
        )
        return header.encode() + self.body + b"\n"

    def reports(self) -> list[Report]:
        """The reports it was accepted with. Raises ValueError (a FieldError too) when it cannot be read."""
        if self.kind == REPORT_KIND:
            return [report_from_json(json.loads(self.body))]
        parser = PARSERS.get(self.kind)
        if parser is None:
            raise ValueError(f"unknown kind {self.kind!r}")
        reports = parser(self.body, self.received).reports
        return reports if self.keep is None else [reports[n] for n in self.keep]


def decode_record(data: bytes, at: int) -> tuple[Entry, int] | None:
    """The record at `at` and where the next one starts, or None when there is no whole record there."""
    end = data.find(b"\n", at)
    if end < 0 or data[at : at + 1] in (b"", b"\0"):
        return None
    try:
        header = json.loads(data[at:end])
        size, crc = header["size"], header["crc"]
        body = data[end + 1 : end + 1 + size]
        if len(body) != size or data[end + 1 + size : end + 2 + size] != b"\n" or zlib.crc32(body) != crc:
            return None
        received = dt.datetime.fromisoformat(header["received"])
        keep = header.get("keep")
        entry = Entry(str(header["kind"]), body, received, None if keep is None else [int(n) for n in keep])
    except (ValueError, TypeError, KeyError):
        return None
    return entry, end + 2 + size


def decode_segment(data: bytes, name: str = "") -> list[Entry]:
    """The whole records of a segment, in order; a torn tail is logged and left out."""
    entries: list[Entry] = []
    at = 0
    while (found := decode_record(data, at)) is not None:
        entry, at = found
        entries.append(entry)
    if data[at:].strip(b"\0"):
        log.warning("spool %s: a torn record at byte %d (never acknowledged): left out", name, at)
    return entries


# -- segments ------------------------------------------------------------------------------------------


@dataclass(eq=False)
class Segment:
    """A segment file and its reports: queued from it (by the loop) and handled (by the worker)."""

    path: Path
    queued: int = 0
    handled: int = 0
    sealed: bool = False  # no more writes: it goes once its reports are handled
    lock: threading.Lock = field(default_factory=threading.Lock)

    def pending(self) -> int:
        return self.queued - self.handled


class Spool:
    """The log of one intake server. append() is called under the caller's lock (the event loop and the
    dead-man's thread both write); handled() by the worker."""

    def __init__(self, folder: Path, segment_bytes: int = SEGMENT_BYTES) -> None:
        self.folder = folder
        self.folder.mkdir(parents=True, exist_ok=True, mode=0o700)
        self.segment_bytes = segment_bytes
        self.segments: list[Segment] = []  # live: not yet removed, oldest first
        self.current: Segment | None = None
        self.fd = -1
        self.used = 0
        self.size = 0
        self.last_number = 0
        self.progress_bytes = 0  # the longest progress text written: a shorter one is padded over it

    # writing

    def append(self, entries: list[Entry], reports: int) -> Segment:
        """Log the entries (with `reports` reports between them), durably; raises OSError."""
        data = b"".join(entry.encode() for entry in entries)
        if self.current is None or self.used + len(data) > self.size:
            self._next_segment(len(data))
        assert self.current is not None
        try:
            if os.pwrite(self.fd, data, self.used) != len(data):
                raise OSError(f"short write to {self.current.path.name}")
            os.fdatasync(self.fd)
        except OSError:
            # A failed fdatasync may have dropped pages it did not write: nothing more goes to this
            # segment (what it holds beyond its last whole record is a torn tail, never acknowledged).
            self.close_segment()
            raise
        self.used += len(data)
        with self.current.lock:
            self.current.queued += reports
        return self.current

    def _next_segment(self, need: int) -> None:
        """Seal the current segment and start a new one, zero-filled and fsynced (file and folder)."""
        size = max(self.segment_bytes, need)
        # Named by the clock, after every segment there is or was: a name is never used twice, so the
        # progress of a segment that is gone can never apply to a new one.
        numbers = [int(p.stem) for p in self.segment_files()]
        self.last_number = max([time.time_ns(), self.last_number + 1, *(n + 1 for n in numbers)])
        path = self.folder / f"{self.last_number:020d}{SUFFIX}"
        fd = os.open(path, os.O_RDWR | os.O_CREAT | os.O_EXCL, 0o600)
        try:
            for offset in range(0, size, len(ZEROS)):
                os.write(fd, ZEROS[: min(len(ZEROS), size - offset)])
            os.fsync(fd)
            folder = os.open(self.folder, os.O_RDONLY)
            try:
                os.fsync(folder)
            finally:
                os.close(folder)
        except BaseException:
            os.close(fd)
            path.unlink(missing_ok=True)
            raise
        self.close_segment()
        self.current, self.fd, self.used, self.size = Segment(path), fd, 0, size
        self.segments.append(self.current)

    def close_segment(self) -> None:
        """Seal the current segment (it goes now if it is done)."""
        if self.current is None:
            return
        os.close(self.fd)
        segment, self.current, self.fd = self.current, None, -1
        with segment.lock:
            segment.sealed = True
            done = segment.pending() == 0
        if done:
            self._remove(segment)

    # handling

    def handled(self, segment: Segment) -> None:
        """One more report of `segment` handled (in order); a sealed segment goes with its last report."""
        with segment.lock:
            segment.handled += 1
            done = segment.sealed and segment.pending() == 0
        if done:
            self._remove(segment)

    def save_progress(self) -> None:
        """How many reports of each live segment are handled (in place, not fsynced: see the module doc)."""
        progress = {s.path.name: s.handled for s in list(self.segments) if s.handled}
        data = json.dumps(progress, separators=(",", ":")).encode()
        self.progress_bytes = max(self.progress_bytes, len(data))
        fd = os.open(self.folder / PROGRESS_FILE, os.O_WRONLY | os.O_CREAT, 0o600)
        try:
            os.pwrite(fd, data.ljust(self.progress_bytes), 0)  # spaces over a longer text: still JSON
        finally:
            os.close(fd)

    def _remove(self, segment: Segment) -> None:
        segment.path.unlink(missing_ok=True)
        with contextlib.suppress(ValueError):  # already gone
            self.segments.remove(segment)

    # state

    def segment_files(self) -> list[Path]:
        return sorted(p for p in self.folder.iterdir() if p.suffix == SUFFIX and p.stem.isdigit())

    def pending(self) -> int:
        """Reports logged and not handled yet."""
        return sum(s.pending() for s in list(self.segments))

    # replay

    def progress(self) -> dict[str, int]:
        try:
            saved = json.loads((self.folder / PROGRESS_FILE).read_bytes())
        except (OSError, ValueError):
            return {}
        if not isinstance(saved, dict):
            return {}
        return {str(k): v for k, v in saved.items() if isinstance(v, int) and v > 0}

    def load(self) -> list[tuple[Segment, list[Report]]]:
        """The logged reports not handled yet, by segment, in arrival order; the segments become live and
        sealed (new requests go to a new one). A record that cannot be read back is logged and its bytes
        kept in <segment>.bad; the others go on."""
        done = self.progress()
        loaded = self._load_legacy_files()
        for path in self.segment_files():
            try:
                entries = decode_segment(path.read_bytes(), path.name)
            except OSError as exc:
                log.error("spool %s cannot be read: %s", path.name, exc)
                continue
            reports = [r for entry in entries for r in self._reports_of(entry, path)]
            skip = min(done.get(path.name, 0), len(reports))
            segment = Segment(path, queued=len(reports), handled=skip, sealed=True)
            self.last_number = max(self.last_number, int(path.stem))
            if segment.pending():
                self.segments.append(segment)
                loaded.append((segment, reports[skip:]))
            else:
                path.unlink(missing_ok=True)
        return loaded

    def _load_legacy_files(self) -> list[tuple[Segment, list[Report]]]:
        """Spool files of the earlier layout (one JSON list of reports per request): each is a sealed
        segment of its own, removed once handled."""
        loaded = []
        for path in sorted(self.folder.glob("[0-9]*.json")):
            try:
                reports = [report_from_json(item) for item in json.loads(path.read_text())]
            except (OSError, ValueError, TypeError, KeyError) as exc:
                log.error("spool file %s cannot be read (%s): kept as %s.bad", path.name, exc, path.name)
                path.rename(path.with_name(path.name + ".bad"))
                continue
            segment = Segment(path, queued=len(reports), sealed=True)
            if reports:
                self.segments.append(segment)
                loaded.append((segment, reports))
            else:
                path.unlink(missing_ok=True)
        return loaded

    def _reports_of(self, entry: Entry, path: Path) -> list[Report]:
        try:
            return entry.reports()
        except (ValueError, TypeError, KeyError, IndexError) as exc:  # FieldError: a ValueError
            log.error(
                "spool %s: a %s record cannot be read back (%s): kept in %s.bad",
                path.name,
                entry.kind,
                exc,
                path.name,
            )
            # 0600 like the segment: the record is a request as received, secrets and all.
            fd = os.open(path.with_name(path.name + ".bad"), os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o600)
            with os.fdopen(fd, "ab") as out:
                out.write(entry.encode())
            return []

    def close(self) -> None:
        """At a stop: the current segment is sealed (and goes when all its reports were handled); with
        nothing left to replay, the progress goes too."""
        self.close_segment()
        if not self.segments:
            (self.folder / PROGRESS_FILE).unlink(missing_ok=True)

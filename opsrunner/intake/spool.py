"""The spool: every accepted request on disk before its 202, until the handler has had all its reports.

A request is spooled as it was received: its kind, the time it was received, which of its reports were
new (the rest were duplicates), and its body's bytes. Replay parses the body again with the same parser
and the same received time, so the spool costs one write of bytes already in hand and no encoding.
Internal reports (the dead-man's switch) are spooled as the JSON of the report, kind "report".

Files under <memory dir>/intake/spool/, written atomically (a temporary file, fsync, rename) with mode 0600,
named so that name order is arrival order. Requests that arrive together are written together in one file
(group commit: one fsync for all of them); a request is never split across files. At startup the files
left by a stop or crash are replayed in order, so nothing accepted is lost (a file handled in part when the
server died is handled again in full: the handler sees its first reports twice rather than never). A file
that cannot be read back, torn or refused by today's parser, is set aside as .bad, never dropped.
"""

from __future__ import annotations

import datetime as dt
import itertools
import json
import logging
import os
import time
from dataclasses import dataclass, fields
from pathlib import Path
from typing import Any

from ..memory import atomic_write
from ..reports import Report
from .schema import PARSERS

log = logging.getLogger("opsrunner.intake")

SPOOL_DIR = "intake/spool"
PROGRESS_FILE = ".progress.json"  # how much of one file was handled when the server last stopped
SUFFIX = ".json"
REPORT_KIND = "report"

REPORT_FIELDS = [f.name for f in fields(Report)]


def report_to_json(report: Report) -> dict[str, Any]:
    # By hand rather than dataclasses.asdict, whose deep copies cost more than the rest of a request.
    data = {name: getattr(report, name) for name in REPORT_FIELDS}
    data["labels"] = dict(report.labels)
    data["received"] = report.received.isoformat()
    return data


def report_from_json(data: dict[str, Any]) -> Report:
    fields = dict(data)
    fields["received"] = dt.datetime.fromisoformat(fields["received"])
    fields["labels"] = {str(k): str(v) for k, v in (fields.get("labels") or {}).items()}
    return Report(**fields)


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
        """A header line (kind, received, keep, size), then the body and a newline."""
        header = {"kind": self.kind, "received": self.received.isoformat(), "keep": self.keep}
        header["size"] = len(self.body)
        return json.dumps(header, separators=(",", ":")).encode() + b"\n" + self.body + b"\n"

    def reports(self) -> list[Report]:
        """The reports it was accepted with. Raises ValueError (a FieldError too) when it cannot be read."""
        if self.kind == REPORT_KIND:
            return [report_from_json(json.loads(self.body))]
        parser = PARSERS.get(self.kind)
        if parser is None:
            raise ValueError(f"unknown kind {self.kind!r}")
        reports = parser(self.body, self.received).reports
        return reports if self.keep is None else [reports[n] for n in self.keep]


def decode_entries(data: bytes) -> list[Entry]:
    """The entries of a spool file. Raises ValueError when it is torn or not ours."""
    entries = []
    at = 0
    while at < len(data):
        end = data.index(b"\n", at)
        header = json.loads(data[at:end])
        size = header["size"]
        if not isinstance(size, int) or size < 0:
            raise ValueError("bad size")
        body = data[end + 1 : end + 1 + size]
        if len(body) != size or data[end + 1 + size : end + 2 + size] != b"\n":
            raise ValueError("torn entry")
        received = dt.datetime.fromisoformat(header["received"])
        entries.append(Entry(str(header["kind"]), body, received, header.get("keep")))
        at = end + 2 + size
    return entries


class Spool:
    def __init__(self, folder: Path) -> None:
        self.folder = folder
        self.folder.mkdir(parents=True, exist_ok=True, mode=0o700)
        self._counter = itertools.count()

    def next_path(self) -> Path:
        """The file of the next commit: its name sorts after every earlier one's."""
        return self.folder / f"{time.time_ns():020d}-{os.getpid()}-{next(self._counter):08d}{SUFFIX}"

    def write_at(self, target: Path, entries: list[Entry]) -> None:
        """Write the entries of one or more requests (thread-safe for different targets)."""
        atomic_write(target, b"".join(entry.encode() for entry in entries), mode=0o600)

    def write(self, entries: list[Entry]) -> Path:
        target = self.next_path()
        self.write_at(target, entries)
        return target

    def remove(self, path: Path) -> None:
        path.unlink(missing_ok=True)

    def files(self) -> list[Path]:
        return sorted(
            p for p in self.folder.iterdir() if p.name.endswith(SUFFIX) and not p.name.startswith(".")
        )

    def save_progress(self, path: Path, handled: int) -> None:
        """Record at a graceful stop that the first `handled` reports of `path` were handled."""
        text = json.dumps({"file": path.name, "handled": handled})
        atomic_write(self.folder / PROGRESS_FILE, text, mode=0o600)

    def take_progress(self) -> tuple[str, int]:
        """The progress saved at the last graceful stop, (file name, reports handled), then forgotten: a
        crash before that file is done replays it in full (at least once, never lost)."""
        target = self.folder / PROGRESS_FILE
        try:
            saved = json.loads(target.read_text())
            progress = (str(saved["file"]), int(saved["handled"]))
        except (OSError, ValueError, TypeError, KeyError):
            progress = ("", 0)
        target.unlink(missing_ok=True)
        return progress

    def load(self) -> list[tuple[Path, list[Report]]]:
        """The spooled files' reports not handled yet, in arrival order. A file that cannot be read is set
        aside (renamed .bad), never silently dropped."""
        done_file, done = self.take_progress()
        loaded = []
        for path in self.files():
            try:
                reports = [r for entry in decode_entries(path.read_bytes()) for r in entry.reports()]
            except (OSError, ValueError, TypeError, KeyError, IndexError) as exc:  # FieldError: a ValueError
                log.error("spool file %s cannot be read (%s): kept as %s.bad", path.name, exc, path.name)
                path.rename(path.with_name(path.name + ".bad"))
                continue
            if path.name == done_file:
                reports = reports[done:]
            if reports:
                loaded.append((path, reports))
            else:
                self.remove(path)
        return loaded

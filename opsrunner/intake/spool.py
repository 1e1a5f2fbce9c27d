"""The spool: every accepted request's reports on disk before the 202, until the handler has had them all.

Files under <memory dir>/intake/spool/, written atomically (a temporary file, fsync, rename) with mode 0600,
named so that name order is arrival order. Requests that arrive while a file is being written are written
together in the next file (group commit: one fsync for all of them rather than one each, the difference
between about 1,000 and several thousand requests a second); a request's reports are never split across
files. At startup the files left by a stop or crash are replayed in order, so nothing accepted is lost (a
file handled in part when the server died is handled again in full: the handler sees its first reports
twice rather than never).
"""

from __future__ import annotations

import datetime as dt
import itertools
import json
import logging
import os
import time
from dataclasses import fields
from pathlib import Path
from typing import Any

from ..memory import atomic_write
from ..reports import Report

log = logging.getLogger("opsrunner.intake")

SPOOL_DIR = "intake/spool"
SUFFIX = ".json"


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


class Spool:
    def __init__(self, folder: Path) -> None:
        self.folder = folder
        self.folder.mkdir(parents=True, exist_ok=True, mode=0o700)
        self._counter = itertools.count()

    def next_path(self) -> Path:
        """The file of the next request: its name sorts after every earlier one's."""
        return self.folder / f"{time.time_ns():020d}-{os.getpid()}-{next(self._counter):08d}{SUFFIX}"

    def write_at(self, target: Path, reports: list[Report]) -> None:
        """Write the reports of one or more requests (thread-safe for different targets)."""
        text = json.dumps([report_to_json(r) for r in reports], separators=(",", ":"))
        atomic_write(target, text, mode=0o600)

    def write(self, reports: list[Report]) -> Path:
        target = self.next_path()
        self.write_at(target, reports)
        return target

    def remove(self, path: Path) -> None:
        path.unlink(missing_ok=True)

    def files(self) -> list[Path]:
        return sorted(
            p for p in self.folder.iterdir() if p.name.endswith(SUFFIX) and not p.name.startswith(".")
        )

    def load(self) -> list[tuple[Path, list[Report]]]:
        """The spooled files' reports, in arrival order. A file that cannot be read is set aside (renamed
        .bad), never silently dropped."""
        loaded = []
        for path in self.files():
            try:
                reports = [report_from_json(item) for item in json.loads(path.read_text())]
            except (OSError, ValueError, TypeError, KeyError) as exc:
                log.error("spool file %s cannot be read (%s): kept as %s.bad", path.name, exc, path.name)
                path.rename(path.with_name(path.name + ".bad"))
                continue
            loaded.append((path, reports))
        return loaded

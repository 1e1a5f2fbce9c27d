# -*- coding: utf-8 -*-
# Copyright: (c) 2025, aitbc-ops developers
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""The log section: the tail of each service's log file and journal."""

from __future__ import annotations

import os
import shutil
import time
from typing import Any

from ansible_collections.aitbc.ops.plugins.module_utils._commands import CommandError, run_command
from ansible_collections.aitbc.ops.plugins.module_utils._text import first_line, iso_from_epoch
from ansible_collections.aitbc.ops.plugins.module_utils.diagnostics.base import check_deadline, describe_error
from ansible_collections.aitbc.ops.plugins.module_utils.diagnostics.context import HostContext

LOG_BLOCK = 64 * 1024
LOG_MAX_BYTES = 4 * 1024 * 1024
LOG_LINE_MAX_CHARS = 2000
# journalctl -n prints at most MAX_LOG_LINES lines; the cap only guards against a runaway journal.
JOURNAL_MAX_OUTPUT = 64 * 1024 * 1024


def clip_line(line: str) -> str:
    return line if len(line) <= LOG_LINE_MAX_CHARS else line[: LOG_LINE_MAX_CHARS - 3] + "..."


def tail_lines(path: str, n: int, max_bytes: int = LOG_MAX_BYTES) -> tuple[list[str], dict[str, Any]]:
    """The last ``n`` lines of a file, read backwards from the end in blocks: the cost depends on the
    size of those lines, not of the file. At most ``max_bytes`` are read.

    Returns ``(lines, info)``; info has size_bytes, modified_at, age_s and truncated (true when the
    byte limit cut the tail short)."""
    with open(path, "rb") as handle:
        stat = os.fstat(handle.fileno())
        pos = end = stat.st_size
        chunks, newlines = [], 0
        while n > 0 and pos > 0 and newlines <= n and end - pos < max_bytes:
            step = min(LOG_BLOCK, pos, max_bytes - (end - pos))
            pos -= step
            handle.seek(pos)
            chunk = handle.read(step)
            chunks.append(chunk)
            newlines += chunk.count(b"\n")
    info = {
        "size_bytes": stat.st_size,
        "modified_at": iso_from_epoch(stat.st_mtime),
        "age_s": round(max(0.0, time.time() - stat.st_mtime), 1),
        "truncated": False,
    }
    if n <= 0:
        return [], info
    data = b"".join(reversed(chunks))
    if data.endswith(b"\n"):
        data = data[:-1]
    pieces = data.split(b"\n") if data else []
    if pos > 0 and len(pieces) > 1:
        pieces = pieces[1:]  # the first piece starts mid-line
    lines = [clip_line(p.decode("utf-8", "replace").rstrip("\r")) for p in pieces[-n:]]
    info["truncated"] = pos > 0 and len(lines) < n
    return lines, info


class LogSections(HostContext):
    """logs."""

    def _journal(self, unit: str, deadline: float) -> dict[str, Any]:
        entry = {"source": "journal", "unit": unit, "lines": []}
        if not shutil.which("journalctl"):
            entry["note"] = "journalctl not found"
            return entry
        argv = ["journalctl", "-u", unit, "-n", str(self.log_lines), "--no-pager"]
        try:
            rc, out, err = run_command(argv, deadline - time.monotonic(), max_output=JOURNAL_MAX_OUTPUT)
        except CommandError as exc:
            entry["error"] = "journalctl timed out" if exc.timed_out else str(exc)
            return entry
        lines = [clip_line(line) for line in out.splitlines() if line.strip() != "-- No entries --"]
        entry["lines"] = lines[-self.log_lines :] if self.log_lines else []
        if rc != 0:
            entry["note"] = f"journalctl exited {rc}: {first_line(err) or first_line(out)}"
        elif not lines and first_line(err):
            entry["note"] = first_line(err)
        return entry

    def section_logs(self, deadline: float) -> dict[str, Any]:
        out = {}
        for svc in self.services:
            check_deadline(deadline)
            journal_unit = svc["journal_unit"] or (svc["unit"] if not svc["log_file"] else None)
            if svc["log_file"]:
                entry = {"source": "file", "path": svc["log_file"]}
                try:
                    lines, info = tail_lines(svc["log_file"], self.log_lines)
                    entry.update(info, lines=lines)
                except OSError as exc:
                    entry["error"] = describe_error(exc)
                if journal_unit:
                    entry["journal"] = self._journal(journal_unit, deadline)
            elif journal_unit:
                entry = self._journal(journal_unit, deadline)
            else:
                entry = {"source": None, "lines": [], "note": "no log_file, journal_unit or unit given"}
            out[svc["name"]] = entry
        return {"services": out, "lines_requested": self.log_lines}

# -*- coding: utf-8 -*-
# Copyright: (c) 2025, aitbc-ops developers
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""The restarts section: a restarts file of JSON lines, or systemd's NRestarts."""

from __future__ import annotations

import datetime
import json
import os
import shutil
import time
from typing import Any

from ansible_collections.aitbc.ops.plugins.module_utils._commands import CommandError, run_command
from ansible_collections.aitbc.ops.plugins.module_utils._text import first_line, iso_from_epoch
from ansible_collections.aitbc.ops.plugins.module_utils.diagnostics.base import (
    check_deadline,
    systemd_running,
)
from ansible_collections.aitbc.ops.plugins.module_utils.diagnostics.context import HostContext

RESTARTS_MAX_BYTES = 8 * 1024 * 1024
RESTARTS_WINDOW_S = 24 * 3600


def parse_time(value: object) -> float | None:
    """A restarts-file time: epoch seconds (number or numeric string) or ISO 8601 -> epoch, or None."""
    if isinstance(value, bool):
        return None
    if isinstance(value, (int, float)):
        return float(value)
    if not isinstance(value, str) or not value.strip():
        return None
    text = value.strip()
    try:
        return float(text)
    except ValueError:
        pass
    if text.endswith(("Z", "z")):
        text = text[:-1] + "+00:00"
    try:
        parsed = datetime.datetime.fromisoformat(text)
    except ValueError:
        return None
    if parsed.tzinfo is None:
        parsed = parsed.replace(tzinfo=datetime.UTC)
    return parsed.timestamp()


def count_restarts(
    lines: list[str], names: list[str], now: float, window: float = RESTARTS_WINDOW_S
) -> tuple[dict[str, dict[str, Any]], int]:
    """JSON lines {"time": ..., "service": ...} -> {name: {"count": n, "last": iso or None}} for the
    entries of the last ``window`` seconds. Lines that do not parse are counted in ``bad_lines``."""
    out = {name: {"count": 0, "last": None} for name in names}
    latest = {}
    bad = 0
    since = now - window
    for line in lines:
        line = line.strip()
        if not line:
            continue
        try:
            doc = json.loads(line)
        except ValueError:
            bad += 1
            continue
        if not isinstance(doc, dict):
            bad += 1
            continue
        name = doc.get("service")
        when = parse_time(doc.get("time"))
        if when is None or not isinstance(name, str):
            bad += 1
            continue
        if name in out and since <= when <= now + 300:
            out[name]["count"] += 1
            if when > latest.get(name, 0.0):
                latest[name] = when
                out[name]["last"] = iso_from_epoch(when)
    return out, bad


class RestartSections(HostContext):
    """restarts."""

    def section_restarts(self, deadline: float) -> dict[str, Any]:
        names = [svc["name"] for svc in self.services]
        if self.restarts_file:
            with open(self.restarts_file, "rb") as handle:
                size = handle.seek(0, os.SEEK_END)
                start = max(0, size - RESTARTS_MAX_BYTES)
                handle.seek(start)
                data = handle.read()
            lines = data.decode("utf-8", "replace").splitlines()
            if start > 0 and lines:
                lines = lines[1:]  # starts mid-line
            counts, bad = count_restarts(lines, names, time.time())
            services = {
                name: {"source": "file", "last_24h": c["count"], "last": c["last"]}
                for name, c in counts.items()
            }
            return {
                "source": "file",
                "path": self.restarts_file,
                "window_s": RESTARTS_WINDOW_S,
                "bad_lines": bad,
                "services": services,
            }
        have_systemd = bool(shutil.which("systemctl")) and systemd_running()
        services = {}
        for svc in self.services:
            check_deadline(deadline)
            unit = svc["unit"] or svc["journal_unit"]
            if not unit:
                services[svc["name"]] = {"source": None, "note": "no restarts_file and no systemd unit"}
                continue
            if not have_systemd:
                services[svc["name"]] = {"source": None, "unit": unit, "note": "systemd is not running"}
                continue
            entry = {"source": "systemd", "unit": unit}
            try:
                rc, out, err = run_command(
                    ["systemctl", "show", "-p", "NRestarts", unit], deadline - time.monotonic()
                )
            except CommandError as exc:
                entry["error"] = "systemctl timed out" if exc.timed_out else str(exc)
            else:
                value = out.strip().partition("=")[2]
                if rc == 0 and value.isdigit():
                    entry["nrestarts"] = int(value)
                else:
                    entry["note"] = first_line(err) or f"no NRestarts for {unit}"
            services[svc["name"]] = entry
        return {"source": "systemd" if have_systemd else None, "services": services}

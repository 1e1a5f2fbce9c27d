# -*- coding: utf-8 -*-
# Copyright: (c) 2025, aitbc-ops developers
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""The processes of each service: how they were found, and their details from /proc."""

from __future__ import annotations

import os
import shutil
import time
from typing import Any

from ansible_collections.aitbc.ops.plugins.module_utils._commands import run_command
from ansible_collections.aitbc.ops.plugins.module_utils._procs import CLK_TCK
from ansible_collections.aitbc.ops.plugins.module_utils._text import first_line, iso_from_epoch
from ansible_collections.aitbc.ops.plugins.module_utils.diagnostics.base import (
    check_deadline,
    describe_error,
    systemd_running,
)
from ansible_collections.aitbc.ops.plugins.module_utils.diagnostics.sockets import SocketSections

MAX_PIDS_PER_SERVICE = 20
MAX_CHILDREN = 50
CMDLINE_MAX_CHARS = 1000

STATE_NAMES = {
    "R": "running",
    "S": "sleeping",
    "D": "disk sleep",
    "Z": "zombie",
    "T": "stopped",
    "t": "tracing stop",
    "X": "dead",
    "I": "idle",
    "P": "parked",
    "W": "paging",
}


class ProcessSections(SocketSections):
    """processes (a port is located through the socket scan)."""

    def _process_table(self, deadline: float) -> dict[int, dict[str, Any]]:
        table = {}
        for pid in self._pids():
            check_deadline(deadline)
            stat = self._stat(pid)
            if stat is not None:
                table[pid] = stat
        return table

    def _find_by_name(
        self, pattern: str, table: dict[int, dict[str, Any]], skip: set[int], deadline: float
    ) -> list[int]:
        found = []
        for pid, stat in table.items():
            if pid in skip:
                continue
            if stat["comm"] == pattern:
                found.append(pid)
                continue
            check_deadline(deadline)
            if pattern in self._cmdline(pid):
                found.append(pid)
        return sorted(found)

    def _unit_main_pid(self, unit: str, deadline: float) -> tuple[int | None, str | None]:
        if not (shutil.which("systemctl") and systemd_running()):
            return None, "systemd is not running"
        rc, out, err = run_command(["systemctl", "show", "-p", "MainPID", unit], deadline - time.monotonic())
        if rc != 0:
            return None, f"systemctl show: {first_line(err) or f'exit {rc}'}"
        value = out.strip().partition("=")[2]
        pid = int(value) if value.isdigit() else 0
        return (pid or None), None if pid else f"unit {unit} has no main process"

    def _locate(
        self, svc: dict[str, Any], table: dict[int, dict[str, Any]], skip: set[int], deadline: float
    ) -> tuple[list[int], str | None, str | None]:
        """(pids, found_by, note) for one service: pidfile, then process, then unit, then port."""
        if svc["pidfile"]:
            try:
                with open(svc["pidfile"], encoding="ascii", errors="replace") as handle:
                    text = handle.read(64).strip()
            except OSError as exc:
                return [], "pidfile", f"pidfile: {describe_error(exc)}"
            if not text.isdigit():
                return [], "pidfile", f"pidfile {svc['pidfile']} holds no pid"
            pid = int(text)
            if pid not in table and self._stat(pid) is None:
                return [], "pidfile", f"stale pidfile: no process {pid}"
            return [pid], "pidfile", None
        if svc["process"]:
            pids = self._find_by_name(svc["process"], table, skip, deadline)
            return pids, "process", None if pids else f"no process matches {svc['process']!r}"
        if svc["unit"]:
            pid, note = self._unit_main_pid(svc["unit"], deadline)
            return ([pid] if pid else []), "unit", note
        if svc["port"]:
            sockets = self.listening_sockets(deadline)["listening"]
            pids = sorted({s["pid"] for s in sockets if s["port"] == svc["port"] and s["pid"]})
            return pids, "port", None if pids else f"no process found listening on port {svc['port']}"
        return [], None, "no pidfile, process, unit or port given"

    def _status(self, pid: int) -> dict[str, str]:
        out = {}
        try:
            text = self._read(pid, "status")
        except OSError:
            return out
        for line in text.splitlines():
            key, _sep, value = line.partition(":")
            if key in ("State", "VmRSS", "Threads", "Uid"):
                out[key] = value.strip()
        return out

    def _max_open_files(self, pid: int) -> int | None:
        try:
            text = self._read(pid, "limits")
        except OSError:
            return None
        for line in text.splitlines():
            if line.startswith("Max open files"):
                soft = line[len("Max open files") :].split()[0]
                return int(soft) if soft.isdigit() else None
        return None

    def _rss(self, status: dict[str, str]) -> int | None:
        parts = status.get("VmRSS", "").split()
        return int(parts[0]) * 1024 if parts and parts[0].isdigit() else None

    def process_detail(
        self,
        pid: int,
        table: dict[int, dict[str, Any]],
        children_of: dict[int, list[int]],
        boot: float,
        now: float,
    ) -> dict[str, Any]:
        stat = table.get(pid) or self._stat(pid)
        if stat is None:
            return {"pid": pid, "error": "process is gone"}
        status = self._status(pid)
        cmdline = self._cmdline(pid)
        try:
            open_files = len(os.listdir(self._path(pid, "fd")))
        except OSError:
            open_files = None
        started = boot + stat["starttime"] / CLK_TCK
        uid = status.get("Uid", "").split()
        children = []
        for child in children_of.get(pid, [])[:MAX_CHILDREN]:
            cstat = table[child]
            children.append(
                {
                    "pid": child,
                    "command": cstat["comm"],
                    "state": cstat["state"],
                    "rss_bytes": self._rss(self._status(child)),
                }
            )
        return {
            "pid": pid,
            "ppid": stat["ppid"],
            "command": stat["comm"],
            "cmdline": cmdline[:CMDLINE_MAX_CHARS],
            "state": stat["state"],
            "state_name": STATE_NAMES.get(stat["state"], stat["state"]),
            "user": self._user(int(uid[0])) if uid and uid[0].isdigit() else None,
            "rss_bytes": self._rss(status),
            "threads": stat["threads"],
            "open_files": open_files,
            "max_open_files": self._max_open_files(pid),
            "cpu_time_s": round((stat["utime"] + stat["stime"]) / CLK_TCK, 2),
            "started_at": iso_from_epoch(started),
            "uptime_s": round(max(0.0, now - started), 1),
            "children_count": len(children_of.get(pid, [])),
            "children": children,
        }

    def section_processes(self, deadline: float) -> dict[str, Any]:
        table = self._process_table(deadline)
        children_of = {}
        for pid, stat in table.items():
            children_of.setdefault(stat["ppid"], []).append(pid)
        skip = self._own_lineage()
        boot, now = self._boot_time(), time.time()
        port_open = None
        if any(svc["port"] for svc in self.services):
            try:
                port_open = {s["port"] for s in self.listening_sockets(deadline)["listening"]}
            except OSError:
                port_open = None
        out = {}
        for svc in self.services:
            check_deadline(deadline)
            entry = {}
            try:
                pids, found_by, note = self._locate(svc, table, skip, deadline)
                entry = {"found_by": found_by, "pids": pids, "running": bool(pids)}
                if note:
                    entry["note"] = note
                if svc["port"]:
                    entry["port"] = svc["port"]
                    entry["port_listening"] = None if port_open is None else svc["port"] in port_open
                entry["processes"] = [
                    self.process_detail(pid, table, children_of, boot, now)
                    for pid in pids[:MAX_PIDS_PER_SERVICE]
                ]
            except TimeoutError:
                raise
            except Exception as exc:  # noqa: BLE001 - one service's failure stays with it
                entry["error"] = describe_error(exc)
            out[svc["name"]] = entry
        return {"services": out, "process_count": len(table)}

# -*- coding: utf-8 -*-
# Copyright: (c) 2025, aitbc-ops developers
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""The context every section collector shares: the options of the run and access to /proc."""

from __future__ import annotations

import os
import pwd
import threading
from typing import Any

from ansible_collections.aitbc.ops.plugins.module_utils._procs import parse_btime, parse_stat
from ansible_collections.aitbc.ops.plugins.module_utils.diagnostics.base import (
    DEFAULT_LOG_LINES,
    MAX_LOG_LINES,
    DiagnosticsError,
)
from ansible_collections.aitbc.ops.plugins.module_utils.diagnostics.options import validate_services


class HostContext:
    """One collection run. ``proc`` is the procfs root (tests point it elsewhere to make sections fail
    for real)."""

    def __init__(
        self,
        services: Any = (),
        log_lines: int = DEFAULT_LOG_LINES,
        restarts_file: str | None = None,
        proc: str = "/proc",
        mounts_file: str | None = None,
    ) -> None:
        self.services = validate_services(services)
        if (
            isinstance(log_lines, bool)
            or not isinstance(log_lines, int)
            or not 0 <= log_lines <= MAX_LOG_LINES
        ):
            raise DiagnosticsError(f"log_lines must be between 0 and {MAX_LOG_LINES}, got {log_lines!r}")
        self.log_lines = log_lines
        self.restarts_file = restarts_file
        self.proc = proc
        self.mounts_file = mounts_file or os.path.join(proc, "mounts")
        self._socket_lock = threading.Lock()
        self._sockets: dict[str, Any] | None = None
        self._users: dict[int, str] = {}

    def _path(self, *parts: object) -> str:
        return os.path.join(self.proc, *(str(p) for p in parts))

    def _read(self, *parts: object) -> str:
        with open(self._path(*parts), "rb") as handle:
            return handle.read().decode("utf-8", "replace")

    def _pids(self) -> list[int]:
        return sorted(int(e) for e in os.listdir(self.proc) if e.isdigit())

    def _stat(self, pid: int) -> dict[str, Any] | None:
        try:
            return parse_stat(self._read(pid, "stat"))
        except (OSError, ValueError):
            return None

    def _cmdline(self, pid: int) -> str:
        try:
            with open(self._path(pid, "cmdline"), "rb") as handle:
                raw = handle.read(64 * 1024)
        except OSError:
            return ""
        return raw.rstrip(b"\0").replace(b"\0", b" ").decode("utf-8", "replace")

    def _boot_time(self) -> float:
        return parse_btime(self._read("stat"))

    def _user(self, uid: int) -> str:
        if uid not in self._users:
            try:
                self._users[uid] = pwd.getpwuid(uid).pw_name
            except (KeyError, OSError):
                self._users[uid] = str(uid)
        return self._users[uid]

    def _own_lineage(self) -> set[int]:
        """This process and its ancestors: their command lines may hold the pattern searched for."""
        pids, pid = set(), os.getpid()
        while pid > 0 and pid not in pids:
            pids.add(pid)
            stat = self._stat(pid)
            pid = stat["ppid"] if stat else 0
        return pids

# -*- coding: utf-8 -*-
# Copyright: (c) 2026, aitbc-ops developers
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Who holds a service's TCP port: the service (its main process or one of its descendants) or a stranger,
such as nginx's orphaned worker after a ``kill -9`` of its master, which keeps answering on the port."""

from __future__ import annotations

import time
from dataclasses import dataclass
from typing import Any

from ansible_collections.aitbc.ops.plugins.module_utils._procs import read_stat
from ansible_collections.aitbc.ops.plugins.module_utils.diagnostics.sockets import SocketSections

# The socket owner scan stops after this long (a host with many processes and no permission to read them).
SCAN_BUDGET_S = 2.0


@dataclass
class Holder:
    """A process listening on the port; pid None when its owner cannot be seen (another user's process)."""

    pid: int | None
    comm: str | None

    def describe(self, port: int) -> str:
        if self.pid is None:
            return f"port {port} held by a process this user cannot see, not the service"
        return f"port {port} held by pid {self.pid} ({self.comm or '?'}), not the service"

    def to_dict(self) -> dict[str, Any]:
        return {"pid": self.pid, "comm": self.comm}


def port_holders(port: int) -> list[Holder]:
    """The processes holding a listening TCP socket on ``port`` (any address), from /proc."""
    table = SocketSections().listening_sockets(time.monotonic() + SCAN_BUDGET_S)
    seen: dict[int | None, Holder] = {}
    for entry in table["listening"]:
        if entry["port"] == port and entry["proto"].startswith("tcp"):
            seen.setdefault(entry["pid"], Holder(entry["pid"], entry["command"]))
    return list(seen.values())


def belongs_to(pid: int, ancestor: int) -> bool:
    """Is ``pid`` the process ``ancestor``, one of its descendants (by the ppid chain) or in the session it
    leads (the process backend starts each daemon in its own session)?"""
    first = read_stat(pid)
    if first is not None and first["session"] == ancestor:
        return True
    seen: set[int] = set()
    while pid > 1 and pid not in seen:
        if pid == ancestor:
            return True
        seen.add(pid)
        stat = read_stat(pid)
        if stat is None:
            return False
        pid = stat["ppid"]
    return pid == ancestor


def port_stranger(port: int | None, service_pid: int | None) -> Holder | None:
    """The first holder of ``port`` that is not the service (``service_pid`` and its descendants); None when
    no port is given, nobody listens, or only the service does."""
    if not port:
        return None
    for holder in port_holders(port):
        if holder.pid == 1:  # socket activation: systemd holds the socket for the service
            continue
        if holder.pid is None or service_pid is None or not belongs_to(holder.pid, service_pid):
            return holder
    return None


def add_port_check(status: dict[str, Any], port: int | None) -> dict[str, Any]:
    """``status`` plus ``port_held_by`` ({pid, comm}) and the reason in its detail when a stranger holds
    ``port``."""
    stranger = port_stranger(port, status.get("pid") if status.get("active") else None)
    if stranger is not None and port:
        status["port_held_by"] = stranger.to_dict()
        detail = status.get("detail") or ""
        status["detail"] = f"{detail}; {stranger.describe(port)}" if detail else stranger.describe(port)
    return status

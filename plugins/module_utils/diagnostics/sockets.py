# -*- coding: utf-8 -*-
# Copyright: (c) 2025, aitbc-ops developers
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Listening sockets from /proc/net, with their owning processes."""

from __future__ import annotations

import os
import socket
import time
from typing import Any

from ansible_collections.aitbc.ops.plugins.module_utils.diagnostics.base import describe_error
from ansible_collections.aitbc.ops.plugins.module_utils.diagnostics.context import HostContext

# Socket owner scan: at most this many processes are looked at (besides the time budget).
SCAN_MAX_PROCESSES = 20000
MAX_SOCKETS = 1000

TCP_STATES = {
    "01": "ESTABLISHED",
    "02": "SYN_SENT",
    "03": "SYN_RECV",
    "04": "FIN_WAIT1",
    "05": "FIN_WAIT2",
    "06": "TIME_WAIT",
    "07": "CLOSE",
    "08": "CLOSE_WAIT",
    "09": "LAST_ACK",
    "0A": "LISTEN",
    "0B": "CLOSING",
    "0C": "NEW_SYN_RECV",
}


def decode_address(hexaddr: str) -> tuple[str, int]:
    """'0100007F:1F90' -> ('127.0.0.1', 8080); IPv6 addresses (32 hex digits) likewise."""
    host, _sep, port = hexaddr.partition(":")
    raw = bytes.fromhex(host)
    # The kernel prints each 32-bit word in host byte order (little endian on every Linux we meet).
    swapped = b"".join(raw[i : i + 4][::-1] for i in range(0, len(raw), 4))
    family = socket.AF_INET if len(raw) == 4 else socket.AF_INET6
    return socket.inet_ntop(family, swapped), int(port, 16)


def parse_net_table(text: str, proto: str) -> tuple[list[dict[str, Any]], dict[str, int]]:
    """A /proc/net/{tcp,tcp6,udp,udp6} table -> (listening, state_counts).

    Listening means TCP state LISTEN, or for UDP a socket with no remote peer (bound, unconnected).
    Each listening entry: proto, address, port, inode, uid, and for TCP accept_queue."""
    listening, counts = [], {}
    is_tcp = proto.startswith("tcp")
    for line in text.splitlines()[1:]:
        fields = line.split()
        if len(fields) < 10:
            continue
        state = fields[3].upper()
        if is_tcp:
            name = TCP_STATES.get(state, state)
            counts[name] = counts.get(name, 0) + 1
            if state != "0A":
                continue
        elif not fields[2].endswith(":0000"):
            continue
        address, port = decode_address(fields[1])
        entry = {
            "proto": proto,
            "address": address,
            "port": port,
            "inode": int(fields[9]),
            "uid": int(fields[7]),
        }
        if is_tcp:
            # rx_queue of a listening socket is its accept queue (connections not yet accepted). The
            # backlog limit is not in this table.
            entry["accept_queue"] = int(fields[4].partition(":")[2], 16)
        listening.append(entry)
    return listening, counts


class SocketSections(HostContext):
    """sockets (and the socket scan the processes section shares)."""

    def listening_sockets(self, deadline: float) -> dict[str, Any]:
        """Listening sockets of this network namespace with their owning process (memoised: the
        sockets and processes sections share one scan)."""
        with self._socket_lock:
            if self._sockets is None:
                self._sockets = self._scan_sockets(deadline)
            return self._sockets

    def _scan_sockets(self, deadline: float) -> dict[str, Any]:
        listening, states, tables = [], {}, []
        for proto in ("tcp", "tcp6", "udp", "udp6"):
            try:
                text = self._read("net", proto)
            except FileNotFoundError:  # no IPv6 in this kernel or namespace
                continue
            found, counts = parse_net_table(text, proto)
            tables.append(proto)
            listening.extend(found)
            for key, value in counts.items():
                states[key] = states.get(key, 0) + value
        if not tables:
            raise FileNotFoundError(2, "No such file or directory", self._path("net", "tcp"))
        listening.sort(key=lambda s: (s["port"], s["proto"], s["address"]))
        owners, scan = self._socket_owners({s["inode"] for s in listening if s["inode"]}, deadline)
        comms = {}
        for entry in listening:
            pid = owners.get(entry["inode"])
            entry["pid"] = pid
            if pid is not None and pid not in comms:
                stat = self._stat(pid)
                comms[pid] = stat["comm"] if stat else None
            entry["command"] = comms.get(pid)
        return {"listening": listening, "tcp_states": states, "tables": tables, "scan": scan}

    def _socket_owners(self, inodes: set[int], deadline: float) -> tuple[dict[int, int], dict[str, Any]]:
        """inode -> pid of a process holding it, from the /proc/PID/fd links 'socket:[INODE]'. The scan
        stops once every inode has an owner, after SCAN_MAX_PROCESSES processes or at the deadline."""
        wanted, owners = set(inodes), {}
        scanned = denied = 0
        stopped = None
        start = time.monotonic()
        try:
            pids = self._pids()
        except OSError as exc:
            return owners, {"processes": 0, "complete": False, "stopped": describe_error(exc)}
        for pid in pids:
            if not wanted:
                break
            if scanned >= SCAN_MAX_PROCESSES:
                stopped = f"process limit ({SCAN_MAX_PROCESSES})"
                break
            if time.monotonic() > deadline:
                stopped = "time budget"
                break
            scanned += 1
            try:
                dir_fd = os.open(self._path(pid, "fd"), os.O_RDONLY | os.O_DIRECTORY)
            except PermissionError:
                denied += 1
                continue
            except OSError:  # gone, or a kernel thread
                continue
            try:
                names = os.listdir(dir_fd)
                for count, name in enumerate(names):
                    if count % 4096 == 4095 and time.monotonic() > deadline:
                        break
                    try:
                        link = os.readlink(name, dir_fd=dir_fd)
                    except OSError:
                        continue
                    if link.startswith("socket:["):
                        inode = int(link[8:-1])
                        if inode in wanted:
                            wanted.discard(inode)
                            owners[inode] = pid
            except OSError:
                denied += 1
            finally:
                os.close(dir_fd)
        return owners, {
            "processes": scanned,
            "permission_denied": denied,
            "unresolved": len(wanted),
            "complete": not wanted,
            "stopped": stopped,
            "duration_ms": round((time.monotonic() - start) * 1000, 1),
        }

    def section_sockets(self, deadline: float) -> dict[str, Any]:
        table = self.listening_sockets(deadline)
        by_port = {}
        for svc in self.services:
            if svc["port"]:
                by_port.setdefault(svc["port"], svc["name"])
        listening = []
        for entry in table["listening"][:MAX_SOCKETS]:
            item = {k: v for k, v in entry.items() if k != "uid"}
            item["service"] = by_port.get(entry["port"])
            listening.append(item)
        return {
            "listening": listening,
            "listening_count": len(table["listening"]),
            "tcp_states": table["tcp_states"],
            "tables": table["tables"],
            "scan": table["scan"],
        }

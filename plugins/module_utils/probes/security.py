# -*- coding: utf-8 -*-
# Copyright: (c) 2026, aitbc-ops developers
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Security probes of the host: listening TCP sockets that no allowed port covers, key material wider
than 0600, and a burst of failed SSH logins in the auth log. Their results carry category ``security``
(the heartbeat pages a human for those and never remediates them).

Linux only for ``listeners`` (it reads /proc/net/tcp{,6} and /proc/PID/fd); stdlib only."""

from __future__ import annotations

import datetime
import ipaddress
import os
import re
import socket
import stat
import struct
import time
from collections import Counter
from dataclasses import dataclass, field
from typing import Any

from ansible_collections.aitbc.ops.plugins.module_utils.probes.base import (
    Outcome,
    Probe,
    ProbeError,
    remaining,
)

SECURITY = "security"
LISTEN_STATE = "0A"  # TCP_LISTEN in /proc/net/tcp's st column
PROC_NET = (("/proc/net/tcp", False), ("/proc/net/tcp6", True))
SHOWN = 5  # offenders named in a detail; data has them all (bounded by MAX_LISTED)
MAX_LISTED = 100


# --------------------------------------------------------------------------------------------------
# listeners
# --------------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Listener:
    """One listening TCP socket of /proc/net/tcp or tcp6."""

    address: str  # as printed: 0.0.0.0, ::, 10.0.0.5, ::1
    port: int
    inode: int

    @property
    def loopback(self) -> bool:
        ip = ipaddress.ip_address(self.address)
        mapped = getattr(ip, "ipv4_mapped", None)
        return bool(ip.is_loopback or (mapped is not None and mapped.is_loopback))

    @property
    def endpoint(self) -> str:
        return f"[{self.address}]:{self.port}" if ":" in self.address else f"{self.address}:{self.port}"


def _address(hex_addr: str, v6: bool) -> str:
    """/proc/net/tcp prints each 32-bit word of the address as the kernel holds it (network byte order
    read as a host-order integer): packing the words in native order gives back the address bytes."""
    words = [int(hex_addr[i : i + 8], 16) for i in range(0, len(hex_addr), 8)]
    raw = struct.pack(f"={len(words)}I", *words)
    return socket.inet_ntop(socket.AF_INET6 if v6 else socket.AF_INET, raw)


def parse_proc_net_tcp(text: str, v6: bool = False) -> list[Listener]:
    """The listening sockets (state 0A) in the text of /proc/net/tcp (or tcp6 with ``v6``)."""
    found: list[Listener] = []
    for line in text.splitlines()[1:]:
        fields = line.split()
        if len(fields) < 10 or fields[3] != LISTEN_STATE:
            continue
        hex_addr, _sep, hex_port = fields[1].partition(":")
        try:
            found.append(Listener(_address(hex_addr, v6), int(hex_port, 16), int(fields[9])))
        except (ValueError, struct.error):
            continue  # a line this parser does not understand is not a listener it can name
    return found


def read_listeners() -> list[Listener]:
    found: list[Listener] = []
    for path, v6 in PROC_NET:
        try:
            with open(path, encoding="ascii", errors="replace") as handle:
                found.extend(parse_proc_net_tcp(handle.read(), v6))
        except FileNotFoundError:
            if not v6:  # tcp6 is missing where IPv6 is off; tcp missing means no /proc
                raise ProbeError("listeners probes need /proc/net/tcp (Linux)") from None
    return found


def unexpected(listeners: list[Listener], allowed: set[int], include_loopback: bool) -> list[Listener]:
    """Listeners on ports outside ``allowed``, reachable from outside unless ``include_loopback``; one
    per address and port, sorted by port."""
    seen: dict[tuple[str, int], Listener] = {}
    for item in listeners:
        if item.port in allowed or (item.loopback and not include_loopback):
            continue
        seen.setdefault((item.address, item.port), item)
    return sorted(seen.values(), key=lambda item: (item.port, item.address))


def socket_owners(inodes: set[int], deadline: float) -> dict[int, tuple[int, str]]:
    """inode -> (pid, comm) for the sockets in ``inodes``, from /proc/PID/fd links (those readable)."""
    owners: dict[int, tuple[int, str]] = {}
    wanted = {f"socket:[{inode}]": inode for inode in inodes}
    for entry in os.listdir("/proc"):
        if len(owners) == len(wanted):
            break
        if not entry.isdigit():
            continue
        remaining(deadline)
        fd_dir = f"/proc/{entry}/fd"
        try:
            fds = os.listdir(fd_dir)
        except OSError:
            continue  # gone, or not ours to read
        for fd in fds:
            try:
                inode = wanted.get(os.readlink(f"{fd_dir}/{fd}"))
            except OSError:
                continue
            if inode is not None and inode not in owners:
                owners[inode] = (int(entry), _comm(entry))
    return owners


def _comm(pid: str) -> str:
    try:
        with open(f"/proc/{pid}/comm", encoding="utf-8", errors="replace") as handle:
            return handle.read().strip()
    except OSError:
        return "?"


def listener_record(item: Listener, owner: tuple[int, str] | None) -> dict[str, Any]:
    pid, comm = owner or (None, None)
    return {"address": item.address, "port": item.port, "pid": pid, "process": comm}


def describe_listener(item: Listener, owner: tuple[int, str] | None) -> str:
    return f"{item.endpoint} ({f'pid {owner[0]} {owner[1]}' if owner else 'process unknown'})"


class ListenersProbe(Probe):
    type_name = "listeners"
    category = SECURITY
    options = {
        "allowed_ports": {"type": "list", "elements": "int", "default": [22]},
        "include_loopback": {"type": "bool", "default": False},
    }

    def setup(self) -> None:
        bad = [port for port in self.params["allowed_ports"] if not 1 <= port <= 65535]
        if bad:
            raise ValueError(f"allowed_ports: {bad[0]} is not between 1 and 65535")

    def run(self, deadline: float) -> Outcome:
        listeners = read_listeners()
        allowed = set(self.params["allowed_ports"])
        offenders = unexpected(listeners, allowed, self.params["include_loopback"])
        scope = "" if self.params["include_loopback"] else " reachable from outside"
        listed = offenders[:MAX_LISTED]
        # The owners are looked up only for the listeners named: scanning every fd costs on busy hosts.
        owners = socket_owners({item.inode for item in listed}, deadline) if listed else {}
        data: dict[str, Any] = {
            "listening": len(listeners),
            "allowed_ports": sorted(allowed),
            "unexpected": [listener_record(item, owners.get(item.inode)) for item in listed],
        }
        if not offenders:
            summary = f"{len(listeners)} listening sockets, none{scope} on a port not allowed"
            return True, f"{summary} ({len(allowed)} allowed)", data
        named = ", ".join(describe_listener(item, owners.get(item.inode)) for item in offenders[:SHOWN])
        more = f" and {len(offenders) - SHOWN} more" if len(offenders) > SHOWN else ""
        noun = "port" if len(offenders) == 1 else "ports"
        return False, f"{len(offenders)} listening {noun} no service owns: {named}{more}", data


# --------------------------------------------------------------------------------------------------
# file_mode
# --------------------------------------------------------------------------------------------------

GROUP_OTHER = 0o077
MAX_FILES = 10000  # entries looked at under one probe's paths; a keystore holds far fewer


@dataclass
class ModeScan:
    """What file_mode found under its paths."""

    checked: int = 0
    missing: list[str] = field(default_factory=list)
    too_open: list[tuple[str, int]] = field(default_factory=list)  # (path, permission bits)
    truncated: bool = False


def scan_modes(paths: list[str], deadline: float, limit: int = MAX_FILES) -> ModeScan:
    """Every path, and everything under the folders among them (symlinks inside are not followed),
    checked for group or other permission bits."""
    scan = ModeScan()
    for top in paths:
        try:
            st = os.stat(top)
        except FileNotFoundError:
            scan.missing.append(top)
            continue
        _check_mode(scan, top, st.st_mode)
        if stat.S_ISDIR(st.st_mode):
            _walk(scan, top, deadline, limit)
        if scan.checked >= limit:
            scan.truncated = True
            break
    return scan


def _walk(scan: ModeScan, top: str, deadline: float, limit: int) -> None:
    for root, dirs, files in os.walk(top, onerror=_raise):
        remaining(deadline)
        for name in dirs + files:
            if scan.checked >= limit:
                scan.truncated = True
                return
            path = os.path.join(root, name)
            mode = os.lstat(path).st_mode
            if not stat.S_ISLNK(mode):
                _check_mode(scan, path, mode)


def _raise(exc: OSError) -> None:
    raise exc


def _check_mode(scan: ModeScan, path: str, mode: int) -> None:
    scan.checked += 1
    if mode & GROUP_OTHER:
        scan.too_open.append((path, stat.S_IMODE(mode)))


class FileModeProbe(Probe):
    type_name = "file_mode"
    category = SECURITY
    options = {
        "paths": {"type": "list", "elements": "path"},
        "required": {"type": "bool", "default": False},
    }

    def setup(self) -> None:
        self.params["paths"] = self.params.get("paths") or []
        if any(not path for path in self.params["paths"]):
            raise ValueError("paths must not hold empty entries")

    def run(self, deadline: float) -> Outcome:
        paths = self.params["paths"]
        scan = scan_modes(paths, deadline)
        data: dict[str, Any] = {
            "checked": scan.checked,
            "missing": scan.missing,
            "too_open": [{"path": path, "mode": f"{mode:04o}"} for path, mode in scan.too_open[:MAX_LISTED]],
            "truncated": scan.truncated,
        }
        problems = [f"{path} is {mode:04o}" for path, mode in scan.too_open[:SHOWN]]
        if len(scan.too_open) > SHOWN:
            problems.append(f"{len(scan.too_open) - SHOWN} more")
        if self.params["required"] and scan.missing:
            problems.append(f"missing: {', '.join(scan.missing)}")
        if problems:
            return False, f"key material open to group or others (max 0600): {'; '.join(problems)}", data
        if not paths:
            return True, "no key files to check", data
        note = f" ({len(scan.missing)} of {len(paths)} paths absent)" if scan.missing else ""
        cap = f", stopped after {MAX_FILES}" if scan.truncated else ""
        return True, f"{scan.checked} entries private (0600 or narrower){note}{cap}", data


# --------------------------------------------------------------------------------------------------
# auth_failures
# --------------------------------------------------------------------------------------------------

TAIL_BYTES = 1 << 20  # only the log's last MiB is read: bounded time whatever the log's size
MONTHS = ("Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec")
_MONTHS = {name: i for i, name in enumerate(MONTHS, 1)}
_CLASSIC = re.compile(r"^([A-Z][a-z]{2}) +(\d{1,2}) (\d{2}):(\d{2}):(\d{2}) ")
_RFC3339 = re.compile(r"^(\d{4}-\d{2}-\d{2}[T ]\d{2}:\d{2}:\d{2}(?:\.\d+)?)(Z|[+-]\d{2}:?\d{2})? ")
# The program part of a syslog line: sshd[123]: or sshd-session[123]: (OpenSSH 9.8 and later).
_SSHD = re.compile(r" sshd(?:-session)?(?:\[\d+\])?: ")
_FAILURE = re.compile(r"Failed password|Invalid user|authentication failure")
_SOURCE = re.compile(r"(?: from |rhost=)([0-9A-Fa-f:.]+)")


def line_time(line: str, now: float) -> float | None:
    """The epoch time of a syslog line's timestamp (classic ``Dec  4 22:59:50`` in local time, its year
    the one that does not put it in the future; or RFC 3339), None when it has neither."""
    match = _CLASSIC.match(line)
    if match:
        month = _MONTHS.get(match.group(1))
        if month is None:
            return None
        day, hour, minute, second = (int(g) for g in match.groups()[1:])
        year = time.localtime(now).tm_year
        try:
            stamp = time.mktime((year, month, day, hour, minute, second, 0, 0, -1))
            if stamp > now + 86400:  # December's lines read in January
                stamp = time.mktime((year - 1, month, day, hour, minute, second, 0, 0, -1))
        except (OverflowError, ValueError):
            return None
        return stamp
    match = _RFC3339.match(line)
    if match:
        zone = match.group(2) or ""
        zone = "+00:00" if zone == "Z" else zone
        if zone and ":" not in zone:
            zone = f"{zone[:3]}:{zone[3:]}"
        try:
            parsed = datetime.datetime.fromisoformat(match.group(1).replace(" ", "T") + zone)
        except ValueError:
            return None
        return parsed.timestamp()  # naive: local time, as syslog wrote it
    return None


def read_tail(path: str, limit: int = TAIL_BYTES) -> tuple[str, int]:
    """The last ``limit`` bytes of ``path`` as text, from the first whole line; and the bytes read."""
    with open(path, "rb") as handle:
        size = handle.seek(0, os.SEEK_END)
        start = max(0, size - limit)
        handle.seek(start)
        data = handle.read(limit)
    if start > 0:
        cut = data.find(b"\n")
        data = data[cut + 1 :] if cut >= 0 else b""
    return data.decode("utf-8", "replace"), len(data)


@dataclass
class AuthCount:
    """Failed logins within the window, and how many came from each address."""

    failures: int = 0
    sources: Counter[str] = field(default_factory=Counter)


def count_failures(text: str, now: float, window: float) -> AuthCount:
    """sshd's failed-login lines of ``text`` stamped within ``window`` seconds before ``now``."""
    since = now - window
    result = AuthCount()
    for line in text.splitlines():
        if not _FAILURE.search(line) or not _SSHD.search(line):
            continue
        stamp = line_time(line, now)
        if stamp is None or stamp < since:
            continue
        result.failures += 1
        source = _SOURCE.search(line)
        if source:
            result.sources[source.group(1)] += 1
    return result


class AuthFailuresProbe(Probe):
    type_name = "auth_failures"
    category = SECURITY
    options = {
        "path": {"type": "path", "default": "/var/log/auth.log"},
        "window": {"type": "int", "default": 600},
        "max_failures": {"type": "int", "default": 20},
    }

    def default_name(self) -> str:
        return f"auth_failures:{self.params['path']}"

    def setup(self) -> None:
        if self.params["window"] <= 0:
            raise ValueError("window must be greater than 0")
        if self.params["max_failures"] < 0:
            raise ValueError("max_failures must not be negative")

    def run(self, deadline: float) -> Outcome:
        p = self.params
        try:
            text, read = read_tail(p["path"])
        except FileNotFoundError:
            return True, f"no auth log ({p['path']})", {"failures": 0}
        counted = count_failures(text, time.time(), p["window"])
        top = counted.sources.most_common(3)
        data = {"failures": counted.failures, "window": p["window"], "bytes_read": read, "sources": dict(top)}
        summary = f"{counted.failures} failed SSH logins in the last {p['window']} s"
        if top:
            summary += ", most from " + ", ".join(f"{source} ({n})" for source, n in top)
        if counted.failures > p["max_failures"]:
            return False, f"{summary}, maximum {p['max_failures']}", data
        return True, summary, data

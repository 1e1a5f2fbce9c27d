# -*- coding: utf-8 -*-
# Copyright: (c) 2025, aitbc-ops developers
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Incident bundle collection for the aitbc.ops.diagnostics module.

This file is shipped to managed hosts, so it uses the Python standard library only and nothing from
Ansible. Everything is read from ``/proc`` (and ``statvfs``); lsof, netstat and ss are not needed.
Only ``journalctl`` and ``systemctl`` are ever run, and only when a service names a systemd unit.

Sections live in one registry, ``SECTIONS`` (name -> ``Collector`` method). All requested sections
start together, each in its own daemon thread, against one shared deadline (``section_timeout``).
A section that raises, or is still running ``DEADLINE_GRACE`` seconds after the deadline, is
reported as ``{"error": "..."}``; the other sections are unaffected. Loops that can grow with the
host (process and fd scans, mounts, sockets) also check the deadline themselves and return what
they have, marked ``complete: false``.

Entry point: ``collect(services, include, log_lines, restarts_file, section_timeout)`` returns
``{"diagnostics": {...}, "summary": "...", "msg": "..."}``. ``validate_services`` raises
``DiagnosticsError`` (a one-line message for the user) on bad input.
"""

from __future__ import annotations

import datetime
import json
import os
import pwd
import shutil
import socket
import subprocess
import threading
import time

from ansible_collections.aitbc.ops.plugins.module_utils.procfs import CLK_TCK, parse_btime, parse_stat

SECTIONS = ("load", "cpu", "memory", "disk", "sockets", "processes", "logs", "restarts")
SERVICE_SECTIONS = ("processes", "logs", "restarts")

DEFAULT_LOG_LINES = 50
MAX_LOG_LINES = 10000
DEFAULT_SECTION_TIMEOUT = 5.0
# A section still running this long after the deadline is abandoned (its thread is a daemon).
DEADLINE_GRACE = 0.5
CPU_SAMPLE_S = 0.2
# Socket owner scan: at most this many processes are looked at (besides the time budget).
SCAN_MAX_PROCESSES = 20000
MAX_SOCKETS = 1000
MAX_MOUNTS = 200
MAX_PIDS_PER_SERVICE = 20
MAX_CHILDREN = 50
CMDLINE_MAX_CHARS = 1000
LOG_BLOCK = 64 * 1024
LOG_MAX_BYTES = 4 * 1024 * 1024
LOG_LINE_MAX_CHARS = 2000
RESTARTS_MAX_BYTES = 8 * 1024 * 1024
RESTARTS_WINDOW_S = 24 * 3600
STATFS_TIMEOUT = 2.0
# tmpfs mounts smaller than this (placeholders, per-service /run dirs) are not listed.
TINY_TMPFS = 1024 * 1024

# Filesystems that hold no data worth reporting (kernel interfaces, pseudo devices, read-only images).
PSEUDO_FS = frozenset(
    {
        "proc", "sysfs", "cgroup", "cgroup2", "devpts", "devtmpfs", "mqueue", "debugfs", "tracefs",
        "securityfs", "pstore", "bpf", "configfs", "fusectl", "hugetlbfs", "autofs", "binfmt_misc",
        "rpc_pipefs", "nsfs", "selinuxfs", "efivarfs", "ramfs", "squashfs", "fuse.lxcfs",
        "fuse.gvfsd-fuse", "fuse.portal",
    }
)  # fmt: skip
# statvfs on these can block for minutes when the server is gone: run it in a thread with a timeout.
NETWORK_FS_PREFIXES = ("nfs", "cifs", "smb", "fuse", "9p", "ceph", "glusterfs", "afs", "lustre", "sshfs")

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

_CLK_TCK = CLK_TCK


class DiagnosticsError(ValueError):
    """Bad options. The message is meant for the user as is."""


# --------------------------------------------------------------------------------------------------
# Small helpers
# --------------------------------------------------------------------------------------------------


def human_bytes(num):
    """1536 -> '1.5 KiB'."""
    if num is None:
        return "?"
    num = float(num)
    for unit in ("B", "KiB", "MiB", "GiB", "TiB"):
        if abs(num) < 1024.0:
            return f"{num:.0f} B" if unit == "B" else f"{num:.1f} {unit}"
        num /= 1024.0
    return f"{num:.1f} PiB"


def human_duration(seconds):
    """3725 -> '1h02m'."""
    if seconds is None:
        return "?"
    seconds = int(seconds)
    if seconds < 60:
        return f"{seconds}s"
    if seconds < 3600:
        return f"{seconds // 60}m{seconds % 60:02d}s"
    if seconds < 86400:
        return f"{seconds // 3600}h{seconds % 3600 // 60:02d}m"
    return f"{seconds // 86400}d{seconds % 86400 // 3600:02d}h"


def _iso(epoch):
    return datetime.datetime.fromtimestamp(epoch, datetime.UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def _percent(part, whole):
    return round(100.0 * part / whole, 1) if whole else 0.0


def describe_error(exc):
    """One line for an exception: OSError as 'No such file or directory: /path', others by type."""
    if isinstance(exc, TimeoutError) and str(exc):
        return str(exc)
    if isinstance(exc, OSError) and exc.strerror:
        return f"{exc.strerror}: {exc.filename}" if exc.filename else exc.strerror
    text = str(exc) or type(exc).__name__
    return text if isinstance(exc, (ValueError, RuntimeError)) else f"{type(exc).__name__}: {text}"


def _check(deadline):
    if time.monotonic() > deadline:
        raise TimeoutError("ran out of time")


def _call_with_timeout(func, timeout):
    """func() in a daemon thread; TimeoutError when it does not return within ``timeout`` seconds
    (the thread is left behind, for calls such as statvfs on a dead NFS server)."""
    box = {}

    def target():
        try:
            box["value"] = func()
        except BaseException as exc:  # noqa: BLE001 - re-raised in the caller
            box["error"] = exc

    thread = threading.Thread(target=target, daemon=True)
    thread.start()
    thread.join(max(0.0, timeout))
    if thread.is_alive():
        raise TimeoutError(f"no answer within {timeout:g} s")
    if "error" in box:
        raise box["error"]
    return box["value"]


def run_command(argv, timeout):
    """(rc, stdout, stderr) of a short read-only command with a C locale and no pager or colours."""
    env = dict(os.environ, LC_ALL="C", LANG="C", SYSTEMD_PAGER="", SYSTEMD_COLORS="0")
    proc = subprocess.run(
        argv,
        stdin=subprocess.DEVNULL,
        capture_output=True,
        text=True,
        errors="replace",
        timeout=max(0.1, timeout),
        env=env,
        check=False,
    )
    return proc.returncode, proc.stdout, proc.stderr


def _first_line(text):
    for line in (text or "").splitlines():
        if line.strip():
            return line.strip()
    return ""


def systemd_running():
    """True when systemd is the init system (sd_booted)."""
    return os.path.isdir("/run/systemd/system")


# --------------------------------------------------------------------------------------------------
# Pure parsers (fixed input in unit tests)
# --------------------------------------------------------------------------------------------------


def parse_meminfo(text):
    """/proc/meminfo text -> {field: bytes} (values in kB are converted)."""
    out = {}
    for line in text.splitlines():
        key, _sep, rest = line.partition(":")
        parts = rest.split()
        if not parts:
            continue
        try:
            value = int(parts[0])
        except ValueError:
            continue
        out[key.strip()] = value * 1024 if len(parts) > 1 and parts[1] == "kB" else value
    return out


def parse_cpu_line(text):
    """The aggregate 'cpu' line of /proc/stat -> (busy, iowait, steal, total) in clock ticks."""
    for line in text.splitlines():
        if line.startswith("cpu "):
            values = [int(v) for v in line.split()[1:]]
            values += [0] * (8 - len(values))
            # user nice system idle iowait irq softirq steal (guest time is already inside user/nice)
            user, nice, system, idle, iowait, irq, softirq, steal = values[:8]
            total = user + nice + system + idle + iowait + irq + softirq + steal
            return total - idle - iowait, iowait, steal, total
    raise ValueError("no cpu line in /proc/stat")


def decode_address(hexaddr):
    """'0100007F:1F90' -> ('127.0.0.1', 8080); IPv6 addresses (32 hex digits) likewise."""
    host, _sep, port = hexaddr.partition(":")
    raw = bytes.fromhex(host)
    # The kernel prints each 32-bit word in host byte order (little endian on every Linux we meet).
    swapped = b"".join(raw[i : i + 4][::-1] for i in range(0, len(raw), 4))
    family = socket.AF_INET if len(raw) == 4 else socket.AF_INET6
    return socket.inet_ntop(family, swapped), int(port, 16)


def parse_net_table(text, proto):
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


def unescape_mount(field):
    """/proc/mounts escapes space, tab, newline and backslash as octal (\\040)."""
    if "\\" not in field:
        return field
    out, i = [], 0
    while i < len(field):
        if field[i] == "\\" and field[i + 1 : i + 4].isdigit() and len(field[i + 1 : i + 4]) == 3:
            out.append(chr(int(field[i + 1 : i + 4], 8)))
            i += 4
        else:
            out.append(field[i])
            i += 1
    return "".join(out)


def parse_time(value):
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


def count_restarts(lines, names, now, window=RESTARTS_WINDOW_S):
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
                out[name]["last"] = _iso(when)
    return out, bad


# --------------------------------------------------------------------------------------------------
# Log tail
# --------------------------------------------------------------------------------------------------


def _clip_line(line):
    return line if len(line) <= LOG_LINE_MAX_CHARS else line[: LOG_LINE_MAX_CHARS - 3] + "..."


def tail_lines(path, n, max_bytes=LOG_MAX_BYTES):
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
        "modified_at": _iso(stat.st_mtime),
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
    lines = [_clip_line(p.decode("utf-8", "replace").rstrip("\r")) for p in pieces[-n:]]
    info["truncated"] = pos > 0 and len(lines) < n
    return lines, info


# --------------------------------------------------------------------------------------------------
# Options
# --------------------------------------------------------------------------------------------------

SERVICE_OPTIONS = ("name", "pidfile", "process", "port", "log_file", "journal_unit", "unit")


def validate_services(services):
    """Check the service dicts; returns them with every option present (None when not given)."""
    out, seen = [], set()
    for index, spec in enumerate(services or [], 1):
        if not isinstance(spec, dict):
            raise DiagnosticsError(f"services[{index}] must be a dict, got {type(spec).__name__}")
        unknown = sorted(set(spec) - set(SERVICE_OPTIONS))
        if unknown:
            raise DiagnosticsError(f"services[{index}]: unknown option(s) {', '.join(unknown)}")
        name = spec.get("name")
        if not isinstance(name, str) or not name.strip():
            raise DiagnosticsError(f"services[{index}]: name is required")
        if name in seen:
            raise DiagnosticsError(f"services[{index}]: duplicate service name {name!r}")
        seen.add(name)
        port = spec.get("port")
        if port is not None and (isinstance(port, bool) or not isinstance(port, int) or not 0 < port < 65536):
            raise DiagnosticsError(f"service {name!r}: port must be between 1 and 65535, got {port!r}")
        out.append({key: spec.get(key) for key in SERVICE_OPTIONS})
    return out


def validate_include(include):
    if include is None:
        return list(SECTIONS)
    unknown = [s for s in include if s not in SECTIONS]
    if unknown:
        raise DiagnosticsError(
            f"include: unknown section(s) {', '.join(unknown)} (known: {', '.join(SECTIONS)})"
        )
    return [s for s in SECTIONS if s in include]  # fixed order, no duplicates


# --------------------------------------------------------------------------------------------------
# The collector
# --------------------------------------------------------------------------------------------------


class Collector:
    """One collection run. ``proc`` is the procfs root (tests point it elsewhere to make sections fail
    for real)."""

    def __init__(
        self,
        services=(),
        log_lines=DEFAULT_LOG_LINES,
        restarts_file=None,
        proc="/proc",
        mounts_file=None,
    ):
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
        self._sockets = None
        self._users = {}

    # ---- /proc access

    def _path(self, *parts):
        return os.path.join(self.proc, *(str(p) for p in parts))

    def _read(self, *parts):
        with open(self._path(*parts), "rb") as handle:
            return handle.read().decode("utf-8", "replace")

    def _pids(self):
        return sorted(int(e) for e in os.listdir(self.proc) if e.isdigit())

    def _stat(self, pid):
        try:
            return parse_stat(self._read(pid, "stat"))
        except (OSError, ValueError):
            return None

    def _cmdline(self, pid):
        try:
            with open(self._path(pid, "cmdline"), "rb") as handle:
                raw = handle.read(64 * 1024)
        except OSError:
            return ""
        return raw.rstrip(b"\0").replace(b"\0", b" ").decode("utf-8", "replace")

    def _boot_time(self):
        return parse_btime(self._read("stat"))

    def _user(self, uid):
        if uid not in self._users:
            try:
                self._users[uid] = pwd.getpwuid(uid).pw_name
            except (KeyError, OSError):
                self._users[uid] = str(uid)
        return self._users[uid]

    def _own_lineage(self):
        """This process and its ancestors: their command lines may hold the pattern searched for."""
        pids, pid = set(), os.getpid()
        while pid > 0 and pid not in pids:
            pids.add(pid)
            stat = self._stat(pid)
            pid = stat["ppid"] if stat else 0
        return pids

    # ---- system sections

    def section_load(self, deadline):
        parts = self._read("loadavg").split()
        loads = [float(v) for v in parts[:3]]
        cpus = os.cpu_count() or 1
        running, _sep, tasks = parts[3].partition("/")
        return {
            "load1": loads[0],
            "load5": loads[1],
            "load15": loads[2],
            "cpus": cpus,
            "per_cpu": {
                "load1": round(loads[0] / cpus, 2),
                "load5": round(loads[1] / cpus, 2),
                "load15": round(loads[2] / cpus, 2),
            },
            "runnable": int(running),
            "tasks": int(tasks),
        }

    def _own_ticks(self):
        stat = self._stat(os.getpid())
        return stat["utime"] + stat["stime"] if stat else 0

    def section_cpu(self, deadline):
        own0, start = self._own_ticks(), time.monotonic()
        busy0, iowait0, steal0, total0 = parse_cpu_line(self._read("stat"))
        time.sleep(max(0.0, min(CPU_SAMPLE_S, deadline - time.monotonic())))
        busy1, iowait1, steal1, total1 = parse_cpu_line(self._read("stat"))
        own1, interval = self._own_ticks(), time.monotonic() - start
        total = total1 - total0
        # The collector's own threads run meanwhile: leave their CPU time out of "busy".
        own = max(0, own1 - own0)
        busy = max(0, busy1 - busy0 - own)
        return {
            "busy_percent": _percent(busy, total),
            "iowait_percent": _percent(iowait1 - iowait0, total),
            "steal_percent": _percent(steal1 - steal0, total),
            "interval_s": round(interval, 3),
            "cpus": os.cpu_count() or 1,
            "own_ticks": own,
        }

    def section_memory(self, deadline):
        info = parse_meminfo(self._read("meminfo"))
        total = info.get("MemTotal")
        if not total:
            raise ValueError("MemTotal missing from /proc/meminfo")
        available = info.get("MemAvailable")
        if available is None:  # kernels before 3.14
            available = info.get("MemFree", 0) + info.get("Buffers", 0) + info.get("Cached", 0)
        swap_total, swap_free = info.get("SwapTotal", 0), info.get("SwapFree", 0)
        return {
            "total_bytes": total,
            "available_bytes": available,
            "used_bytes": total - available,
            "used_percent": _percent(total - available, total),
            "available_percent": _percent(available, total),
            "swap_total_bytes": swap_total,
            "swap_used_bytes": swap_total - swap_free,
            "swap_used_percent": _percent(swap_total - swap_free, swap_total),
        }

    def section_disk(self, deadline):
        with open(self.mounts_file, "rb") as handle:
            text = handle.read().decode("utf-8", "replace")
        mounts, seen_devices, seen_mounts, skipped, complete = [], set(), set(), 0, True
        for line in text.splitlines():
            fields = line.split()
            if len(fields) < 3:
                continue
            device, mount, fstype = unescape_mount(fields[0]), unescape_mount(fields[1]), fields[2]
            if fstype in PSEUDO_FS:
                skipped += 1
                continue
            if mount.startswith(("/proc/", "/sys/")) or mount in ("/proc", "/sys"):
                skipped += 1
                continue
            # Bind mounts of a filesystem listed already, and mounts stacked on one path (statvfs sees
            # only the top one).
            if (device.startswith("/") and device in seen_devices) or mount in seen_mounts:
                skipped += 1
                continue
            if len(mounts) >= MAX_MOUNTS or time.monotonic() > deadline:
                complete = False
                break
            entry = {"mount": mount, "device": device, "fstype": fstype}
            try:
                if fstype.startswith(NETWORK_FS_PREFIXES):
                    left = min(STATFS_TIMEOUT, deadline - time.monotonic())
                    st = _call_with_timeout(lambda m=mount: os.statvfs(m), left)
                else:
                    st = os.statvfs(mount)
            except (OSError, TimeoutError) as exc:
                entry["error"] = f"statvfs: {describe_error(exc)}"
                mounts.append(entry)
                continue
            size = st.f_blocks * st.f_frsize
            if size == 0 or (fstype == "tmpfs" and size < TINY_TMPFS):  # empty or tiny RAM filesystems
                skipped += 1
                continue
            seen_devices.add(device)
            seen_mounts.add(mount)
            used = (st.f_blocks - st.f_bfree) * st.f_frsize
            free = st.f_bavail * st.f_frsize
            entry.update(
                size_bytes=size,
                used_bytes=used,
                free_bytes=free,
                # like df: used / (used + available to unprivileged users)
                used_percent=_percent(used, used + free),
            )
            if st.f_files:
                entry["inodes_used_percent"] = _percent(st.f_files - st.f_ffree, st.f_files)
            mounts.append(entry)
        return {"mounts": mounts, "skipped": skipped, "complete": complete}

    # ---- sockets

    def listening_sockets(self, deadline):
        """Listening sockets of this network namespace with their owning process (memoised: the
        sockets and processes sections share one scan)."""
        with self._socket_lock:
            if self._sockets is None:
                self._sockets = self._scan_sockets(deadline)
            return self._sockets

    def _scan_sockets(self, deadline):
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

    def _socket_owners(self, inodes, deadline):
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

    def section_sockets(self, deadline):
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

    # ---- processes

    def _process_table(self, deadline):
        table = {}
        for pid in self._pids():
            _check(deadline)
            stat = self._stat(pid)
            if stat is not None:
                table[pid] = stat
        return table

    def _find_by_name(self, pattern, table, skip, deadline):
        found = []
        for pid, stat in table.items():
            if pid in skip:
                continue
            if stat["comm"] == pattern:
                found.append(pid)
                continue
            _check(deadline)
            if pattern in self._cmdline(pid):
                found.append(pid)
        return sorted(found)

    def _unit_main_pid(self, unit, deadline):
        if not (shutil.which("systemctl") and systemd_running()):
            return None, "systemd is not running"
        rc, out, err = run_command(["systemctl", "show", "-p", "MainPID", unit], deadline - time.monotonic())
        if rc != 0:
            return None, f"systemctl show: {_first_line(err) or f'exit {rc}'}"
        value = out.strip().partition("=")[2]
        pid = int(value) if value.isdigit() else 0
        return (pid or None), None if pid else f"unit {unit} has no main process"

    def _locate(self, svc, table, skip, deadline):
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

    def _status(self, pid):
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

    def _max_open_files(self, pid):
        try:
            text = self._read(pid, "limits")
        except OSError:
            return None
        for line in text.splitlines():
            if line.startswith("Max open files"):
                soft = line[len("Max open files") :].split()[0]
                return int(soft) if soft.isdigit() else None
        return None

    def _rss(self, status):
        parts = status.get("VmRSS", "").split()
        return int(parts[0]) * 1024 if parts and parts[0].isdigit() else None

    def process_detail(self, pid, table, children_of, boot, now):
        stat = table.get(pid) or self._stat(pid)
        if stat is None:
            return {"pid": pid, "error": "process is gone"}
        status = self._status(pid)
        cmdline = self._cmdline(pid)
        try:
            open_files = len(os.listdir(self._path(pid, "fd")))
        except OSError:
            open_files = None
        started = boot + stat["starttime"] / _CLK_TCK
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
            "cpu_time_s": round((stat["utime"] + stat["stime"]) / _CLK_TCK, 2),
            "started_at": _iso(started),
            "uptime_s": round(max(0.0, now - started), 1),
            "children_count": len(children_of.get(pid, [])),
            "children": children,
        }

    def section_processes(self, deadline):
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
            _check(deadline)
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

    # ---- logs

    def _journal(self, unit, deadline):
        entry = {"source": "journal", "unit": unit, "lines": []}
        if not shutil.which("journalctl"):
            entry["note"] = "journalctl not found"
            return entry
        argv = ["journalctl", "-u", unit, "-n", str(self.log_lines), "--no-pager"]
        try:
            rc, out, err = run_command(argv, deadline - time.monotonic())
        except subprocess.TimeoutExpired:
            entry["error"] = "journalctl timed out"
            return entry
        lines = [_clip_line(line) for line in out.splitlines() if line.strip() != "-- No entries --"]
        entry["lines"] = lines[-self.log_lines :] if self.log_lines else []
        if rc != 0:
            entry["note"] = f"journalctl exited {rc}: {_first_line(err) or _first_line(out)}"
        elif not lines and _first_line(err):
            entry["note"] = _first_line(err)
        return entry

    def section_logs(self, deadline):
        out = {}
        for svc in self.services:
            _check(deadline)
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

    # ---- restarts

    def section_restarts(self, deadline):
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
            _check(deadline)
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
            except subprocess.TimeoutExpired:
                entry["error"] = "systemctl timed out"
            else:
                value = out.strip().partition("=")[2]
                if rc == 0 and value.isdigit():
                    entry["nrestarts"] = int(value)
                else:
                    entry["note"] = _first_line(err) or f"no NRestarts for {unit}"
            services[svc["name"]] = entry
        return {"source": "systemd" if have_systemd else None, "services": services}


# --------------------------------------------------------------------------------------------------
# Running the sections
# --------------------------------------------------------------------------------------------------


def _run_section(collector, name, deadline, section_timeout, box):
    """Thread body: one section's result (or its error) and duration into ``box``."""
    started = time.monotonic()
    try:
        box["value"] = getattr(collector, f"section_{name}")(deadline)
    except TimeoutError:
        box["value"] = {"error": f"timed out after {section_timeout:g} s"}
    except Exception as exc:  # noqa: BLE001 - a section's failure is its result
        box["value"] = {"error": describe_error(exc)}
    box["ms"] = round((time.monotonic() - started) * 1000, 1)


def run_sections(collector, include, section_timeout=DEFAULT_SECTION_TIMEOUT, grace=DEADLINE_GRACE):
    """Run the sections concurrently. Returns (results, timings_ms); a failed or overdue section's
    result is {"error": "..."}."""
    start = time.monotonic()
    deadline = start + section_timeout
    jobs = []
    for name in include:
        box = {}
        thread = threading.Thread(
            target=_run_section,
            args=(collector, name, deadline, section_timeout, box),
            name=f"diagnostics-{name}",
            daemon=True,
        )
        thread.start()
        jobs.append((name, thread, box))
    results, timings = {}, {}
    for name, thread, box in jobs:
        thread.join(max(0.0, deadline + grace - time.monotonic()))
        if thread.is_alive() or "value" not in box:
            results[name] = {"error": f"timed out after {section_timeout:g} s"}
            timings[name] = round((time.monotonic() - start) * 1000, 1)
        else:
            results[name] = box["value"]
            timings[name] = box["ms"]
    return results, timings


def collect(
    services=(),
    include=None,
    log_lines=DEFAULT_LOG_LINES,
    restarts_file=None,
    section_timeout=DEFAULT_SECTION_TIMEOUT,
    proc="/proc",
    mounts_file=None,
):
    """Collect the bundle. Returns {"diagnostics": {...}, "summary": str, "msg": str}."""
    if (
        not isinstance(section_timeout, (int, float))
        or isinstance(section_timeout, bool)
        or section_timeout <= 0
    ):
        raise DiagnosticsError(f"section_timeout must be a positive number, got {section_timeout!r}")
    sections = validate_include(include)
    collector = Collector(services, log_lines, restarts_file, proc=proc, mounts_file=mounts_file)
    started, t0 = time.time(), time.monotonic()
    results, timings = run_sections(collector, sections, section_timeout)
    diagnostics = {
        "host": socket.gethostname(),
        "collected_at": _iso(started),
        "duration_s": round(time.monotonic() - t0, 3),
        "sections": sections,
        "timings_ms": timings,
    }
    diagnostics.update(results)
    failed = [name for name in sections if "error" in results[name]]
    msg = f"collected {len(sections)} section(s) in {diagnostics['duration_s']:.2f} s"
    if failed:
        msg += "; failed: " + ", ".join(f"{n} ({results[n]['error']})" for n in failed)
    return {
        "diagnostics": diagnostics,
        "summary": summarize(diagnostics),
        "msg": msg,
        "failed_sections": failed,
    }


# --------------------------------------------------------------------------------------------------
# The human summary
# --------------------------------------------------------------------------------------------------


def _summary_load(d):
    p = d["per_cpu"]
    return [
        f"load: {d['load1']:.2f} {d['load5']:.2f} {d['load15']:.2f} on {d['cpus']} cpu(s) "
        f"({p['load1']:.2f} {p['load5']:.2f} {p['load15']:.2f} per cpu), "
        f"{d['runnable']}/{d['tasks']} runnable"
    ]


def _summary_cpu(d):
    return [
        f"cpu: {d['busy_percent']:.1f}% busy, {d['iowait_percent']:.1f}% iowait, "
        f"{d['steal_percent']:.1f}% steal (over {d['interval_s']:.2f} s)"
    ]


def _summary_memory(d):
    line = (
        f"memory: {d['used_percent']:.1f}% used, {human_bytes(d['available_bytes'])} available "
        f"of {human_bytes(d['total_bytes'])}"
    )
    if d["swap_total_bytes"]:
        line += f"; swap {human_bytes(d['swap_used_bytes'])} of {human_bytes(d['swap_total_bytes'])} used"
    else:
        line += "; no swap"
    return [line]


def _summary_disk(d):
    lines = [f"disk: {len(d['mounts'])} filesystem(s)" + ("" if d["complete"] else " (incomplete)")]
    for m in d["mounts"]:
        if "error" in m:
            lines.append(f"  {m['mount']} ({m['fstype']}): {m['error']}")
            continue
        inodes = f", inodes {m['inodes_used_percent']:.0f}%" if "inodes_used_percent" in m else ""
        lines.append(
            f"  {m['mount']} ({m['fstype']}): {m['used_percent']:.1f}% used, "
            f"{human_bytes(m['free_bytes'])} free of {human_bytes(m['size_bytes'])}{inodes}"
        )
    return lines


def _summary_sockets(d):
    states = d["tcp_states"]
    busy = ", ".join(f"{k} {states[k]}" for k in ("ESTABLISHED", "CLOSE_WAIT", "TIME_WAIT") if states.get(k))
    lines = [f"sockets: {d['listening_count']} listening" + (f"; tcp {busy}" if busy else "")]
    for s in d["listening"]:
        owner = f"{s['command']}[{s['pid']}]" if s["pid"] else "owner unknown"
        queue = f" accept queue {s['accept_queue']}" if s.get("accept_queue") else ""
        service = f" ({s['service']})" if s["service"] else ""
        lines.append(f"  {s['proto']:<4} {s['address']}:{s['port']} {owner}{queue}{service}")
    scan = d["scan"]
    if not scan["complete"]:
        why = (
            f"stopped at the {scan['stopped']}"
            if scan.get("stopped")
            else f"{scan['processes']} processes scanned"
        )
        if scan.get("permission_denied"):
            why += f", {scan['permission_denied']} not readable"
        lines.append(f"  owner of {scan.get('unresolved', '?')} socket(s) not found ({why})")
    return lines


def _summary_processes(d):
    lines = ["processes:"]
    for name, svc in d["services"].items():
        if "error" in svc:
            lines.append(f"  {name}: error: {svc['error']}")
            continue
        port = ""
        if "port" in svc:
            port = f", port {svc['port']} " + ("listening" if svc["port_listening"] else "NOT listening")
        if not svc["pids"]:
            lines.append(f"  {name}: NOT RUNNING ({svc.get('note', 'no process')}){port}")
            continue
        lines.append(f"  {name}: {len(svc['pids'])} process(es) by {svc['found_by']}{port}")
        for p in svc["processes"]:
            if "error" in p:
                lines.append(f"    pid {p['pid']}: {p['error']}")
                continue
            fds = "?" if p["open_files"] is None else p["open_files"]
            lines.append(
                f"    pid {p['pid']} {p['command']} {p['state']} rss {human_bytes(p['rss_bytes'])}, "
                f"{p['threads']} thread(s), {fds} fd(s), up {human_duration(p['uptime_s'])}, "
                f"{p['children_count']} child(ren)"
            )
    if len(lines) == 1:
        lines[0] += " no services given"
    return lines


def _summary_logs(d):
    lines = [f"logs (last {d['lines_requested']} lines each):"]
    for name, log in d["services"].items():
        where = log.get("path") or log.get("unit") or "-"
        if "error" in log:
            lines.append(f"  {name} ({where}): error: {log['error']}")
            continue
        extra = f", {log['note']}" if log.get("note") else ""
        lines.append(f"  {name} ({where}): {len(log['lines'])} line(s){extra}")
        for line in log["lines"][-3:]:
            lines.append(f"    | {line[:160]}")
    if len(lines) == 1:
        lines[0] += " no services given"
    return lines


def _summary_restarts(d):
    lines = ["restarts:"]
    for name, r in d["services"].items():
        if "last_24h" in r:
            last = f", last {r['last']}" if r["last"] else ""
            lines.append(f"  {name}: {r['last_24h']} in the last 24 h{last}")
        elif "nrestarts" in r:
            lines.append(f"  {name}: {r['nrestarts']} since the unit started (systemd NRestarts)")
        else:
            lines.append(f"  {name}: unknown ({r.get('error') or r.get('note')})")
    if len(lines) == 1:
        lines[0] += " no services given"
    return lines


SUMMARIES = {
    "load": _summary_load,
    "cpu": _summary_cpu,
    "memory": _summary_memory,
    "disk": _summary_disk,
    "sockets": _summary_sockets,
    "processes": _summary_processes,
    "logs": _summary_logs,
    "restarts": _summary_restarts,
}


def summarize(diagnostics):
    head = f"diagnostics of {diagnostics['host']} at {diagnostics['collected_at']}"
    lines = [f"{head} ({diagnostics['duration_s']:.2f} s)"]
    for name in diagnostics["sections"]:
        data = diagnostics[name]
        if "error" in data:
            lines.append(f"{name}: ERROR: {data['error']}")
            continue
        try:
            lines.extend(SUMMARIES[name](data))
        except (KeyError, TypeError, ValueError) as exc:  # never let the report hide the data
            lines.append(f"{name}: (cannot summarize: {describe_error(exc)})")
    return "\n".join(lines)

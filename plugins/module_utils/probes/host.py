# -*- coding: utf-8 -*-
# Copyright: (c) 2025, aitbc-ops developers
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Probes of the host itself: a process (by pidfile or name), free disk, available memory, load."""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from typing import Any

from ansible_collections.aitbc.ops.plugins.module_utils._procs import parse_meminfo, read_cmdline, read_stat
from ansible_collections.aitbc.ops.plugins.module_utils._text import human_bytes
from ansible_collections.aitbc.ops.plugins.module_utils.probes.base import Outcome, Probe, ProbeError


def _proc_stat(pid: int) -> tuple[str, str, int] | None:
    """(comm, state, ppid) from /proc/PID/stat, or None when there is no such process."""
    stat = read_stat(pid)
    return None if stat is None else (stat["comm"], stat["state"], stat["ppid"])


def _proc_cmdline(pid: int) -> str:
    return " ".join(read_cmdline(pid))


def _own_lineage() -> set[int]:
    """This process and its ancestors: their command lines may carry the pattern being searched
    (for example the ansible command that runs this module over a local connection)."""
    pids: set[int] = set()
    pid = os.getpid()
    while pid > 0 and pid not in pids:
        pids.add(pid)
        stat = _proc_stat(pid)
        pid = stat[2] if stat else 0
    return pids


def find_processes(pattern: str) -> list[int]:
    """Pids of live (non-zombie) processes whose comm equals ``pattern`` or whose command line
    contains it, leaving out this process and its ancestors."""
    skip = _own_lineage()
    found = []
    for entry in os.listdir("/proc"):
        if not entry.isdigit() or int(entry) in skip:
            continue
        pid = int(entry)
        stat = _proc_stat(pid)
        if stat is None or stat[1] in "ZX":
            continue
        if stat[0] == pattern or pattern in _proc_cmdline(pid):
            found.append(pid)
    return sorted(found)


class ProcessProbe(Probe):
    type_name = "process"
    options = {
        "pidfile": {"type": "path"},
        "process": {"type": "str"},
    }

    def setup(self) -> None:
        given = [key for key in ("pidfile", "process") if self.params.get(key) is not None]
        if len(given) != 1:
            raise ValueError("process probes need exactly one of pidfile or process")
        if self.params.get("process") == "":
            raise ValueError("process must not be empty")

    def default_name(self) -> str:
        return f"process:{self.params.get('pidfile') or self.params['process']}"

    def run(self, deadline: float) -> Outcome:
        if not os.path.isdir("/proc/self"):
            raise ProbeError("process probes need /proc (Linux)")
        if self.params.get("process") is not None:
            pids = find_processes(self.params["process"])
            data: dict[str, Any] = {"pids": pids[:50], "count": len(pids)}
            if not pids:
                return False, f"no process matches '{self.params['process']}'", data
            shown = ", ".join(str(pid) for pid in pids[:5]) + (", ..." if len(pids) > 5 else "")
            noun = "process matches" if len(pids) == 1 else "processes match"
            return True, f"{len(pids)} {noun} '{self.params['process']}' (pid {shown})", data
        pidfile = self.params["pidfile"]
        try:
            with open(pidfile, encoding="utf-8", errors="replace") as handle:
                text = handle.read(4096).strip()
        except FileNotFoundError:
            return False, f"pidfile {pidfile} not found", {}
        first = text.split()[0] if text else ""
        if not first.isdigit() or int(first) <= 0:
            return False, f"pidfile {pidfile} holds no pid", {}
        pid = int(first)
        data = {"pid": pid}
        stat = _proc_stat(pid)
        if stat is None:
            return False, f"pid {pid} from {pidfile} is not running (stale pidfile)", data
        if stat[1] in "ZX":
            return False, f"pid {pid} ({stat[0]}) from {pidfile} is a zombie", data
        return True, f"pid {pid} ({stat[0]}) is running", data


def nearest_existing(path: str) -> str:
    """``path`` itself when it exists, else its nearest existing parent: a folder not created yet (a
    service's data_dir before its first start) will land on that parent's filesystem, as ``df`` shows."""
    current = os.path.abspath(path)
    while not os.path.exists(current) and current != os.path.dirname(current):
        current = os.path.dirname(current)
    return current


@dataclass
class Filesystem:
    """One filesystem the disk probe checks, with the given paths that live on it."""

    checked: str  # the existing path statvfs was asked about
    paths: list[str] = field(default_factory=list)
    # Given paths that do not exist (yet), each with the nearest existing parent that stood in for it.
    missing: dict[str, str] = field(default_factory=dict)


def group_by_filesystem(paths: list[str]) -> list[Filesystem]:
    """The given paths grouped by the filesystem (st_dev) of their nearest existing path, in order."""
    found: dict[int, Filesystem] = {}
    for path in paths:
        checked = nearest_existing(path)
        fs = found.setdefault(os.stat(checked).st_dev, Filesystem(checked))
        if path in fs.paths:
            continue
        fs.paths.append(path)
        if checked != os.path.abspath(path):
            fs.missing[path] = checked
    return list(found.values())


def _where(fs: Filesystem) -> str:
    """'/ (also /srv/data)' or '/srv (/srv/data does not exist, checked /srv)'."""
    notes = [f"{path} does not exist, checked {parent}" for path, parent in fs.missing.items()]
    others = [path for path in fs.paths[1:] if path not in fs.missing]
    if others:
        notes.insert(0, "also " + ", ".join(others))
    return fs.paths[0] + (f" ({'; '.join(notes)})" if notes else "")


class DiskProbe(Probe):
    type_name = "disk"
    options = {
        "path": {"type": "path", "default": "/"},
        "paths": {"type": "list", "elements": "path"},
        "min_free_percent": {"type": "float"},
        "min_free_bytes": {"type": "bytes"},
    }

    def setup(self) -> None:
        p = self.params
        if p.get("min_free_percent") is None and p.get("min_free_bytes") is None:
            raise ValueError("disk probes need min_free_percent or min_free_bytes")
        if p.get("min_free_percent") is not None and not 0 <= p["min_free_percent"] <= 100:
            raise ValueError("min_free_percent must be between 0 and 100")
        if p.get("min_free_bytes") is not None and p["min_free_bytes"] < 0:
            raise ValueError("min_free_bytes must not be negative")
        if any(not path for path in p.get("paths") or []):
            raise ValueError("paths must not hold empty entries")

    def default_name(self) -> str:
        return f"disk:{self.params['path']}"

    def run(self, deadline: float) -> Outcome:
        p = self.params
        paths = [p["path"], *(p.get("paths") or [])]
        summaries, problems, filesystems = [], [], []
        for fs in group_by_filesystem(paths):
            ok, summary, data = self._check(fs)
            filesystems.append({"paths": fs.paths, "checked": fs.checked, **data})
            (summaries if ok else problems).append(summary)
        worst = min(filesystems, key=lambda entry: entry["free_percent"])
        data = {key: worst[key] for key in ("free_bytes", "total_bytes", "free_percent")}
        data["filesystems"] = filesystems
        if problems:
            return False, "; ".join(problems + summaries), data
        return True, "; ".join(summaries), data

    def _check(self, fs: Filesystem) -> Outcome:
        p = self.params
        st = os.statvfs(fs.checked)
        total = st.f_blocks * st.f_frsize
        free = st.f_bavail * st.f_frsize  # what unprivileged writers can still use
        percent = 100.0 * free / total if total else 0.0
        data = {"free_bytes": free, "total_bytes": total, "free_percent": round(percent, 2)}
        summary = f"{percent:.1f}% free ({human_bytes(free)} of {human_bytes(total)}) on {_where(fs)}"
        problems = []
        if p.get("min_free_percent") is not None and percent < p["min_free_percent"]:
            problems.append(f"minimum {p['min_free_percent']:g}%")
        if p.get("min_free_bytes") is not None and free < p["min_free_bytes"]:
            problems.append(f"minimum {human_bytes(p['min_free_bytes'])}")
        if problems:
            return False, f"only {summary}, {' and '.join(problems)}", data
        return True, summary, data


def check_memory(meminfo: dict[str, int], min_available_percent: float) -> Outcome:
    """(ok, detail, data) for the memory probe, from parse_meminfo output."""
    if "MemAvailable" not in meminfo or not meminfo.get("MemTotal"):
        raise ProbeError("MemAvailable or MemTotal missing from /proc/meminfo")
    total, available = meminfo["MemTotal"], meminfo["MemAvailable"]
    percent = 100.0 * available / total
    data = {"available_bytes": available, "total_bytes": total, "available_percent": round(percent, 2)}
    summary = f"{percent:.1f}% available ({human_bytes(available)} of {human_bytes(total)})"
    if percent < min_available_percent:
        return False, f"only {summary}, minimum {min_available_percent:g}%", data
    return True, summary, data


class MemoryProbe(Probe):
    type_name = "memory"
    options = {"min_available_percent": {"type": "float", "required": True}}

    def setup(self) -> None:
        if not 0 <= self.params["min_available_percent"] <= 100:
            raise ValueError("min_available_percent must be between 0 and 100")

    def run(self, deadline: float) -> Outcome:
        with open("/proc/meminfo", encoding="ascii", errors="replace") as handle:
            meminfo = parse_meminfo(handle.read())
        return check_memory(meminfo, self.params["min_available_percent"])


def check_load(loadavg: tuple[float, float, float], cpus: int | None, max_load_per_cpu: float) -> Outcome:
    """(ok, detail, data) for the load probe: the 1-minute load average divided by the CPU count."""
    cpus = max(int(cpus or 1), 1)
    per_cpu = loadavg[0] / cpus
    data = {"load": [round(value, 2) for value in loadavg], "cpus": cpus, "load_per_cpu": round(per_cpu, 3)}
    one, five, fifteen = loadavg
    summary = f"load {per_cpu:.2f} per cpu ({one:.2f} {five:.2f} {fifteen:.2f} on {cpus} cpus)"
    if per_cpu > max_load_per_cpu:
        return False, f"{summary}, maximum {max_load_per_cpu:g}", data
    return True, summary, data


class LoadProbe(Probe):
    type_name = "load"
    options = {"max_load_per_cpu": {"type": "float", "required": True}}

    def setup(self) -> None:
        if self.params["max_load_per_cpu"] < 0:
            raise ValueError("max_load_per_cpu must not be negative")

    def run(self, deadline: float) -> Outcome:
        return check_load(os.getloadavg(), os.cpu_count(), self.params["max_load_per_cpu"])

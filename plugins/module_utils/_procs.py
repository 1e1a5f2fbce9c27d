# -*- coding: utf-8 -*-
# Copyright: (c) 2026, aitbc-ops developers
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
"""Reading Linux /proc, shared by the probes, the service backends and diagnostics (stdlib only)."""

from __future__ import annotations

import os
import time
from typing import Any

try:
    CLK_TCK = os.sysconf("SC_CLK_TCK")
except (AttributeError, ValueError, OSError):  # pragma: no cover - not Linux
    CLK_TCK = 100

DEAD_STATES = ("Z", "X", "x")


def parse_stat(raw: str) -> dict[str, Any] | None:
    """/proc/PID/stat text -> selected fields, or None when malformed."""
    # comm is in parentheses and may itself contain spaces or parentheses: split at the last ')'.
    head, _paren, rest = raw.rpartition(")")
    fields = rest.split()
    if len(fields) < 22:
        return None
    return {
        "comm": head.partition("(")[2],
        "state": fields[0],
        "ppid": int(fields[1]),
        "pgrp": int(fields[2]),
        "session": int(fields[3]),
        "utime": int(fields[11]),
        "stime": int(fields[12]),
        "threads": int(fields[17]),
        "starttime": int(fields[19]),  # field 22 of stat: clock ticks after boot
    }


def read_stat(pid: int) -> dict[str, Any] | None:
    """parse_stat of /proc/PID/stat, or None when there is no such process."""
    try:
        with open(f"/proc/{pid}/stat", "rb") as handle:
            return parse_stat(handle.read().decode("utf-8", "replace"))
    except OSError:
        return None


def read_cmdline(pid: int) -> list[str]:
    """The argv of a process ([] when gone or a kernel thread)."""
    try:
        with open(f"/proc/{pid}/cmdline", "rb") as handle:
            raw = handle.read()
    except OSError:
        return []
    raw = raw.rstrip(b"\0")
    return [arg.decode("utf-8", "replace") for arg in raw.split(b"\0")] if raw else []


def parse_btime(stat_text: str) -> float:
    """Boot time (epoch seconds) from /proc/stat text; ValueError when absent."""
    for line in stat_text.splitlines():
        if line.startswith("btime "):
            return float(line.split()[1])
    raise ValueError("no btime in /proc/stat")


def boot_time() -> float:
    with open("/proc/stat", encoding="ascii", errors="replace") as handle:
        return parse_btime(handle.read())


def parse_meminfo(text: str) -> dict[str, int]:
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


def pid_alive(pid: int) -> bool:
    """True if the process exists and is neither a zombie nor dead."""
    stat = read_stat(pid)
    return stat is not None and stat["state"] not in DEAD_STATES


def group_alive(pgid: int) -> bool:
    """True while any live (non-zombie) process is in process group `pgid`."""
    try:
        entries = os.listdir("/proc")
    except OSError:
        return False
    for entry in entries:
        if entry.isdigit():
            stat = read_stat(int(entry))
            if stat and stat["pgrp"] == pgid and stat["state"] not in DEAD_STATES:
                return True
    return False


def proc_start_epoch(pid: int) -> float | None:
    """When the process started (epoch seconds, as exact as the whole-second boot time); None when gone.
    OSError or ValueError when /proc/stat has no boot time."""
    stat = read_stat(pid)
    return None if stat is None else boot_time() + stat["starttime"] / CLK_TCK


def proc_uptime(pid: int) -> float | None:
    """Seconds the process has been running (its start tick against the boot clock); None when gone."""
    stat = read_stat(pid)
    if stat is None:
        return None
    started_after_boot = stat["starttime"] / CLK_TCK
    try:
        with open("/proc/uptime", encoding="ascii") as handle:
            since_boot = float(handle.read().split()[0])
    except OSError:
        return round(max(0.0, time.time() - (boot_time() + started_after_boot)), 1)
    return round(max(0.0, since_boot - started_after_boot), 1)

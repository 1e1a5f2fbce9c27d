# -*- coding: utf-8 -*-
# Copyright: (c) 2026, aitbc-ops developers
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
"""Reading Linux /proc, shared by the probes, the service backends and diagnostics (stdlib only)."""

from __future__ import annotations

import os

try:
    CLK_TCK = os.sysconf("SC_CLK_TCK")
except (AttributeError, ValueError, OSError):  # pragma: no cover - not Linux
    CLK_TCK = 100

DEAD_STATES = ("Z", "X", "x")


def parse_stat(raw):
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


def read_stat(pid):
    """parse_stat of /proc/PID/stat, or None when there is no such process."""
    try:
        with open(f"/proc/{pid}/stat", "rb") as handle:
            return parse_stat(handle.read().decode("utf-8", "replace"))
    except OSError:
        return None


def read_cmdline(pid):
    """The argv of a process ([] when gone or a kernel thread)."""
    try:
        with open(f"/proc/{pid}/cmdline", "rb") as handle:
            raw = handle.read()
    except OSError:
        return []
    raw = raw.rstrip(b"\0")
    return [arg.decode("utf-8", "replace") for arg in raw.split(b"\0")] if raw else []


def parse_btime(stat_text):
    """Boot time (epoch seconds) from /proc/stat text; ValueError when absent."""
    for line in stat_text.splitlines():
        if line.startswith("btime "):
            return float(line.split()[1])
    raise ValueError("no btime in /proc/stat")


def boot_time():
    with open("/proc/stat", encoding="ascii", errors="replace") as handle:
        return parse_btime(handle.read())

# -*- coding: utf-8 -*-
# Copyright: (c) 2025, aitbc-ops developers
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""The host-wide sections: load, CPU, memory and disk."""

from __future__ import annotations

import os
import time
from typing import Any

from ansible_collections.aitbc.ops.plugins.module_utils._procs import parse_meminfo
from ansible_collections.aitbc.ops.plugins.module_utils.diagnostics.base import (
    call_with_timeout,
    describe_error,
    percent,
)
from ansible_collections.aitbc.ops.plugins.module_utils.diagnostics.context import HostContext

CPU_SAMPLE_S = 0.2
MAX_MOUNTS = 200
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


def parse_cpu_line(text: str) -> tuple[int, int, int, int]:
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


def unescape_mount(field: str) -> str:
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


class SystemSections(HostContext):
    """load, cpu, memory, disk."""

    def section_load(self, deadline: float) -> dict[str, Any]:
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

    def _own_ticks(self) -> int:
        stat = self._stat(os.getpid())
        return stat["utime"] + stat["stime"] if stat else 0

    def section_cpu(self, deadline: float) -> dict[str, Any]:
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
            "busy_percent": percent(busy, total),
            "iowait_percent": percent(iowait1 - iowait0, total),
            "steal_percent": percent(steal1 - steal0, total),
            "interval_s": round(interval, 3),
            "cpus": os.cpu_count() or 1,
            "own_ticks": own,
        }

    def section_memory(self, deadline: float) -> dict[str, Any]:
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
            "used_percent": percent(total - available, total),
            "available_percent": percent(available, total),
            "swap_total_bytes": swap_total,
            "swap_used_bytes": swap_total - swap_free,
            "swap_used_percent": percent(swap_total - swap_free, swap_total),
        }

    def section_disk(self, deadline: float) -> dict[str, Any]:
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
                    st = call_with_timeout(lambda m=mount: os.statvfs(m), left)
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
                used_percent=percent(used, used + free),
            )
            if st.f_files:
                entry["inodes_used_percent"] = percent(st.f_files - st.f_ffree, st.f_files)
            mounts.append(entry)
        return {"mounts": mounts, "skipped": skipped, "complete": complete}

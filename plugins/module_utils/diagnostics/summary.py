# -*- coding: utf-8 -*-
# Copyright: (c) 2025, aitbc-ops developers
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""The human summary of a bundle: a few lines per section."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from ansible_collections.aitbc.ops.plugins.module_utils._text import human_bytes
from ansible_collections.aitbc.ops.plugins.module_utils.diagnostics.base import describe_error, human_duration


def _summary_load(d: dict[str, Any]) -> list[str]:
    p = d["per_cpu"]
    return [
        f"load: {d['load1']:.2f} {d['load5']:.2f} {d['load15']:.2f} on {d['cpus']} cpu(s) "
        f"({p['load1']:.2f} {p['load5']:.2f} {p['load15']:.2f} per cpu), "
        f"{d['runnable']}/{d['tasks']} runnable"
    ]


def _summary_cpu(d: dict[str, Any]) -> list[str]:
    return [
        f"cpu: {d['busy_percent']:.1f}% busy, {d['iowait_percent']:.1f}% iowait, "
        f"{d['steal_percent']:.1f}% steal (over {d['interval_s']:.2f} s)"
    ]


def _summary_memory(d: dict[str, Any]) -> list[str]:
    line = (
        f"memory: {d['used_percent']:.1f}% used, {human_bytes(d['available_bytes'])} available "
        f"of {human_bytes(d['total_bytes'])}"
    )
    if d["swap_total_bytes"]:
        line += f"; swap {human_bytes(d['swap_used_bytes'])} of {human_bytes(d['swap_total_bytes'])} used"
    else:
        line += "; no swap"
    return [line]


def _summary_disk(d: dict[str, Any]) -> list[str]:
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


def _summary_sockets(d: dict[str, Any]) -> list[str]:
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


def _summary_processes(d: dict[str, Any]) -> list[str]:
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


def _summary_logs(d: dict[str, Any]) -> list[str]:
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


def _summary_restarts(d: dict[str, Any]) -> list[str]:
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


SUMMARIES: dict[str, Callable[[dict[str, Any]], list[str]]] = {
    "load": _summary_load,
    "cpu": _summary_cpu,
    "memory": _summary_memory,
    "disk": _summary_disk,
    "sockets": _summary_sockets,
    "processes": _summary_processes,
    "logs": _summary_logs,
    "restarts": _summary_restarts,
}


def summarize(diagnostics: dict[str, Any]) -> str:
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

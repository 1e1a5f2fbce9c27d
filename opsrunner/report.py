"""Turning run records into what people and CI read: tables, JSON."""

from __future__ import annotations

from dataclasses import asdict
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

from .memory import DailyEntry, format_time
from .recorder import RunRecord

HOST_COLUMNS = ("ok", "changed", "failed", "unreachable", "skipped")


def table(headers: list[str], rows: list[list[str]]) -> str:
    widths = [max(len(str(cell)) for cell in column) for column in zip(headers, *rows, strict=False)]
    lines = [
        "  ".join(str(cell).ljust(width) for cell, width in zip(row, widths, strict=False))
        for row in [headers, *rows]
    ]
    return "\n".join(line.rstrip() for line in lines)


def summary_text(record: RunRecord, artifact_dir: Path | None = None) -> str:
    rows = [
        [host, *(str(getattr(stats, c)) for c in HOST_COLUMNS)]
        for host, stats in sorted(record.hosts.items())
    ]
    parts = [table(["HOST", *(c.upper() for c in HOST_COLUMNS)], rows)] if rows else ["(no hosts ran)"]
    parts += [f"  ! {failure.describe()}" for failure in record.failures]
    parts += [f"  - {detail}" for detail in record.details]
    parts.append(f"{record.playbook}: {record.outcome} (exit {record.exit_code}), run {record.run_id}")
    return "\n".join(parts)


def record_json(record: RunRecord, artifact_dir: Path | None = None) -> dict[str, Any]:
    data = record.to_dict()
    data.pop("results", None)  # module results are for hooks; commands add what they need
    if artifact_dir is not None:
        data["artifact_dir"] = str(artifact_dir)
    return data


def entry_json(entry: DailyEntry) -> dict[str, Any]:
    data = asdict(entry)
    data["time"] = format_time(entry.time)
    return data


# -- demo status ----------------------------------------------------------------------------------


def _items(result: dict[str, Any]) -> list[dict[str, Any]]:
    """A looped task's per-item results, or the single result."""
    items = result.get("results")
    if isinstance(items, list) and items and isinstance(items[0], dict) and "ansible_loop_var" in items[0]:
        return items
    return [result]


def port_of(target: str) -> str:
    if "://" in target:
        parts = urlsplit(target)
        return str(parts.port or "")
    _, sep, port = target.rpartition(":")
    return port if sep and port.isdigit() else ""


def demo_rows(record: RunRecord) -> list[dict[str, Any]]:
    """One row per host and service: backend, active, pid, port, health."""
    rows: dict[tuple[str, str], dict[str, Any]] = {}
    for result in record.results_for("aitbc.ops.service"):
        for item in _items(result.result):
            service = item.get("service") or {}
            name = service.get("name") or str(item.get("item", "?"))
            rows[(result.host, name)] = {
                "host": result.host,
                "service": name,
                "backend": service.get("backend", ""),
                "active": bool(service.get("active")),
                "pid": service.get("pid"),
                "port": "",
                "health": "-",
                "detail": "",
            }
    for result in record.results_for("aitbc.ops.health"):
        for probe in result.result.get("results", []):
            key = (result.host, probe.get("service") or probe.get("name", "?"))
            row = rows.setdefault(
                key,
                {
                    "host": key[0],
                    "service": key[1],
                    "backend": "",
                    "active": None,
                    "pid": None,
                    "port": "",
                    "health": "-",
                    "detail": "",
                },
            )
            row["port"] = row["port"] or port_of(str(probe.get("target", "")))
            row["health"] = "ok" if probe.get("ok") and row["health"] in ("-", "ok") else "FAIL"
            if not probe.get("ok"):
                row["detail"] = probe.get("detail", "")
    return [rows[key] for key in sorted(rows)]


def demo_table(rows: list[dict[str, Any]]) -> str:
    if not rows:
        return "(no services reported)"
    body = [
        [
            r["host"],
            r["service"],
            r["backend"] or "-",
            {True: "running", False: "stopped", None: "-"}[r["active"]],
            str(r["pid"] or "-"),
            str(r["port"] or "-"),
            r["health"] + (f" ({r['detail']})" if r["detail"] else ""),
        ]
        for r in rows
    ]
    return table(["HOST", "SERVICE", "BACKEND", "STATE", "PID", "PORT", "HEALTH"], body)


# -- heartbeat ------------------------------------------------------------------------------------


def heartbeat_rows(hosts: dict[str, Any]) -> list[list[str]]:
    """HOST x SERVICE rows from HeartbeatHooks.hosts: ok, or FAIL with the first failing probe."""
    rows = []
    for host, report in sorted(hosts.items()):
        if report.unreachable:
            rows.append([host, "-", "UNREACHABLE", report.unreachable])
            continue
        services: dict[str, list[dict[str, Any]]] = {}
        for probe in report.final.values():
            services.setdefault(probe.get("service") or "host", []).append(probe)
        restarted = {r["service"] for r in report.restarts}
        for service, probes in sorted(services.items()):
            if service in report.held:  # stopped on purpose: not a failure (opsrunner.holds)
                rows.append([host, service, "held", report.held[service]])
                continue
            failing = [p for p in probes if not p.get("ok")]
            state = "FAIL" if failing else ("ok (restarted)" if service in restarted else "ok")
            detail = f"{failing[0].get('name')}: {failing[0].get('detail')}" if failing else ""
            rows.append([host, service, state, detail])
    return rows


def heartbeat_table(hosts: dict[str, Any]) -> str:
    rows = heartbeat_rows(hosts)
    return table(["HOST", "SERVICE", "STATUS", "DETAIL"], rows) if rows else "(no host reported)"


def junit_xml(hosts: dict[str, Any], name: str = "heartbeat") -> str:
    """One testcase per host + probe (and one per unreachable host), so CI shows every check."""
    import xml.etree.ElementTree as ET

    suite = ET.Element("testsuite", name=name)
    cases = failures = 0
    for host, report in sorted(hosts.items()):
        probes = [
            ("reachable", {"ok": not report.unreachable, "detail": report.unreachable, "latency_ms": 0})
        ]
        probes += sorted(report.final.items())
        for probe_name, probe in probes:
            case = ET.SubElement(suite, "testcase", classname=host, name=probe_name)
            case.set("time", f"{float(probe.get('latency_ms') or 0) / 1000:.3f}")
            cases += 1
            if not probe.get("ok"):
                failures += 1
                failure = ET.SubElement(case, "failure", message=str(probe.get("detail", ""))[:500])
                failure.text = str(probe.get("detail", ""))
    suite.set("tests", str(cases))
    suite.set("failures", str(failures))
    return ET.tostring(suite, encoding="unicode", xml_declaration=True) + "\n"


def service_rows(record: RunRecord) -> list[list[str]]:
    rows = []
    for result in record.results_for("aitbc.ops.service"):
        service = result.result.get("service") or {}
        state = {True: "running", False: "stopped"}.get(service.get("active"), "-")
        rows.append(
            [
                result.host,
                str(service.get("name", "?")),
                str(service.get("backend", "-")),
                state,
                str(service.get("pid") or "-"),
                str(service.get("uptime_s") or "-"),
                "yes" if result.result.get("changed") else "no",
            ]
        )
    return rows


def incident_rows(incidents: list[Any]) -> list[list[str]]:
    return [
        [
            i.id,
            i.status,
            "yes" if i.escalated else "no",
            i.host,
            i.service,
            i.check,
            format_time(i.opened),
            format_time(i.updated),
        ]
        for i in incidents
    ]


def age_text(seconds: float | None) -> str:
    if seconds is None:
        return "-"
    minutes = int(seconds // 60)
    if minutes < 60:
        return f"{minutes}m"
    hours, minutes = divmod(minutes, 60)
    if hours < 48:
        return f"{hours}h{minutes:02d}m"
    return f"{hours // 24}d{hours % 24:02d}h"


def size_text(size: float) -> str:
    for unit in ("B", "KiB", "MiB", "GiB"):
        if size < 1024 or unit == "GiB":
            return f"{size:.0f} {unit}" if unit == "B" else f"{size:.1f} {unit}"
        size /= 1024
    return f"{size:.1f} GiB"


def backup_set_rows(record: RunRecord) -> list[dict[str, Any]]:
    """One row per backup set (and leftover folder) of each host, from aitbc.ops.backup_info results."""
    rows = []
    for result in record.results_for("aitbc.ops.backup_info"):
        for row in result.result.get("sets") or []:
            rows.append({"host": result.host, **row})
        for row in result.result.get("leftovers") or []:
            rows.append({"host": result.host, **row, "verified": None, "complete": False})
    return rows


def backup_table(rows: list[dict[str, Any]]) -> str:
    def verified(row: dict[str, Any]) -> str:
        if not row.get("complete"):
            return "INCOMPLETE"
        return {True: "yes", False: "FAILED", None: "no"}[row.get("verified")]

    body = [
        [
            row["host"],
            row["set"],
            age_text(row.get("age_s")),
            size_text(row.get("bytes") or 0),
            str(row.get("files") or "-"),
            verified(row),
            row.get("label") or "-",
            row["path"],
        ]
        for row in rows
    ]
    headers = ["HOST", "SET", "AGE", "SIZE", "FILES", "VERIFIED", "LABEL", "PATH"]
    return table(headers, body) if body else "no backup sets"


def verify_rows(record: RunRecord) -> list[dict[str, Any]]:
    rows = []
    for result in record.results_for("aitbc.ops.backup_verify"):
        for item in result.result.get("sets") or []:
            failed = [
                f"{c['file']}: {c['check']}: {c['detail']}" for c in item.get("checks") or [] if not c["ok"]
            ]
            rows.append(
                {
                    "host": result.host,
                    "set": item.get("set"),
                    "ok": item.get("ok"),
                    "failed": failed,
                    "checks": len(item.get("checks") or []),
                }
            )
        if result.failed and not result.result.get("sets"):
            rows.append(
                {
                    "host": result.host,
                    "set": "-",
                    "ok": False,
                    "failed": [str(result.result.get("msg", "failed"))],
                    "checks": 0,
                }
            )
    return rows

"""Report the jobs aitbc.ops.schedule installed on this host, on both backends. Changes nothing.

Prints one JSON object: {"jobs": [{job, backend, unit, schedule, next, last, state, command}],
"lines": [human-readable summary], "list_timers": [systemctl list-timers output]}.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import subprocess


def systemctl(*args: str) -> str:
    try:
        proc = subprocess.run(["systemctl", *args], capture_output=True, text=True, timeout=30, check=False)
    except (OSError, subprocess.TimeoutExpired):
        return ""
    return proc.stdout.strip()


def read(path: str) -> str:
    try:
        with open(path, encoding="utf-8", errors="replace") as fh:
            return fh.read()
    except OSError:
        return ""


def systemd_jobs(unit_dir: str, prefix: str, marker: str, running: bool) -> list[dict[str, str]]:
    jobs = []
    try:
        names = sorted(os.listdir(unit_dir))
    except OSError:
        return jobs
    for name in names:
        if not (name.startswith(prefix + "-") and name.endswith(".timer")):
            continue
        timer = read(os.path.join(unit_dir, name))
        if marker not in timer:
            continue
        service = read(os.path.join(unit_dir, name[: -len(".timer")] + ".service"))
        calendar = re.search(r"^OnCalendar=(.*)$", timer, re.M)
        command = re.search(r"^# Job [^:]*: (.*)$", service, re.M)
        job = {
            "job": name[len(prefix) + 1 : -len(".timer")],
            "backend": "systemd",
            "unit": name,
            "schedule": calendar.group(1).strip() if calendar else "?",
            "next": "-",
            "last": "-",
            "state": "systemd not running",
            "command": command.group(1).strip() if command else "?",
        }
        if running:
            props = dict(
                line.split("=", 1)
                for line in systemctl(
                    "show",
                    "--property=NextElapseUSecRealtime,LastTriggerUSec,ActiveState,UnitFileState",
                    name,
                ).splitlines()
                if "=" in line
            )
            job["next"] = props.get("NextElapseUSecRealtime") or "-"
            job["last"] = props.get("LastTriggerUSec") or "-"
            job["state"] = f"{props.get('ActiveState', '?')}, {props.get('UnitFileState', '?')}"
        jobs.append(job)
    return jobs


def cron_jobs(cron_file: str, prefix: str) -> list[dict[str, str]]:
    jobs, name = [], None
    for line in read(cron_file).splitlines():
        if line.startswith("#Ansible: "):
            name = line[len("#Ansible: ") :].strip()
            continue
        if name is None or not line.strip():
            continue
        fields = line.split()
        width = 1 if fields[0].startswith("@") else 5
        jobs.append(
            {
                "job": name[len(prefix) + 1 :] if name.startswith(prefix + "-") else name,
                "backend": "cron",
                "unit": cron_file,
                "schedule": " ".join(fields[:width]),
                "next": "-",
                "last": "-",
                "state": f"runs as {fields[width]}" if len(fields) > width else "?",
                "command": " ".join(fields[width + 1 :]),
            }
        )
        name = None
    return jobs


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--prefix", required=True)
    parser.add_argument("--marker", required=True)
    parser.add_argument("--systemd-dir", required=True)
    parser.add_argument("--cron-file", required=True)
    args = parser.parse_args()
    running = os.path.isdir("/run/systemd/system")
    jobs = systemd_jobs(args.systemd_dir, args.prefix, args.marker, running)
    jobs += cron_jobs(args.cron_file, args.prefix)
    lines = []
    for job in jobs:
        if job["backend"] == "systemd":
            lines.append(
                f"{job['job']}: systemd {job['unit']} OnCalendar={job['schedule']} next={job['next']}"
                f" last={job['last']} ({job['state']}) runs: {job['command']}"
            )
        else:
            lines.append(
                f"{job['job']}: cron {job['unit']} '{job['schedule']}' ({job['state']})"
                f" runs: {job['command']}"
            )
    if not jobs:
        lines.append(f"no {args.prefix} jobs installed ({args.systemd_dir}, {args.cron_file})")
    list_timers = []
    if running:
        out = systemctl("list-timers", "--all", "--no-pager", f"{args.prefix}-*.timer")
        list_timers = out.splitlines()
    print(json.dumps({"jobs": jobs, "lines": lines, "list_timers": list_timers}))


if __name__ == "__main__":
    main()

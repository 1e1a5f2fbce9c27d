"""`opsrunner diagnose HOST [SERVICE]`: an incident bundle of one host, kept in memory and read by people.

playbooks/diagnose.yml runs `aitbc.ops.diagnostics` on HOST for SERVICE (or every service of the host's
catalogue): load, CPU, memory, disk per mount, listening sockets with their processes (from /proc, no
lsof/netstat/ss), the service's processes with RSS and open files, its last log lines, and its restarts
(systemd's count where it has a unit). `DiagnoseHooks` turns the result into:

- a bundle file, `knowledge/diagnostics/<host>/<run id>-<service|all>.md`: the readable report and the
  structured data (a JSON block, `load_bundle()` reads it back). The daily entry of the run links it;
  daily entries themselves stay one line per detail, too small for log tails and socket tables.
- the restarts the ops agent recorded for those services in the last 24 hours (heartbeat restarts and
  deploy switches, from the daily memory), which process backends cannot tell from the host itself;
- a timeline link in every open incident of the host (of SERVICE, and the host's own), and the bundle's
  summary as the incident's Diagnostics when it has none yet (the heartbeat's own bundle is kept).

The command itself is opsrunner/cli/diagnose.py; this module is what it and the memory callback share.
"""

from __future__ import annotations

import datetime as dt
import json
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from .ansible_yaml import AnyTagLoader
from .heartbeat import HOST_SERVICE
from .incidents import STATE_FILE, IncidentStore
from .memory import MemoryStore, atomic_write, format_time, utcnow
from .recorder import Recorder, RunRecord, TaskResult, first_bad_request
from .settings import BadInput

BUNDLE_DIR = "knowledge/diagnostics"
DEFAULT_LOG_LINES = 50
RESTART_WINDOW = dt.timedelta(hours=24)
# Daily-memory details that are restarts of a service (heartbeat remediation, deploy switches).
HEARTBEAT_RESTART_RE = re.compile(r"^(?P<host>\S+): restarted (?P<service>\S+): (?P<what>.*)$")
DEPLOY_SWITCH_RE = re.compile(r"^(?P<host>\S+): (?P<service>\S+) switched (?P<what>.*)$")
REPORT_INDENT = "  "
PLAIN_HOST_RE = re.compile(r"^[A-Za-z0-9_.-]+$")  # a host name, not a pattern (groups, globs, ranges)
SERVICE_VAR = "diagnose_service"  # playbooks/diagnose.yml's variable: the service to diagnose


# -- the bundle ------------------------------------------------------------------------------------


@dataclass
class Bundle:
    """One host's diagnostics from one run, with what the controller adds to it."""

    host: str
    service: str  # "" = every service of the catalogue
    result: dict[str, Any]  # the module's result: diagnostics, summary, msg, failed_sections
    run_id: str
    recorded_restarts: dict[str, list[str]] = field(default_factory=dict)
    path: str = ""  # relative to the memory root
    incidents: list[str] = field(default_factory=list)

    @property
    def diagnostics(self) -> dict[str, Any]:
        return self.result.get("diagnostics") or {}

    def services(self) -> list[str]:
        """The services the bundle covers, in the order the module reported them."""
        for section in ("processes", "logs", "restarts"):
            names = (self.diagnostics.get(section) or {}).get("services")
            if isinstance(names, dict):
                return list(names)
        return [self.service] if self.service else []

    def relpath(self) -> str:
        host = re.sub(r"[^A-Za-z0-9._-]", "_", self.host)
        return f"{BUNDLE_DIR}/{host}/{self.run_id}-{self.service or 'all'}.md"

    def brief(self) -> str:
        """The module's summary plus the recorded restarts: what an incident record carries."""
        return "\n".join([str(self.result.get("summary") or ""), *restart_lines(self.recorded_restarts)])

    def report(self) -> str:
        """The readable report: every section, the recorded restarts and the full log tails."""
        lines = _without_logs(str(self.result.get("summary") or f"diagnostics of {self.host}"))
        lines += restart_lines(self.recorded_restarts)
        lines += log_lines(self.diagnostics.get("logs"))
        return "\n".join(lines)

    def to_json(self) -> dict[str, Any]:
        return {
            "host": self.host,
            "service": self.service or None,
            "path": self.path,
            "incidents": self.incidents,
            "recorded_restarts": self.recorded_restarts,
            "failed_sections": self.result.get("failed_sections") or [],
            "diagnostics": self.diagnostics,
        }

    def to_markdown(self) -> str:
        data = json.dumps(self.to_json(), indent=1, sort_keys=True)
        lines = [
            f"# Diagnostics: {self.host} {self.service or '(all services)'}",
            "",
            f"- **Host:** {self.host}",
            f"- **Service:** {self.service or 'all'}",
            f"- **Collected:** {self.diagnostics.get('collected_at') or '-'}",
            f"- **Run:** {self.run_id}",
            f"- **Incidents:** {', '.join(self.incidents) or 'none'}",
            "",
            "## Report",
            "",
            "```text",
            self.report(),
            "```",
            "",
            "## Data",
            "",
            "```json",
            data,
            "```",
        ]
        return "\n".join(lines) + "\n"


def load_bundle(path: str | Path) -> dict[str, Any]:
    """The structured data of a bundle file (what `--json` printed for it)."""
    text = Path(path).read_text()
    _, _, data = text.partition("\n## Data\n")
    start, end = data.find("```json\n"), data.rfind("\n```")
    if start < 0 or end < start:
        raise ValueError(f"{path}: no data block")
    return json.loads(data[start + len("```json\n") : end])


def _without_logs(summary: str) -> list[str]:
    """The module's summary without its logs part (three lines per service); the report has them all."""
    kept: list[str] = []
    skipping = False
    for line in summary.splitlines():
        if line.startswith(("logs (last", "logs:")):
            skipping = True
            continue
        if skipping and line.startswith(REPORT_INDENT):
            continue
        skipping = False
        kept.append(line)
    return kept


def restart_lines(recorded: dict[str, list[str]]) -> list[str]:
    if not recorded:
        return []
    lines = [f"restarts recorded by the ops agent (last {RESTART_WINDOW.total_seconds() / 3600:.0f} h):"]
    for name, events in recorded.items():
        lines.append(f"{REPORT_INDENT}{name}: {len(events) or 'none'}")
        lines += [f"{REPORT_INDENT * 2}{event}" for event in events]
    return lines


def log_lines(logs: dict[str, Any] | None) -> list[str]:
    """Every log line of every service, as `    | line` (so no line reads as Markdown)."""
    if not logs:
        return []
    if "error" in logs:
        return [f"logs: ERROR: {logs['error']}"]
    lines = [f"logs (last {logs.get('lines_requested', '?')} lines each):"]
    for name, log in (logs.get("services") or {}).items():
        lines += _log_block(name, log)
        if isinstance(log.get("journal"), dict):
            lines += _log_block(f"{name} journal", log["journal"])
    return lines


def _log_block(name: str, log: dict[str, Any]) -> list[str]:
    where = log.get("path") or log.get("unit") or "-"
    if "error" in log:
        return [f"{REPORT_INDENT}{name} ({where}): error: {log['error']}"]
    got = log.get("lines") or []
    note = f", {log['note']}" if log.get("note") else ""
    return [f"{REPORT_INDENT}{name} ({where}): {len(got)} line(s){note}"] + [
        f"{REPORT_INDENT * 2}| {line}" for line in got
    ]


# -- what the controller knows ---------------------------------------------------------------------


def recorded_restarts(
    store: MemoryStore, host: str, services: list[str], now: dt.datetime
) -> dict[str, list[str]]:
    """Restarts of the services on host in the daily memory of the last 24 hours, oldest first."""
    since = now - RESTART_WINDOW
    found: dict[str, list[str]] = {name: [] for name in services}
    for day in sorted({since.date(), now.date()}):
        try:
            entries = store.read_daily(day)
        except (OSError, ValueError):
            continue  # a hand-mangled daily file is no reason to fail a diagnosis
        for entry in entries:
            if entry.time < since:
                continue
            for detail in entry.details:
                restart = _restart_of(detail)
                if restart and restart[0] == host and restart[1] in found:
                    found[restart[1]].append(f"{format_time(entry.time)} {restart[2]}")
    return found


def _restart_of(detail: str) -> tuple[str, str, str] | None:
    match = HEARTBEAT_RESTART_RE.match(detail)
    if match:
        return match["host"], match["service"], f"heartbeat restart: {match['what']}"
    match = DEPLOY_SWITCH_RE.match(detail)
    if match:
        return match["host"], match["service"], f"release switch {match['what']}"
    return None


def write_and_attach(store: MemoryStore, bundle: Bundle) -> None:
    """Write the bundle file and link it from the open incidents of its host (and service)."""
    incidents = IncidentStore(store)
    bundle.path = bundle.relpath()
    with store.locked(STATE_FILE):  # the heartbeat rewrites open incidents under this lock
        targets = [
            incident
            for incident in incidents.all()
            if incident.active
            and incident.host == bundle.host
            and (not bundle.service or incident.service in (bundle.service, HOST_SERVICE))
        ]
        bundle.incidents = [incident.id for incident in targets]
        atomic_write(store.path(bundle.path), bundle.to_markdown())
        for incident in targets:
            incident.note(f"diagnostics taken: [{bundle.path}](../{bundle.path})")
            incident.diagnostics = incident.diagnostics or bundle.brief()
            incidents.save(incident)


# -- recorder hooks --------------------------------------------------------------------------------


class DiagnoseHooks:
    """Collects the `aitbc.ops.diagnostics` results of a diagnose run; at its end writes the bundles.

    The bundles are of the run's `diagnose_service` (the command's SERVICE), or of every service."""

    def __init__(self, recorder: Recorder) -> None:
        self.service = str(recorder.extra_vars.get(SERVICE_VAR) or "")
        self.results: dict[str, dict[str, Any]] = {}
        self.bundles: list[Bundle] = []
        recorder.result_hooks.append(self.on_result)
        recorder.finish_hooks.append(self.on_finish)

    def on_result(self, _recorder: Recorder, result: TaskResult) -> None:
        if result.action.endswith(".diagnostics") and not result.failed and result.result.get("diagnostics"):
            self.results[result.host] = result.result

    def on_finish(self, recorder: Recorder, record: RunRecord) -> None:
        store = recorder.store
        for host, result in sorted(self.results.items()):
            bundle = Bundle(host, self.service, result, record.run_id)
            self.bundles.append(bundle)
            if store is None or record.check_mode:
                continue
            store.ensure_layout()
            bundle.recorded_restarts = recorded_restarts(store, host, bundle.services(), utcnow())
            _redact(bundle, recorder.redactor.redact_text)
            write_and_attach(store, bundle)
            attached = f", attached to {', '.join(bundle.incidents)}" if bundle.incidents else ""
            record.details.append(f"{host}: diagnostics in {bundle.path}{attached}")
            record.incidents += [i for i in bundle.incidents if i not in record.incidents]


def _redact(bundle: Bundle, redact: Any) -> None:
    """Events are redacted on the way in; the restarts come from memory, already redacted. Once more, for
    values only the finished run knows (secrets discovered after the result arrived)."""
    bundle.result = json.loads(redact(json.dumps(bundle.result)))


# -- the command's checks and output ---------------------------------------------------------------


def static_names(inventory: Path) -> set[str] | None:
    """Every host and group name of a YAML inventory file, or None when that cannot be known without
    Ansible (a folder, a script, a plugin config, host ranges)."""
    if not inventory.is_file() or inventory.suffix not in (".yml", ".yaml"):
        return None
    try:
        data = yaml.load(inventory.read_text(), Loader=AnyTagLoader)  # noqa: S506 - SafeLoader subclass
    except (OSError, yaml.YAMLError):
        return None
    if not isinstance(data, dict) or "plugin" in data:
        return None
    found: set[str] = set()
    groups = list(data.items())
    while groups:
        name, group = groups.pop()
        found.add(str(name))
        if not isinstance(group, dict):
            continue
        hosts, children = group.get("hosts"), group.get("children")
        if isinstance(hosts, dict):
            found.update(str(host) for host in hosts)
        if isinstance(children, dict):
            groups += list(children.items())
    return None if any("[" in name for name in found) else found


def check_host(host: str, inventory: Path) -> None:
    """Before the run: a plain host name that a static inventory does not hold is bad input."""
    known = static_names(inventory)
    if known is not None and PLAIN_HOST_RE.match(host) and host not in known:
        raise BadInput(f"unknown host: {host} (not in {inventory})")


def check_input(record: RunRecord, host: str, inventory: Path) -> None:
    """After the run: an unknown service, one the host does not run, or a host pattern that matched no
    host, is bad input."""
    message = first_bad_request(record.failures)
    if message:
        raise BadInput(message)
    if not record.hosts:
        raise BadInput(f"unknown host: {host} (no host in {inventory} matches it)")


def render(bundles: list[Bundle], root: Path) -> str:
    parts = []
    for bundle in bundles:
        title = f"== {bundle.host} · {bundle.service or 'all services'} =="
        where = [f"bundle: {root / bundle.path}"] if bundle.path else []
        if bundle.incidents:
            where.append(f"attached to: {', '.join(bundle.incidents)}")
        parts.append("\n".join([title, bundle.report(), *where, ""]))
    return "\n".join(parts) if parts else "(no diagnostics collected)"

"""The heartbeat's controller side: from one run's probe results to incidents, escalations and alerts.

The heartbeat role runs the probes of each host in one `aitbc.ops.health` call (labelled
`heartbeat: check`), restarts what the remediation budget allows (`aitbc.ops.service`), and re-probes
(`heartbeat: recheck`). The recorder hands those results to `HeartbeatHooks`, which applies the
thresholds, keeps one incident per host + service + check, escalates when the restart budget is spent,
and alerts. The same code decides the budget the role asks for before restarting (`restart_plan`).
"""

from __future__ import annotations

import datetime as dt
import json
import logging
import re
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import asdict, dataclass, field
from typing import Any

from filelock import FileLock

from .failures import REACHABILITY_CHECK
from .holds import Holds
from .incidents import (
    CATEGORIES,
    STATE_FILE,
    Incident,
    IncidentStore,
    close,
    debugging_section,
    incident_key,
)
from .memory import MemoryStore, atomic_write, format_time, utcnow
from .recorder import Recorder, RunRecord, TaskResult
from .respond import Responder

log = logging.getLogger(__name__)

HOST_SERVICE = "host"  # probes of the host itself (disk, memory, load), and reachability
# One JSON line per heartbeat run (the status page's grid and uptime timeline), bounded in length.
HISTORY_FILE = "incidents/.heartbeat-history.jsonl"
HISTORY_MAX_LINES = 5000
HISTORY_KEEP_LINES = 4000


# Held for a whole heartbeat or assessment run: never two runs probing and restarting at once.
RUN_LOCK_TIMEOUT_S = 900.0


@contextmanager
def run_lock(store: MemoryStore, timeout: float = RUN_LOCK_TIMEOUT_S) -> Iterator[None]:
    """The heartbeat's run lock (a waiting run blocks, up to `timeout`, then raises filelock.Timeout)."""
    lock_dir = store.path(".locks")
    lock_dir.mkdir(parents=True, exist_ok=True)
    with FileLock(str(lock_dir / "heartbeat-run.lock"), timeout=timeout):
        yield


class SettingsError(ValueError):
    """A heartbeat setting out of range: a configuration error (exit 2), named by its role variable."""


# The counts of HeartbeatConfig, each at least 1: 0 would open no incident, restart on every heartbeat
# and never escalate, or never restart and so never page.
COUNTS = ("failure_threshold", "success_threshold", "max_restarts", "restart_window")


def _whole(value: Any) -> int | None:
    """A whole number from an inventory value (2, "2", 2.0), else None."""
    try:
        number = float(value)
    except (TypeError, ValueError):
        return None
    return int(number) if number.is_integer() else None


@dataclass
class HeartbeatConfig:
    """The heartbeat's thresholds, checked here, the one place: the recorder and the restart planner
    (lookup aitbc.ops.heartbeat_plan) build it, and the playbook's filter aitbc.ops.heartbeat_settings
    checks it before any host is probed."""

    failure_threshold: int = 2  # consecutive failed heartbeats before an incident opens
    success_threshold: int = 1  # consecutive healthy heartbeats before it resolves
    max_restarts: int = 3  # restarts of one service ...
    restart_window: int = 6  # ... within this many heartbeats
    remediate: bool = True
    # An assessment of these services only (the intake's scoped run): it does not count as a heartbeat.
    scope: list[str] = field(default_factory=list)
    # False: a look only (MCP's fleet_status): no incident, page, history line or dead-man ping follows.
    record: bool = True

    def __post_init__(self) -> None:
        for name in COUNTS:
            value = getattr(self, name)
            number = _whole(value)
            if number is None or number < 1:
                hint = "; to only report, set heartbeat_remediate: false (--no-remediate)"
                raise SettingsError(
                    f"heartbeat_{name} must be a whole number of 1 or more, not {value!r}"
                    + (hint if name in ("max_restarts", "restart_window") else "")
                )
            setattr(self, name, number)
        self.remediate = str(self.remediate).lower() not in ("false", "0", "no")
        self.record = str(self.record).lower() not in ("false", "0", "no")
        scope = self.scope if isinstance(self.scope, list) else []
        self.scope = [str(name) for name in scope]

    @classmethod
    def from_labels(cls, labels: dict[str, Any]) -> HeartbeatConfig:
        return cls(**{k: labels[k] for k in cls.__dataclass_fields__ if k in labels})


@dataclass
class Transition:
    kind: str  # opened | escalated | resolved | restarted | restart-failed | crashed
    incident: Incident | None
    text: str


@dataclass
class HostReport:
    """What one heartbeat saw on one host: final probe results and restarts."""

    probes: dict[str, dict[str, Any]] = field(default_factory=dict)  # probe name -> result
    rechecks: dict[str, dict[str, Any]] = field(default_factory=dict)  # after restarts
    restarts: list[dict[str, Any]] = field(default_factory=list)  # {service, ok, detail}
    diagnostics: dict[str, str] = field(default_factory=dict)  # service -> text
    unreachable: str = ""
    crashes: dict[str, str] = field(default_factory=dict)  # service -> crash systemd repaired (see _crashes)
    held: dict[str, str] = field(default_factory=dict)  # service -> why it is left stopped (opsrunner.holds)

    def counted(self, probe: dict[str, Any]) -> bool:
        """Whether a probe's result counts: a held service's do not."""
        return (probe.get("service") or HOST_SERVICE) not in self.held

    @property
    def final(self) -> dict[str, dict[str, Any]]:
        """Each probe's last result this heartbeat."""
        return {**self.probes, **self.rechecks}


@dataclass
class CheckState:
    failures: int = 0  # consecutive failed heartbeats
    successes: int = 0  # consecutive healthy heartbeats
    last_ok: bool = True
    last_detail: str = ""


@dataclass
class HeartbeatState:
    """What thresholds and the remediation budget need from earlier heartbeats."""

    sequence: int = 0
    checks: dict[str, CheckState] = field(default_factory=dict)
    # host|service -> heartbeat sequence numbers at which it was restarted
    restarts: dict[str, list[int]] = field(default_factory=dict)
    # host|service -> systemd's NRestarts as a `service` probe last reported it
    unit_restarts: dict[str, int] = field(default_factory=dict)

    @classmethod
    def load(cls, store: MemoryStore) -> HeartbeatState:
        path = store.path(STATE_FILE)
        if not path.is_file():
            return cls()
        data = json.loads(path.read_text())
        return cls(
            sequence=data.get("sequence", 0),
            checks={key: CheckState(**value) for key, value in data.get("checks", {}).items()},
            restarts={key: list(value) for key, value in data.get("restarts", {}).items()},
            unit_restarts={key: int(value) for key, value in data.get("unit_restarts", {}).items()},
        )

    def save(self, store: MemoryStore) -> None:
        data = {
            "sequence": self.sequence,
            "checks": {key: asdict(value) for key, value in sorted(self.checks.items())},
            "restarts": self.restarts,
            "unit_restarts": dict(sorted(self.unit_restarts.items())),
        }
        atomic_write(store.path(STATE_FILE), json.dumps(data, indent=1, sort_keys=True) + "\n")

    def restarts_within(self, host: str, service: str, window: int) -> int:
        floor = self.sequence - window
        return sum(1 for seq in self.restarts.get(f"{host}|{service}", []) if seq > floor)

    def prune(self, window: int) -> None:
        floor = self.sequence - window
        self.restarts = {
            k: [s for s in v if s > floor] for k, v in self.restarts.items() if any(s > floor for s in v)
        }


AlertSender = Callable[[str, Incident, str], None]


def restart_plan(
    store: MemoryStore, host: str, failing: list[dict[str, Any]], config: HeartbeatConfig
) -> list[str]:
    """Services of `host` to restart now: failing for long enough to open an incident, within budget."""
    if not config.remediate:
        return []
    state = HeartbeatState.load(store)
    upcoming = state.sequence + (0 if config.scope else 1)
    paused = paused_services(store, host)
    plan: list[str] = []
    for probe in failing:
        service = probe.get("service") or ""
        if not service or service == HOST_SERVICE or service in plan or service in paused:
            continue
        if probe.get("category") == "security":
            continue
        prior = state.checks.get(incident_key(host, service, probe["name"]), CheckState())
        if prior.failures + 1 < config.failure_threshold:
            continue
        window_start = upcoming - config.restart_window
        used = sum(1 for seq in state.restarts.get(f"{host}|{service}", []) if seq > window_start)
        if used < config.max_restarts:
            plan.append(service)
    return plan


def paused_services(store: MemoryStore, host: str) -> set[str]:
    """Services of `host` nobody may restart now: an incident of theirs waits for guidance, or is a
    security incident (a person decides what happens to a service that may be compromised), or an
    operator stopped it on purpose (held, opsrunner.holds)."""
    return {
        incident.service
        for incident in IncidentStore(store).active().values()
        if incident.host == host and (incident.status == "needs-guidance" or incident.category == "security")
    } | set(Holds(store).on(host))


class HeartbeatHooks:
    """Recorder hooks for heartbeat runs (the runner and the memory callback register the same)."""

    def __init__(
        self, recorder: Recorder, send_alert: AlertSender | None = None, expected: bool = True
    ) -> None:
        """`expected`: this run is a heartbeat (its unreachable hosts count even if no probe ran)."""
        self.recorder = recorder
        # None: the run's Responder, made when the run finishes (the recorder's context, the inventory's
        # page routes, is known only once the run's variables have been read).
        self.send_alert = send_alert
        self.expected = expected
        self.hosts: dict[str, HostReport] = {}
        self.config: HeartbeatConfig | None = None
        self.transitions: list[Transition] = []
        recorder.result_hooks.append(self.on_result)
        recorder.finish_hooks.append(self.on_finish)

    @property
    def active(self) -> bool:
        return self.expected or self.config is not None

    @property
    def scoped(self) -> bool:
        """An assessment of some services (the intake's), not a heartbeat of the whole fleet."""
        return bool(self.config and self.config.scope)

    @staticmethod
    def _config(labels: dict[str, Any]) -> HeartbeatConfig:
        """The run's thresholds. The playbook checked them before any probe (filter heartbeat_settings); a
        run that skipped that check gets the defaults rather than a recorder that stops mid-run."""
        try:
            return HeartbeatConfig.from_labels(labels)
        except SettingsError as exc:
            log.warning("heartbeat settings ignored, defaults used: %s", exc)
            return HeartbeatConfig()

    def healthy(self) -> bool:
        """No host unreachable, every final probe ok, and no crash that systemd repaired since the last run
        (known once the state is applied)."""
        return all(
            not r.unreachable
            and not r.crashes
            and all(p.get("ok") or not r.counted(p) for p in r.final.values())
            for r in self.hosts.values()
        )

    def unreachable(self) -> list[str]:
        return sorted(host for host, report in self.hosts.items() if report.unreachable)

    def report(self, host: str) -> HostReport:
        return self.hosts.setdefault(host, HostReport())

    def on_result(self, _recorder: Recorder, result: TaskResult) -> None:
        res = result.result
        if result.action.endswith(".health"):
            labels = res.get("labels") or {}
            if "heartbeat" not in labels:
                return
            self.config = self.config or self._config(labels)
            target = self.report(result.host).rechecks if labels["heartbeat"] == "recheck" else None
            target = target if target is not None else self.report(result.host).probes
            for probe in res.get("results") or []:
                target[probe.get("name", "?")] = probe
        elif result.action.endswith(".service") and res.get("results"):
            for item in res["results"]:
                # A failed restart may carry no `service` block: the loop item names the service.
                name = (item.get("service") or {}).get("name") or item.get("item")
                if item.get("skipped") or not isinstance(name, str):
                    continue
                detail = item.get("msg", "")
                if item.get("log_tail"):
                    detail = f"{detail} (log: {' | '.join(map(str, item['log_tail'][-2:]))})"
                self.report(result.host).restarts.append(
                    {"service": name, "ok": not item.get("failed"), "detail": detail}
                )
        elif result.action.endswith(".diagnostics") and res.get("summary"):
            # One bundle per host, taken while its checks failed; every incident opened there gets it.
            self.report(result.host).diagnostics[HOST_SERVICE] = str(res["summary"])

    def _apply_holds(self, store: MemoryStore, record: RunRecord) -> None:
        """Mark the held services of each host (opsrunner.holds). One that passes every check again was
        started by other means (a deploy, by hand): its hold goes, and it counts as any other."""
        running_again: list[tuple[str, str]] = []
        for host, held in Holds(store).all().items():
            report = self.hosts.get(host)
            if report is None or report.unreachable:
                continue
            for service, hold in held.items():
                probes = [p for p in report.final.values() if (p.get("service") or HOST_SERVICE) == service]
                if probes and all(p.get("ok") for p in probes):
                    running_again.append((host, service))
                    record.details.append(f"{host}: {service} runs again: no longer held")
                else:
                    report.held[service] = hold.describe()
        if running_again and (self.config or HeartbeatConfig()).record:
            Holds(store).change([], running_again)

    def on_finish(self, recorder: Recorder, record: RunRecord) -> None:
        if not self.active:
            return
        record.event = "heartbeat"
        if recorder.store is not None:
            self._apply_holds(recorder.store, record)
        if record.outcome == "ok" and not self.healthy():
            record.outcome = "unhealthy"
        for failure in record.failures:
            if failure.unreachable:
                self.report(failure.host).unreachable = failure.message
        store = recorder.store
        if store is None or not (self.config or HeartbeatConfig()).record:
            return
        store.ensure_layout()
        with store.locked(STATE_FILE):
            self.transitions = apply(
                store, self.hosts, self.config or HeartbeatConfig(), recorder.redactor.redact_text
            )
            if not self.scoped:
                entry = history_entry(
                    record.run_id, record.finished or utcnow(), self.hosts, recorder.redactor.redact_text
                )
                append_history(store, entry)
        if record.outcome == "ok" and not self.healthy():  # a crash systemd repaired is a failure too
            record.outcome = "unhealthy"
        for transition in self.transitions:
            record.details.append(transition.text)
            if transition.incident and transition.incident.id not in record.incidents:
                record.incidents.append(transition.incident.id)
        respond = self.send_alert if self.send_alert is not None else Responder.for_run(recorder)
        for transition in self.transitions:
            if transition.incident is not None and transition.kind in PAGED_KINDS:
                respond(transition.kind, transition.incident, transition.text)
        if isinstance(respond, Responder):
            respond.remind(list(IncidentStore(store).active().values()))
            respond.retry_tickets()
        if not self.scoped:
            ping_deadman(recorder.context.get("aitbc_heartbeat_ping_url"), record, recorder.redactor)


def history_entry(
    run_id: str, when: dt.datetime, hosts: dict[str, HostReport], redact: Callable[[str], str]
) -> dict[str, Any]:
    """One heartbeat as a history line: per host, unreachable (or "") and each service's final state.

    Services group the final probes as the heartbeat table does: a service is ok when all its probes are.
    """
    return {
        "time": format_time(when),
        "run_id": run_id,
        "hosts": {
            host: {"unreachable": redact(report.unreachable), "services": _service_states(report, redact)}
            for host, report in sorted(hosts.items())
        },
    }


def _service_states(report: HostReport, redact: Callable[[str], str]) -> dict[str, dict[str, Any]]:
    if report.unreachable:
        return {}
    grouped: dict[str, list[tuple[str, dict[str, Any]]]] = {}
    for name, probe in sorted(report.final.items()):
        grouped.setdefault(probe.get("service") or HOST_SERVICE, []).append((name, probe))
    restarted = {r["service"] for r in report.restarts if r.get("ok")}
    states = {}
    for service, probes in sorted(grouped.items()):
        if service in report.held:  # down on purpose: a status page says down, and why
            states[service] = {"ok": False, "held": True, "detail": redact(report.held[service])}
            continue
        failing = [(name, probe) for name, probe in probes if not probe.get("ok")]
        if failing:
            name, probe = failing[0]
            detail = f"{name}: {probe.get('detail', '')}"
        elif service in report.crashes:
            detail = report.crashes[service]
        else:
            detail = "restarted by the heartbeat" if service in restarted else ""
        states[service] = {"ok": not failing and service not in report.crashes, "detail": redact(detail)}
    return states


def append_history(store: MemoryStore, entry: dict[str, Any]) -> None:
    """Append one line (one locked write); past HISTORY_MAX_LINES keep the newest HISTORY_KEEP_LINES."""
    store.append(HISTORY_FILE, json.dumps(entry, sort_keys=True, separators=(",", ":")) + "\n")
    with store.locked(HISTORY_FILE) as path:
        data = path.read_bytes()
        if data.count(b"\n") > HISTORY_MAX_LINES:
            kept = data.decode(errors="replace").splitlines(keepends=True)[-HISTORY_KEEP_LINES:]
            atomic_write(path, "".join(kept))


# The transitions the responder hears of; its policy decides which page (respond.PagingPolicy).
PAGED_KINDS = ("opened", "escalated", "resolved")
PING_TIMEOUT_S = 10.0


def ping_deadman(url: Any, record: RunRecord, redactor: Any) -> None:
    """The dead-man's switch, outward: tell a watcher (healthchecks-style URL) that a heartbeat finished.
    Best effort, bounded; the URL may carry a token, so only its masked form is recorded."""
    if not url or not isinstance(url, str):
        return
    import urllib.request
    from urllib.parse import urlsplit

    from .notify import mask_url

    # Watchers put the check's identity in the path (healthchecks: /ping/<uuid>): only the host is shown.
    parts = urlsplit(url)
    target = mask_url(f"{parts.scheme}://{parts.netloc}") + "/…"
    status = "ok" if record.outcome == "ok" else "fail"
    try:
        request = urllib.request.Request(url, data=status.encode(), method="POST")
        with urllib.request.urlopen(request, timeout=PING_TIMEOUT_S) as answer:  # noqa: S310 - the user's URL
            record.details.append(f"dead-man ping to {target}: HTTP {answer.status}")
    except Exception as exc:  # noqa: BLE001 - a dead watcher must not fail the heartbeat
        record.details.append(redactor.redact_text(f"dead-man ping to {target} failed: {type(exc).__name__}"))


def apply(
    store: MemoryStore,
    hosts: dict[str, HostReport],
    config: HeartbeatConfig,
    redact: Callable[[str], str],
) -> list[Transition]:
    """One heartbeat's state transitions; the caller holds the state lock."""
    state = HeartbeatState.load(store)
    if not config.scope:  # an assessment between heartbeats shares their budget but is not one of them
        state.sequence += 1
    incidents = IncidentStore(store)
    active = incidents.active()
    now = utcnow()
    changes: list[Transition] = []
    for host, report in sorted(hosts.items()):
        # Observe the checks (may open), then the restarts, then the re-checks (may resolve).
        for outcome in _outcomes(host, report, report.probes):
            changes += _observe(state, incidents, store, active, host, report, outcome, config, now, redact)
        changes += _remediation(state, host, report, active, config, now, redact)
        if report.rechecks:
            for outcome in _outcomes(host, report, report.rechecks, reachability=False):
                changes += _observe(
                    state, incidents, store, active, host, report, outcome, config, now, redact
                )
        changes += _crashes(state, incidents, store, active, host, report, now)
        changes += _reported(host, report, active, now)
        changes += _escalations(state, host, report, active, config, now)
    state.prune(max(config.restart_window, 1) * 4)
    for incident in active.values():  # resolved ones too: they were active when the run began
        incidents.save(incident)
    state.save(store)
    return changes


def _outcomes(host: str, report: HostReport, probes: dict[str, dict[str, Any]], reachability: bool = True):
    """(service, check, ok, detail) for every check of one host in one round of probes."""
    if report.unreachable:
        yield HOST_SERVICE, REACHABILITY_CHECK, False, f"host unreachable: {report.unreachable}"
        return
    if reachability:
        yield HOST_SERVICE, REACHABILITY_CHECK, True, "reachable"
    for name, probe in sorted(probes.items()):
        if report.counted(probe):  # a held service's checks count for nothing (opsrunner.holds)
            service = probe.get("service") or HOST_SERVICE
            yield service, name, bool(probe.get("ok")), str(probe.get("detail", ""))


def _observe(state, incidents, store, active, host, report, outcome, config, now, redact) -> list[Transition]:
    """Count one check's result; open, note or resolve its incident."""
    service, check, ok, detail = outcome
    key = incident_key(host, service, check)
    checked = state.checks.setdefault(key, CheckState())
    previous_detail = checked.last_detail
    _count(checked, ok, detail)
    incident = active.get(key)
    if incident is not None and not incident.active:
        return []
    if ok and incident and checked.successes >= config.success_threshold:
        if incident.category == "security" and not incident.acknowledged_by:
            # A security problem is closed by a person: passing again may mean someone covered tracks.
            if checked.successes == config.success_threshold:
                incident.note("the check passes again; a person must acknowledge it before it resolves", now)
            return []
        return [_resolve(incident, report, service, now)]
    if not ok and incident:
        if failure_shape(detail) != failure_shape(previous_detail):
            incident.note(f"still failing: {redact(detail)}", now)
        return []
    if not ok and checked.failures >= config.failure_threshold:
        sibling = _first(active, host, service) if service != HOST_SERVICE else None
        if sibling is not None and sibling.active:
            # One cause usually fails several checks of a service: one incident tells it.
            sibling.note(f"also failing: {check}: {redact(detail)}", now)
            return []
        incident = _open(incidents, store, host, service, check, redact(detail), report, checked, now)
        active[key] = incident
        return [Transition("opened", incident, f"{incident.id} opened: {incident.summary}")]
    return []


def unit_restarts(probe: dict[str, Any]) -> int | None:
    """systemd's NRestarts from a `service` probe's result; None for other probes and other backends."""
    if probe.get("type") != "service":
        return None
    value = (probe.get("data") or {}).get("restarts")
    return value if isinstance(value, int) and not isinstance(value, bool) and value >= 0 else None


def crash_text(probe: dict[str, Any], before: int, after: int) -> str:
    """The timeline line of a crash that systemd repaired between two heartbeats."""
    data = probe.get("data") or {}
    result = data.get("crash_result") or data.get("result") or "unknown"
    return f"crashed; systemd restarted it (NRestarts {before} -> {after}, result: {result})"


def _crashes(state, incidents, store, active, host, report, now) -> list[Transition]:
    """Crashes that systemd repaired since the last heartbeat (NRestarts rose): each is a failure of its
    service at once (the crash has happened; no failure threshold), noted on the service's incident or
    opening one. No restart is planned (the service runs); the incident resolves by the usual rule."""
    changes: list[Transition] = []
    if report.unreachable:
        return changes
    for check, probe in sorted(report.final.items()):
        count = unit_restarts(probe)
        service = probe.get("service") or ""
        if count is None or not service:
            continue
        key = f"{host}|{service}"
        before = state.unit_restarts.get(key)
        state.unit_restarts[key] = count
        if before is None or count <= before:  # first sight, or a counter reset (reset-failed, reboot)
            continue
        text = crash_text(probe, before, count)
        report.crashes[service] = text
        checked = state.checks.setdefault(incident_key(host, service, check), CheckState())
        checked.successes = 0  # healthy heartbeats count again from here
        incident = active.get(incident_key(host, service, check)) or _first(active, host, service)
        if incident is not None and incident.active:
            incident.note(text, now)
            changes.append(Transition("crashed", incident, f"{incident.id}: {host} {service} {text}"))
            continue
        diagnostics = report.diagnostics.get(service) or report.diagnostics.get(HOST_SERVICE, "")
        incident = incidents.open(
            host,
            service,
            check,
            f"{host} {service} crashed",
            text,
            now,
            cause="crashed; restarted by systemd",
            diagnostics=diagnostics,
            debugging_notes=debugging_section(store, service, check),
        )
        active[incident.key] = incident
        changes.append(Transition("opened", incident, f"{incident.id} opened: {incident.summary}: {text}"))
    return changes


_NUMBER_RE = re.compile(r"\d+(?:\.\d+)?")


def failure_shape(detail: str | None) -> str:
    """A failure's detail without its numbers (latencies, pids, sizes): the same failure measured again is
    not news for the incident's timeline, a different one is."""
    return _NUMBER_RE.sub("#", detail or "")


def _count(checked: CheckState, ok: bool, detail: str) -> None:
    if ok:
        checked.successes, checked.failures = checked.successes + 1, 0
    else:
        checked.failures, checked.successes = checked.failures + 1, 0
    checked.last_ok, checked.last_detail = ok, detail


def _open(
    incidents: IncidentStore,
    store: MemoryStore,
    host: str,
    service: str,
    check: str,
    detail: str,
    report: HostReport,
    checked: CheckState,
    now: dt.datetime,
) -> Incident:
    unreachable = check == REACHABILITY_CHECK
    summary = f"{host} unreachable" if unreachable else f"{host} {check} failing"
    note = f"opened after {checked.failures} failed heartbeat(s): {detail}"
    diagnostics = report.diagnostics.get(service) or report.diagnostics.get(HOST_SERVICE, "")
    notes = debugging_section(store, "host unreachable" if unreachable else service, check)
    incident = incidents.open(
        host, service, check, summary, note, now, diagnostics=diagnostics, debugging_notes=notes
    )
    probe = report.final.get(check) or {}
    if probe.get("category") in CATEGORIES and probe["category"] != incident.category:
        incident.category = probe["category"]
        incidents.save(incident)
    return incident


def _resolve(incident: Incident, report: HostReport, service: str, now: dt.datetime) -> Transition:
    restarted = [r for r in report.restarts if r["service"] == service and r["ok"]]
    resolution = (
        f"restarted {service} by the heartbeat" if restarted else "healthy again without intervention"
    )
    cause = incident.cause or ("service down" if restarted else "transient failure")
    close(incident, f"resolved: {resolution}", cause=cause, resolution=resolution)
    return Transition("resolved", incident, f"{incident.id} resolved: {incident.summary} ({resolution})")


def _remediation(state, host, report, active, config, now, redact) -> list[Transition]:
    changes = []
    for restart in report.restarts:
        service = restart["service"]
        state.restarts.setdefault(f"{host}|{service}", []).append(state.sequence)
        outcome = "healthy" if restart["ok"] else f"failed: {redact(restart['detail'])}"
        for incident in active.values():
            if incident.host == host and incident.service == service and incident.active:
                incident.restarts += 1
                incident.note(f"restarted {service}: {outcome}", now)
        kind = "restarted" if restart["ok"] else "restart-failed"
        changes.append(
            Transition(kind, _first(active, host, service), f"{host}: restarted {service}: {outcome}")
        )
        if restart["ok"]:
            changes += _crash_loop(state, host, service, active, config, now)
    return changes


def _crash_loop(state, host, service, active, config, now) -> list[Transition]:
    """A restart that spent the budget escalates even though it worked: a service that has to be restarted
    heartbeat after heartbeat is down between them, and nobody would hear of it while each restart helps."""
    used = state.restarts_within(host, service, config.restart_window)
    incident = _first(active, host, service)
    if used < config.max_restarts or incident is None or incident.escalated:
        return []
    incident.escalated = True
    why = f"crash loop: {used} restart(s) within {config.restart_window} heartbeats, each one healthy again"
    incident.note(f"escalated: {why}", now)
    return [Transition("escalated", incident, f"{incident.id} escalated: {incident.summary} ({why})")]


def _service_failing(report: HostReport, service: str) -> bool | None:
    """Does any of the service's probes fail this run? None when the run did not probe it."""
    results = [
        bool(p.get("ok")) for p in report.final.values() if (p.get("service") or HOST_SERVICE) == service
    ]
    return None if not results or report.unreachable else not all(results)


def _reported(
    host: str, report: HostReport, active: dict[str, Incident], now: dt.datetime
) -> list[Transition]:
    """Incidents that monitoring or an agent reported resolve when the reporter says resolved AND our own
    probes of the service pass: a resolved alert alone is a claim, not a fact."""
    changes = []
    for incident in list(active.values()):
        if incident.host != host or not incident.active or incident.source == "heartbeat":
            continue
        if incident.reported != "resolved" or incident.category == "security":
            continue
        if _service_failing(report, incident.service) is False:
            resolution = "the reporter resolved it and our probes pass"
            restarted = any(r["service"] == incident.service and r["ok"] for r in report.restarts)
            cause = incident.cause or ("service down" if restarted else "reported by " + incident.source)
            close(incident, f"resolved: {resolution}", cause=cause, resolution=resolution)
            changes.append(Transition("resolved", incident, f"{incident.id} resolved: {incident.summary}"))
    return changes


def _still_failing(state: HeartbeatState, report: HostReport, incident: Incident) -> bool:
    if incident.source == "heartbeat":
        return not state.checks.get(incident.key, CheckState()).last_ok
    return bool(_service_failing(report, incident.service))


def _escalations(state, host, report, active, config, now) -> list[Transition]:
    changes = []
    for incident in active.values():
        if incident.host != host or not incident.active or incident.escalated:
            continue
        if incident.check == REACHABILITY_CHECK:  # alerted when it opened; nothing to restart
            continue
        if incident.category == "security" or incident.status == "needs-guidance":
            continue  # paged at once and never remediated: a person owns it already
        if not _still_failing(state, report, incident):
            continue
        # Escalation is the page of an outage: without remediation nothing will fix it, so it pages at once.
        unrecoverable = incident.service == HOST_SERVICE or not config.remediate
        spent = state.restarts_within(host, incident.service, config.restart_window) >= config.max_restarts
        if unrecoverable or spent:
            incident.escalated = True
            budget = f"{config.max_restarts} restart(s) within {config.restart_window} heartbeats"
            why = (
                "remediation is off (heartbeat_remediate: false)"
                if not config.remediate
                else "no automatic recovery for it"
                if unrecoverable
                else f"{budget} did not help"
            )
            incident.note(f"escalated: {why}", now)
            changes.append(
                Transition("escalated", incident, f"{incident.id} escalated: {incident.summary} ({why})")
            )
    return changes


def _first(active: dict[str, Incident], host: str, service: str) -> Incident | None:
    return next((i for i in active.values() if i.host == host and i.service == service and i.active), None)

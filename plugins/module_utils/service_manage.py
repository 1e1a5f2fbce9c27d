# -*- coding: utf-8 -*-
# Copyright: (c) 2025, aitbc-ops developers
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""The service module's entry point (outside the service package: it gates on the probes, and the
``service`` probe type reads the backends): pick a backend, bring the service to its state, gate on health.

:func:`manage_service` takes the module's params and returns the result dict for exit_json; any failure
raises :class:`ServiceError` with a one-line message.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any

from ansible_collections.aitbc.ops.plugins.module_utils._diff import DifferenceTracker
from ansible_collections.aitbc.ops.plugins.module_utils.probes.registry import build_probes, run_probes
from ansible_collections.aitbc.ops.plugins.module_utils.service.process import OLDER_COMMAND, ProcessBackend
from ansible_collections.aitbc.ops.plugins.module_utils.service.registry import select_backend
from ansible_collections.aitbc.ops.plugins.module_utils.service.spec import ServiceError, ServiceSpec, Status

STATES = ("started", "stopped", "restarted", "reloaded", "status")
NO_LOG_PLACEHOLDER = "VALUE_SPECIFIED_IN_NO_LOG_PARAMETER"
_DONE = {"start": "started", "stop": "stopped", "restart": "restarted", "reload": "reloaded"}
_STATUS_CORE = ("active", "pid", "uptime_s", "detail", "warnings")

ProbeResults = list[dict[str, Any]]


def probe_runner(probes: list[dict[str, Any]], service: str | None = None) -> Callable[[], ProbeResults]:
    """A zero-argument callable that runs ``probes`` once through the probes engine. Bad probe
    definitions raise ServiceError here, before anything runs."""
    if not isinstance(probes, (list, tuple)) or not probes:
        raise ServiceError("wait_healthy: probes must be a non-empty list")
    if service:  # the engine records which service a probe belongs to
        probes = [dict(p, service=p.get("service") or service) if isinstance(p, dict) else p for p in probes]
    try:
        built = build_probes(list(probes))
    except ValueError as exc:
        raise ServiceError(f"wait_healthy: {exc}") from exc
    return lambda: run_probes(built)


def wait_healthy(
    service: str,
    probes: list[dict[str, Any]] | None = None,
    timeout: float = 30,
    interval: float = 1.0,
    poll: Callable[[], ProbeResults] | None = None,
) -> ProbeResults:
    """Run probes until all are ok or ``timeout`` passes; returns the last results or raises.

    The probes run through ``poll`` (a zero-argument callable, see :func:`probe_runner`), or through
    :func:`probe_runner` of ``probes``.
    """
    if poll is None:
        poll = probe_runner(probes or [], service)
    deadline = time.monotonic() + float(timeout)
    while True:
        results = list(poll())
        failing = [r for r in results if not r.get("ok")]
        if not failing:
            return results
        if time.monotonic() + float(interval) > deadline:
            first = failing[0]
            raise ServiceError(
                f"{service} is not healthy after {float(timeout):g}s: "
                f"{first.get('name')}: {first.get('detail')}",
                probes=results,
            )
        time.sleep(float(interval))


def manage_service(params: dict[str, Any], check_mode: bool = False, diff: bool = False) -> dict[str, Any]:
    """Bring a service to ``params['state']``; the result dict for exit_json (raises ServiceError).

    Idempotent: ``started`` on a running service and ``stopped`` on a stopped one change nothing;
    ``restarted`` and ``reloaded`` always change (``reloaded`` starts a stopped service). In check mode
    nothing is changed and ``changed`` says what would have been. With ``diff``, the result's ``diff``
    holds the service's state (running/stopped) and pid before and after (predicted in check mode).
    """
    try:
        return _manage_service(params, check_mode, diff)
    except OSError as exc:  # files the backends write or read (pidfile dir, log file, lock): one line
        where = f": {exc.filename}" if exc.filename else ""
        raise ServiceError(f"{params.get('name')}: {exc.strerror or exc}{where}") from exc


def _running(status: Status) -> str:
    return "running" if status["active"] else "stopped"


def _action(state: str, before: Status) -> str | None:
    """The backend method that brings a service in status ``before`` to ``state``; None if none."""
    if state == "started":
        return None if before["active"] else "start"
    if state == "stopped":
        return "stop" if before["active"] else None
    if state == "restarted":
        return "restart"
    return "reload" if before["active"] else "start"


def _predicted(action: str, before: Status) -> dict[str, Any]:
    """State and pid after ``action`` as check mode predicts them: a new process's pid is unknown."""
    if action == "stop":
        return {"state": "stopped", "pid": None}
    return {"state": "running", "pid": before["pid"] if action == "reload" else None}


# The settle time of a start behind a health gate, unless one is given (without a gate: ServiceSpec's).
GATED_SETTLE = 1.0


def _manage_service(params: dict[str, Any], check_mode: bool, diff: bool) -> dict[str, Any]:
    state = params.get("state") or "status"
    if state not in STATES:
        raise ServiceError(f"unknown state: {state} (choose from {', '.join(STATES)})")
    spec = ServiceSpec.from_params(params)
    if params.get("settle") is None and params.get("start_timeout") is None and params.get("wait_healthy"):
        spec.settle = GATED_SETTLE  # the health gate's first probe is the service's own state
    backend = select_backend(spec, params.get("backend") or "auto")
    name = spec.name

    def service_info(st: Status) -> dict[str, Any]:
        return {
            "name": name,
            "backend": backend.name,
            "active": st["active"],
            "pid": st["pid"],
            "uptime_s": st["uptime_s"],
            "detail": st.get("detail", ""),
            **{k: v for k, v in st.items() if k not in _STATUS_CORE},  # a backend's own (systemd: restarts)
        }

    def add_warnings(st: Status) -> None:  # a backend's warnings (systemd: a crash it repaired)
        for warning in st.get("warnings") or []:
            if warning not in result.setdefault("warnings", []):
                result["warnings"].append(warning)

    health = params.get("wait_healthy") or None
    poll = None
    if health and state in ("started", "restarted", "reloaded"):
        poll = probe_runner(health.get("probes"), name)  # bad probe definitions fail before any change

    before = backend.status()
    tracker = DifferenceTracker()
    tracker.add("state", _running(before), same=True)
    tracker.add("pid", before["pid"], same=True)
    result: dict[str, Any] = {"changed": False, "service": service_info(before)}
    add_warnings(before)
    running = _running(before)
    if state == "status":
        result["msg"] = f"{name} is {running} ({backend.name})"
        return _with_diff(result, tracker, diff)

    action = _action(state, before)
    if action is None:
        result["msg"] = f"{name} is already {running}"
        if before["detail"] == OLDER_COMMAND:
            result["msg"] += f" ({OLDER_COMMAND})"
            result.setdefault("warnings", []).append(f"{name} is {OLDER_COMMAND}")
        if isinstance(backend, ProcessBackend) and before["detail"].startswith("stale"):
            note = f"would remove {before['detail']}" if check_mode else backend.cleanup_stale()
            if note:
                result["changed"] = True
                result["msg"] += f" ({note})"
    elif check_mode:
        if action in ("start", "restart"):
            backend.check_startable()
        for key, value in _predicted(action, before).items():
            tracker.update_after(key, value)
        result.update(changed=True, msg=f"would {action} {name} (check mode)")
        return _with_diff(result, tracker, diff)
    else:
        note = getattr(backend, action)()
        after = backend.status()
        tracker.update_after("state", _running(after))
        tracker.update_after("pid", after["pid"])
        add_warnings(after)
        result.update(
            changed=True,
            service=service_info(after),
            msg=f"{name} {_DONE[action]}" + (f" ({note})" if note else ""),
        )
        if action != "stop" and not after["active"]:
            raise ServiceError(
                f"{name} is not running after {action}: {after.get('detail') or 'unknown state'}",
                service=result["service"],
                log_tail=backend.logs(20),
                changed=True,
            )

    if poll is not None and not check_mode:
        try:
            result["probes"] = wait_healthy(
                name, timeout=health.get("timeout") or 30, interval=health.get("interval") or 1.0, poll=poll
            )
        except ServiceError as exc:
            exc.details.update(
                service=service_info(backend.status()), changed=result["changed"], log_tail=backend.logs(20)
            )
            raise
    return _with_diff(result, tracker, diff)


def _with_diff(result: dict[str, Any], tracker: DifferenceTracker, diff: bool) -> dict[str, Any]:
    if diff:
        result["diff"] = tracker.diff()
    return result


def redacted_params(params: dict[str, Any]) -> dict[str, Any]:
    """Module args for the ``invocation`` echo: env values replaced, keys kept."""
    out = dict(params)
    if isinstance(out.get("env"), dict):
        out["env"] = {k: NO_LOG_PLACEHOLDER for k in out["env"]}
    return out

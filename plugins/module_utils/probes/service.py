# -*- coding: utf-8 -*-
# Copyright: (c) 2026, aitbc-ops developers
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""The service probe: is the service itself running, as its backend sees it (read-only status)?

An orphan answering on the service's port makes an http or tcp probe pass; this probe fails then
("port 8080 held by pid N (nginx), not the service"). For systemd it also reports NRestarts, Result and
the active-since time, so the controller can count crashes that systemd repaired between two heartbeats.
"""

from __future__ import annotations

from typing import Any

from ansible_collections.aitbc.ops.plugins.module_utils.probes.base import Outcome, Probe, ProbeError
from ansible_collections.aitbc.ops.plugins.module_utils.service.ports import add_port_check
from ansible_collections.aitbc.ops.plugins.module_utils.service.registry import BACKENDS, select_backend
from ansible_collections.aitbc.ops.plugins.module_utils.service.spec import ServiceError, ServiceSpec
from ansible_collections.aitbc.ops.plugins.module_utils.service.systemd import last_failure_result

# Status keys a backend may add that the probe passes on (systemd: restarts, result, active_since).
_PASSED_ON = ("pid", "uptime_s", "restarts", "result", "active_since", "port_held_by")


class ServiceProbe(Probe):
    type_name = "service"
    options = {
        "backend": {"type": "str", "default": "auto"},
        "pidfile": {"type": "path"},
        "unit": {"type": "str"},
        "container": {"type": "str"},
        "program": {"type": "str"},
        "port": {"type": "int"},
        "command": {"type": "str"},
    }

    def setup(self) -> None:
        if not self.service:
            raise ValueError("service probes need service (the name of the service to check)")
        backend = self.params.get("backend") or "auto"
        if backend != "auto" and backend not in BACKENDS:
            raise ValueError(f"unknown backend '{backend}' (choose from auto, {', '.join(BACKENDS)})")
        port = self.params.get("port")
        if port is not None and not 1 <= port <= 65535:
            raise ValueError(f"port {port} is not between 1 and 65535")

    def default_name(self) -> str:
        return f"service:{self.service}"

    def spec(self) -> ServiceSpec:
        keys = ("pidfile", "unit", "container", "program", "port", "command")
        params = {key: self.params.get(key) for key in keys}
        try:
            return ServiceSpec.from_params(dict(params, name=self.service))
        except ServiceError as exc:
            raise ProbeError(exc.msg) from exc

    def run(self, deadline: float) -> Outcome:
        try:
            backend = select_backend(self.spec(), self.params.get("backend") or "auto")
            status = backend.status()
            if backend.name != "process":  # the process backend checks its port itself
                status = add_port_check(status, self.params.get("port"))
            if status.get("restarts") and status.get("result") in (None, "success"):
                # systemd resets Result when it restarts the unit: the crash's result is in the journal
                status["crash_result"] = last_failure_result(backend.logs(50))
        except ServiceError as exc:
            raise ProbeError(exc.msg) from exc
        data: dict[str, Any] = {"backend": backend.name, "active": status["active"]}
        data.update({key: status[key] for key in (*_PASSED_ON, "crash_result") if key in status})
        detail = status.get("detail") or ""
        if not status["active"]:
            return False, f"not running ({backend.name}): {detail or 'stopped'}", data
        if status.get("port_held_by"):
            return False, detail, data
        pid = f" (pid {status['pid']})" if status.get("pid") else ""
        return True, f"running{pid}" + (f": {detail}" if detail and detail != "running" else ""), data

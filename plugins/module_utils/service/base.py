# -*- coding: utf-8 -*-
# Copyright: (c) 2025, aitbc-ops developers
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""What every service backend shares: the base class and the control command runner (the data they
act on is in spec.py)."""

from __future__ import annotations

from ansible_collections.aitbc.ops.plugins.module_utils._commands import CommandError, run_command
from ansible_collections.aitbc.ops.plugins.module_utils.service.spec import ServiceError, ServiceSpec, Status

CMD_TIMEOUT = 120


def run_cmd(argv: list[str], timeout: float = CMD_TIMEOUT) -> tuple[int, str, str]:
    """(rc, stdout, stderr) of a control command (systemctl, supervisorctl, docker, service)."""
    try:
        return run_command(argv, timeout)
    except CommandError as exc:  # "command not found: X" or "timed out after Ns: CMD"
        raise ServiceError(str(exc)) from exc


class ServiceBackend:
    """Base class. Subclasses set ``name`` and implement the methods below.

    ``status()`` returns ``{"active": bool, "pid": int|None, "uptime_s": float|None, "detail": str}``.
    ``start()``/``stop()``/``restart()``/``reload()`` act unconditionally (idempotence is decided by
    ``manage_service`` from ``status()``) and may return a short note for the result message.
    Failures raise :class:`ServiceError`.
    """

    name = "base"

    def __init__(self, spec: ServiceSpec) -> None:
        self.spec = spec

    @classmethod
    def detect(cls, spec: ServiceSpec) -> bool:
        """For backend=auto: does this backend manage the service ``spec.name`` on this host?"""
        return False

    def status(self) -> Status:
        raise NotImplementedError

    def start(self) -> str | None:
        raise NotImplementedError

    def stop(self) -> str | None:
        raise NotImplementedError

    def restart(self) -> str | None:
        self.stop()
        return self.start()

    def reload(self) -> str | None:
        raise ServiceError(f"backend {self.name} cannot reload {self.spec.name}")

    def logs(self, n: int = 20) -> list[str]:
        return []

    def check_startable(self) -> None:
        """Validate what start() needs without changing anything (used by check mode)."""


class ControlCommandBackend(ServiceBackend):
    """Backends driven by one control command per action (systemctl, supervisorctl, service)."""

    def _ctl(self, action: str) -> None:
        raise NotImplementedError

    def start(self) -> str | None:
        self._ctl("start")
        return None

    def stop(self) -> str | None:
        self._ctl("stop")
        return None

    def restart(self) -> str | None:
        self._ctl("restart")
        return None

    def reload(self) -> str | None:
        self._ctl("reload")
        return None

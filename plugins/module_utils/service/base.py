# -*- coding: utf-8 -*-
# Copyright: (c) 2025, aitbc-ops developers
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""What every service backend shares: the spec, the error, the base class and the control command runner."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from ansible_collections.aitbc.ops.plugins.module_utils._commands import CommandError, run_command

CMD_TIMEOUT = 120

# status() result: {"active": bool, "pid": int|None, "uptime_s": float|None, "detail": str}
Status = dict[str, Any]


class ServiceError(Exception):
    """A failure with a one-line message; ``details`` are extra result keys (log tail, probes...)."""

    def __init__(self, msg: str, **details: Any) -> None:
        super().__init__(msg)
        self.msg = msg
        self.details = details


@dataclass
class ServiceSpec:
    """Everything the backends need to know about one service (the module's options)."""

    name: str
    command: str | None = None
    pidfile: str | None = None
    log_file: str | None = None
    chdir: str | None = None
    env: dict[str, str] = field(default_factory=dict)
    env_file: str | None = None
    stop_timeout: float = 10.0
    start_timeout: float = 1.0
    unit: str | None = None
    container: str | None = None
    program: str | None = None
    supervisor_config: str | None = None
    docker_host: str | None = None

    @classmethod
    def from_params(cls, params: dict[str, Any]) -> ServiceSpec:
        known = cls.__dataclass_fields__
        values = {k: v for k, v in params.items() if k in known and v is not None}
        spec = cls(**values)
        if not spec.name or not str(spec.name).strip():
            raise ServiceError("name must be a non-empty service name")
        if "/" in spec.name or "\0" in spec.name:
            raise ServiceError(f"name must not contain '/': {spec.name!r}")
        spec.env = {str(k): "" if v is None else str(v) for k, v in (spec.env or {}).items()}
        return spec


def run_cmd(argv: list[str], timeout: float = CMD_TIMEOUT) -> tuple[int, str, str]:
    """(rc, stdout, stderr) of a control command (systemctl, supervisorctl, docker, service)."""
    try:
        return run_command(argv, timeout)
    except CommandError as exc:  # "command not found: X" or "timed out after Ns: CMD"
        raise ServiceError(str(exc)) from exc


def tail_text(text: str, n: int) -> list[str]:
    """The last ``n`` lines of a command's output."""
    return (text or "").splitlines()[-n:] if n > 0 else []


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

    @staticmethod
    def _status(
        active: bool, pid: int | None = None, uptime_s: float | None = None, detail: str = ""
    ) -> Status:
        return {"active": bool(active), "pid": pid, "uptime_s": uptime_s, "detail": detail}


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

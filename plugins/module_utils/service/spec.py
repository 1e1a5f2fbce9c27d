# -*- coding: utf-8 -*-
# Copyright: (c) 2025, aitbc-ops developers
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""The data of service control: the spec of one service, the error, and the status a backend reports."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

# status() result: {"active": bool, "pid": int|None, "uptime_s": float|None, "detail": str}
Status = dict[str, Any]


def make_status(
    active: bool, pid: int | None = None, uptime_s: float | None = None, detail: str = ""
) -> Status:
    return {"active": bool(active), "pid": pid, "uptime_s": uptime_s, "detail": detail}


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
    # After a start, how long the new process must stay up (and keep its pidfile) to count as started.
    settle: float = 3.0
    port: int | None = None  # the TCP port the service listens on: a stranger holding it is reported
    unit: str | None = None
    container: str | None = None
    program: str | None = None
    supervisor_config: str | None = None
    docker_host: str | None = None

    @property
    def start_timeout(self) -> float:
        """The settle time under its earlier name (the module keeps ``start_timeout`` as an alias)."""
        return self.settle

    @classmethod
    def from_params(cls, params: dict[str, Any]) -> ServiceSpec:
        known = cls.__dataclass_fields__
        values = {k: v for k, v in params.items() if k in known and v is not None}
        if params.get("start_timeout") is not None and "settle" not in values:
            values["settle"] = params["start_timeout"]
        spec = cls(**values)
        if not spec.name or not str(spec.name).strip():
            raise ServiceError("name must be a non-empty service name")
        if "/" in spec.name or "\0" in spec.name:
            raise ServiceError(f"name must not contain '/': {spec.name!r}")
        if spec.port is not None and not 1 <= int(spec.port) <= 65535:
            raise ServiceError(f"port {spec.port} is not between 1 and 65535")
        spec.env = {str(k): "" if v is None else str(v) for k, v in (spec.env or {}).items()}
        return spec

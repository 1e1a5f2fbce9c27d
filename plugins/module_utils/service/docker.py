# -*- coding: utf-8 -*-
# Copyright: (c) 2025, aitbc-ops developers
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""The docker backend: a container driven through the docker CLI (optionally at another daemon)."""

from __future__ import annotations

import contextlib
import datetime
import json
import re
import shutil
import time
from typing import Any

from ansible_collections.aitbc.ops.plugins.module_utils._text import first_line, tail_text
from ansible_collections.aitbc.ops.plugins.module_utils.service.base import (
    CMD_TIMEOUT,
    ServiceBackend,
    run_cmd,
)
from ansible_collections.aitbc.ops.plugins.module_utils.service.spec import (
    ServiceError,
    ServiceSpec,
    Status,
    make_status,
)


def parse_docker_time(value: str) -> float | None:
    """RFC 3339 with nanoseconds (``2025-01-02T03:04:05.123456789Z``) -> epoch seconds."""
    m = re.match(r"^(\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d)(?:\.(\d+))?(Z|[+-]\d\d:\d\d)$", value or "")
    if not m or m.group(1).startswith("0001-"):
        return None
    tz = "+00:00" if m.group(3) == "Z" else m.group(3)
    frac = (m.group(2) or "0")[:6].ljust(6, "0")
    return datetime.datetime.fromisoformat(f"{m.group(1)}.{frac}{tz}").timestamp()


def docker_status_from_state(state: dict[str, Any], now: float | None = None) -> Status:
    running = bool(state.get("Running"))
    pid = int(state.get("Pid") or 0) or None
    uptime = None
    started = parse_docker_time(state.get("StartedAt", ""))
    if running and started is not None:
        uptime = round(max(0.0, (time.time() if now is None else now) - started), 1)
    return make_status(running, pid if running else None, uptime, state.get("Status", ""))


class DockerBackend(ServiceBackend):
    name = "docker"

    def __init__(self, spec: ServiceSpec) -> None:
        super().__init__(spec)
        self.container = spec.container or spec.name

    def docker(self, *args: str, timeout: float = CMD_TIMEOUT) -> tuple[int, str, str]:
        argv = ["docker"]
        if self.spec.docker_host:
            argv += ["-H", self.spec.docker_host]
        return run_cmd(argv + list(args), timeout=timeout)

    @classmethod
    def detect(cls, spec: ServiceSpec) -> bool:
        if not shutil.which("docker"):
            return False
        with contextlib.suppress(ServiceError):
            backend = cls(spec)
            rc, _out, _err = backend.docker("inspect", "--type", "container", backend.container, timeout=20)
            return rc == 0
        return False

    def status(self) -> Status:
        rc, out, err = self.docker(
            "inspect", "--type", "container", "--format", "{{json .State}}", self.container
        )
        if rc != 0:
            if "no such" in (err + out).lower():
                raise ServiceError(f"docker container not found: {self.container}")
            raise ServiceError(f"docker inspect {self.container} failed: {first_line(err, out)}")
        try:
            state = json.loads(out)
        except ValueError as exc:
            raise ServiceError(f"docker inspect {self.container}: unexpected output") from exc
        return docker_status_from_state(state)

    def _act(self, *args: str, timeout: float = CMD_TIMEOUT) -> None:
        rc, out, err = self.docker(*args, self.container, timeout=timeout)
        if rc != 0:
            raise ServiceError(
                f"docker {args[0]} {self.container} failed: {first_line(err, out)}", log_tail=self.logs(10)
            )

    def start(self) -> str | None:
        self._act("start")
        return None

    def stop(self) -> str | None:
        t = int(round(float(self.spec.stop_timeout)))
        self._act("stop", "-t", str(t), timeout=t + CMD_TIMEOUT)
        return None

    def restart(self) -> str | None:
        t = int(round(float(self.spec.stop_timeout)))
        self._act("restart", "-t", str(t), timeout=t + CMD_TIMEOUT)
        return None

    def reload(self) -> str | None:
        self._act("kill", "--signal", "HUP")
        return "sent SIGHUP"

    def logs(self, n: int = 20) -> list[str]:
        with contextlib.suppress(ServiceError):
            rc, out, err = self.docker("logs", "--tail", str(int(n)), self.container)
            if rc == 0:
                return tail_text(out + err, n)
        return []

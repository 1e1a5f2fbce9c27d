# -*- coding: utf-8 -*-
# Copyright: (c) 2025, aitbc-ops developers
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""The supervisor backend: supervisorctl for the actions, the state and the program's log."""

from __future__ import annotations

import contextlib
import re
import shutil

from ansible_collections.aitbc.ops.plugins.module_utils._text import first_line, tail_text
from ansible_collections.aitbc.ops.plugins.module_utils.service.base import ControlCommandBackend, run_cmd
from ansible_collections.aitbc.ops.plugins.module_utils.service.spec import (
    ServiceError,
    ServiceSpec,
    Status,
    make_status,
)

_SUPERVISOR_UPTIME = re.compile(r"uptime (?:(\d+) days?, )?(\d+):(\d\d):(\d\d)")


def parse_supervisor_status(text: str, program: str) -> Status | None:
    """Parse ``supervisorctl status PROGRAM`` output; None if it has no line for the program.

    Lines look like ``prog   RUNNING   pid 123, uptime 1 day, 0:00:05``, ``prog   STOPPED   Not started``,
    ``prog   FATAL     Exited too quickly (process log may have details)``, ``prog   EXITED    <date>``.
    """
    for line in (text or "").splitlines():
        parts = line.split(None, 2)
        if len(parts) < 2 or parts[0] != program or parts[1] == "ERROR":
            continue
        state, desc = parts[1], (parts[2] if len(parts) > 2 else "")
        pid = None
        uptime = None
        if state == "RUNNING":
            m = re.search(r"pid (\d+)", desc)
            pid = int(m.group(1)) if m else None
            m = _SUPERVISOR_UPTIME.search(desc)
            if m:
                days, hours, minutes, seconds = (int(g or 0) for g in m.groups())
                uptime = float(days * 86400 + hours * 3600 + minutes * 60 + seconds)
        return make_status(state == "RUNNING", pid, uptime, f"{state} {desc}".strip())
    return None


def _supervisor_unknown(text: str, program: str) -> bool:
    return any(line.startswith(f"{program}: ERROR (no such") for line in (text or "").splitlines())


class SupervisorBackend(ControlCommandBackend):
    name = "supervisor"

    def __init__(self, spec: ServiceSpec) -> None:
        super().__init__(spec)
        self.program = spec.program or spec.name

    def ctl(self, *args: str) -> tuple[int, str, str]:
        argv = ["supervisorctl"]
        if self.spec.supervisor_config:
            argv += ["-c", self.spec.supervisor_config]
        return run_cmd(argv + list(args))

    @classmethod
    def detect(cls, spec: ServiceSpec) -> bool:
        if not shutil.which("supervisorctl"):
            return False
        with contextlib.suppress(ServiceError):
            backend = cls(spec)
            _rc, out, _err = backend.ctl("status", backend.program)
            return parse_supervisor_status(out, backend.program) is not None
        return False

    def status(self) -> Status:
        rc, out, err = self.ctl("status", self.program)
        parsed = parse_supervisor_status(out, self.program)
        if parsed is None:
            if _supervisor_unknown(out, self.program):
                raise ServiceError(f"supervisor program not found: {self.program}")
            raise ServiceError(
                f"supervisorctl status {self.program} failed (rc {rc}): {first_line(out, err)}"
            )
        return parsed

    def _ctl(self, action: str, *extra: str) -> None:
        rc, out, err = self.ctl(action, *extra, self.program)
        text = first_line(out, err)
        if rc != 0 or "ERROR" in out:
            if "already started" in out or ("not running" in out and action == "stop"):
                return
            raise ServiceError(
                f"supervisorctl {action} {self.program} failed: {text}", log_tail=self.logs(10)
            )

    def reload(self) -> str | None:
        self._ctl("signal", "HUP")
        return "sent SIGHUP"

    def logs(self, n: int = 20) -> list[str]:
        lines: list[str] = []
        for channel in ("stdout", "stderr"):
            with contextlib.suppress(ServiceError):
                rc, out, _err = self.ctl("tail", "-65536", self.program, channel)
                if rc == 0 and "ERROR (" not in first_line(out):
                    lines = tail_text(out, n)
            if lines:
                break
        return lines

# -*- coding: utf-8 -*-
# Copyright: (c) 2025, aitbc-ops developers
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""The sysv backend: an /etc/init.d script, through service(8) when there is one."""

from __future__ import annotations

import contextlib
import os
import shutil

from ansible_collections.aitbc.ops.plugins.module_utils._procs import pid_alive, proc_uptime
from ansible_collections.aitbc.ops.plugins.module_utils._text import first_line, tail_file
from ansible_collections.aitbc.ops.plugins.module_utils.service.base import ControlCommandBackend, run_cmd
from ansible_collections.aitbc.ops.plugins.module_utils.service.spec import (
    ServiceError,
    ServiceSpec,
    Status,
    make_status,
)


class SysvBackend(ControlCommandBackend):
    name = "sysv"
    INIT_D = "/etc/init.d"

    @classmethod
    def detect(cls, spec: ServiceSpec) -> bool:
        return os.path.isfile(os.path.join(cls.INIT_D, spec.name))

    def _service(self, action: str) -> tuple[int, str, str]:
        if shutil.which("service"):
            return run_cmd(["service", self.spec.name, action])
        return run_cmd([os.path.join(self.INIT_D, self.spec.name), action])  # no service(8): run it directly

    def status(self) -> Status:
        if not os.path.isfile(os.path.join(self.INIT_D, self.spec.name)):
            raise ServiceError(f"init script not found: {os.path.join(self.INIT_D, self.spec.name)}")
        rc, out, err = self._service("status")
        pid = None
        if rc == 0 and self.spec.pidfile:
            with contextlib.suppress(OSError, ValueError):
                with open(self.spec.pidfile) as fh:
                    pid = int(fh.read().split()[0])
                if not pid_alive(pid):
                    pid = None
        # LSB: 0 running, 1 dead with pidfile, 2 dead with lock, 3 not running, 4 unknown.
        return make_status(
            rc == 0, pid, proc_uptime(pid) if pid else None, first_line(out, err) or f"status exit code {rc}"
        )

    def _ctl(self, action: str) -> None:
        rc, out, err = self._service(action)
        if rc != 0:
            raise ServiceError(
                f"service {self.spec.name} {action} failed (rc {rc}): {first_line(err, out)}",
                log_tail=self.logs(10),
            )

    def logs(self, n: int = 20) -> list[str]:
        return tail_file(self.spec.log_file, n)

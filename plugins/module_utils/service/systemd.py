# -*- coding: utf-8 -*-
# Copyright: (c) 2025, aitbc-ops developers
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""The systemd backend: systemctl for the actions and the state, journalctl for the log."""

from __future__ import annotations

import contextlib
import os
import shutil
import time

from ansible_collections.aitbc.ops.plugins.module_utils._text import first_line, tail_text
from ansible_collections.aitbc.ops.plugins.module_utils.service.base import ControlCommandBackend, run_cmd
from ansible_collections.aitbc.ops.plugins.module_utils.service.spec import (
    ServiceError,
    ServiceSpec,
    Status,
    make_status,
)


def parse_systemctl_show(text: str) -> dict[str, str]:
    props = {}
    for line in (text or "").splitlines():
        key, sep, value = line.partition("=")
        if sep:
            props[key.strip()] = value.strip()
    return props


class SystemdBackend(ControlCommandBackend):
    name = "systemd"
    PROPS = "LoadState,ActiveState,SubState,MainPID,ActiveEnterTimestampMonotonic,Result"

    def __init__(self, spec: ServiceSpec) -> None:
        super().__init__(spec)
        self.unit = spec.unit or (spec.name if "." in spec.name else spec.name + ".service")

    @classmethod
    def detect(cls, spec: ServiceSpec) -> bool:
        if not os.path.isdir("/run/systemd/system") or not shutil.which("systemctl"):
            return False
        props = cls(spec).show()
        return props.get("LoadState") not in (None, "", "not-found")

    def show(self) -> dict[str, str]:
        rc, out, err = run_cmd(["systemctl", "show", self.unit, "-p", self.PROPS])
        if rc != 0:
            raise ServiceError(f"systemctl show {self.unit} failed: {first_line(err, out)}")
        return parse_systemctl_show(out)

    @staticmethod
    def status_from_props(props: dict[str, str], monotonic_now: float | None = None) -> Status:
        active_state = props.get("ActiveState", "")
        active = active_state in ("active", "reloading")
        pid = int(props.get("MainPID") or 0) or None
        uptime = None
        entered = int(props.get("ActiveEnterTimestampMonotonic") or 0)
        if active and entered:
            now = time.monotonic() if monotonic_now is None else monotonic_now
            uptime = round(max(0.0, now - entered / 1e6), 1)
        detail = f"{active_state}/{props.get('SubState', '')}".strip("/")
        return make_status(active, pid if active else None, uptime, detail)

    def status(self) -> Status:
        props = self.show()
        if props.get("LoadState") == "not-found":
            raise ServiceError(f"systemd unit not found: {self.unit}")
        return self.status_from_props(props)

    def _ctl(self, action: str) -> None:
        rc, out, err = run_cmd(["systemctl", action, self.unit])
        if rc != 0:
            lines = self.logs(10)
            raise ServiceError(
                f"systemctl {action} {self.unit} failed: {first_line(err, out)}", log_tail=lines
            )

    def logs(self, n: int = 20) -> list[str]:
        with contextlib.suppress(ServiceError):
            rc, out, _err = run_cmd(["journalctl", "-u", self.unit, "-n", str(int(n)), "--no-pager"])
            if rc == 0:
                return tail_text(out, n)
        return []

# -*- coding: utf-8 -*-
# Copyright: (c) 2025, aitbc-ops developers
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""The systemd backend: systemctl for the actions and the state, journalctl for the log.

Besides the state, ``status`` reports what systemd did on its own: ``restarts`` (NRestarts, the automatic
restarts of Restart=), ``result`` (Result: how the unit last stopped or failed) and ``active_since`` (when it
last became active, ISO UTC), with a warning when systemd repaired a crash. A start refused by the unit's
start limit is cleared with ``systemctl reset-failed`` and tried once more."""

from __future__ import annotations

import contextlib
import datetime
import os
import re
import shutil
import time

from ansible_collections.aitbc.ops.plugins.module_utils._commands import CommandError, run_command
from ansible_collections.aitbc.ops.plugins.module_utils._text import first_line, iso, tail_text
from ansible_collections.aitbc.ops.plugins.module_utils.service.base import (
    CMD_TIMEOUT,
    ControlCommandBackend,
    run_cmd,
)
from ansible_collections.aitbc.ops.plugins.module_utils.service.spec import (
    ServiceError,
    ServiceSpec,
    Status,
    make_status,
)

START_LIMIT_HIT = "start-limit-hit"
# systemctl's words for a start refused by the rate limit (its first line may instead be a generic one)
_START_LIMIT_WORDS = ("attempted too often", "repeated too quickly", "start-limit")
# "Fri 2026-12-04 19:16:16 UTC" (systemctl show under TZ=UTC) or "@1733339776" (--timestamp=unix)
_TIMESTAMP = re.compile(r"(\d{4}-\d{2}-\d{2}) (\d{2}:\d{2}:\d{2})(?: (\S+))?$")
_SYSTEMD_LINE = re.compile(r"\bsystemd\[\d+\]: ")
_EXIT_LINE = re.compile(r"(Main process exited, .*|Failed with result '[^']*'.*)$")


def parse_systemctl_show(text: str) -> dict[str, str]:
    props = {}
    for line in (text or "").splitlines():
        key, sep, value = line.partition("=")
        if sep:
            props[key.strip()] = value.strip()
    return props


def parse_show_timestamp(value: str) -> str | None:
    """ISO UTC of a systemctl show timestamp; None when unset or not in UTC (never a guess)."""
    value = (value or "").strip()
    if value.startswith("@") and value[1:].isdigit():
        return iso(datetime.datetime.fromtimestamp(int(value[1:]), datetime.UTC))
    match = _TIMESTAMP.search(value)
    if not match or match.group(3) not in (None, "UTC"):
        return None
    moment = datetime.datetime.strptime(f"{match.group(1)} {match.group(2)}", "%Y-%m-%d %H:%M:%S")
    return iso(moment.replace(tzinfo=datetime.UTC))


def restart_warning(unit: str, restarts: int, last_result: str | None) -> str | None:
    """The warning that systemd's Restart= repaired a crash; None when it did not restart the unit."""
    if restarts <= 0:
        return None
    last = f" (last result: {last_result})" if last_result and last_result != "success" else ""
    return f"{unit} was restarted by systemd {restarts} time(s){last}"


def last_failure_result(journal: list[str]) -> str | None:
    """The result word of the journal's last "Failed with result 'X'" line (Result is reset on restart)."""
    for line in reversed(journal):
        match = re.search(r"Failed with result '([^']*)'", line)
        if match:
            return match.group(1)
    return None


def failure_cause(journal: list[str]) -> str:
    """The unit's own last output line and systemd's last exit line, from the journal's tail."""
    own = next((line for line in reversed(journal) if line.strip() and not _SYSTEMD_LINE.search(line)), "")
    exits = (_EXIT_LINE.search(line) for line in reversed(journal))
    exit_line = next((m.group(1) for m in exits if m and m.group(1).startswith("Main process")), "")
    parts = [exit_line, own.split(": ", 1)[-1].strip() if own else ""]
    return "; ".join(p for p in parts if p) or "no journal lines"


def is_start_limit(props: dict[str, str], message: str, journal: list[str]) -> bool:
    """Did the unit's last start fail on its start limit? systemd keeps the earlier Result (exit-code) when
    Restart= runs into the limit, so the journal's last start event decides too."""
    if props.get("Result") == START_LIMIT_HIT or any(w in message for w in _START_LIMIT_WORDS):
        return True
    for line in reversed(journal):
        if "Start request repeated too quickly" in line:
            return True
        if "Main process exited" in line or re.search(r"systemd\[\d+\]: (Started|Starting) ", line):
            return False
    return False


class SystemdBackend(ControlCommandBackend):
    name = "systemd"
    PROPS = (
        "LoadState,ActiveState,SubState,MainPID,ActiveEnterTimestampMonotonic,ActiveEnterTimestamp,"
        "Result,NRestarts"
    )

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
        argv = ["systemctl", "show", self.unit, "-p", self.PROPS]
        try:  # TZ=UTC: timestamps come in UTC whatever the host's zone (--timestamp=utc needs systemd 248)
            rc, out, err = run_command(argv, CMD_TIMEOUT, env={"TZ": "UTC"})
        except CommandError as exc:
            raise ServiceError(str(exc)) from exc
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
        status = make_status(active, pid if active else None, uptime, detail)
        restarts = props.get("NRestarts", "")
        status.update(
            restarts=int(restarts) if restarts.isdigit() else None,
            result=props.get("Result") or None,
            active_since=parse_show_timestamp(props.get("ActiveEnterTimestamp", "")) if active else None,
        )
        return status

    def status(self) -> Status:
        props = self.show()
        if props.get("LoadState") == "not-found":
            raise ServiceError(f"systemd unit not found: {self.unit}")
        status = self.status_from_props(props)
        if status["restarts"]:
            last = status["result"] if status["result"] != "success" else last_failure_result(self.logs(50))
            status["warnings"] = [restart_warning(self.unit, status["restarts"], last)]
        return status

    def _ctl(self, action: str) -> str | None:
        rc, out, err = run_cmd(["systemctl", action, self.unit])
        if rc == 0:
            return None
        message = first_line(err, out)
        props: dict[str, str] = {}
        with contextlib.suppress(ServiceError):
            props = self.show()
        journal = self.logs(10)
        if action in ("start", "restart") and is_start_limit(props, f"{err}\n{out}", journal):
            return self._retry_after_start_limit(action)
        raise ServiceError(f"systemctl {action} {self.unit} failed: {message}", log_tail=journal)

    def _retry_after_start_limit(self, action: str) -> str:
        """Clear the start limit, try once more, and fail with the real cause if the unit still fails."""
        run_cmd(["systemctl", "reset-failed", self.unit])
        rc, out, err = run_cmd(["systemctl", action, self.unit])
        what = f"systemctl {action} failed again: {first_line(err, out)}" if rc != 0 else ""
        if not what:  # the job went through; a unit in a crash loop fails again within the settle time
            before = self.show()
            time.sleep(max(0.5, float(self.spec.start_timeout)))
            props = self.show()
            looping = props.get("NRestarts", "0") != before.get("NRestarts", "0")
            if (
                props.get("ActiveState") == "active"
                and props.get("SubState") != "auto-restart"
                and not looping
            ):
                return "start limit was hit: reset-failed and retried"
            state = f"{props.get('ActiveState')}/{props.get('SubState')}"
            what = f"still failing ({state}, result: {props.get('Result')})"
        journal = self.logs(20)
        raise ServiceError(
            f"systemctl {action} {self.unit} failed: start request repeated too quickly ({START_LIMIT_HIT}); "
            f"reset-failed and retried: {what}: {failure_cause(journal)}",
            log_tail=journal,
        )

    def start(self) -> str | None:
        return self._ctl("start")

    def restart(self) -> str | None:
        return self._ctl("restart")

    def logs(self, n: int = 20) -> list[str]:
        with contextlib.suppress(ServiceError):
            rc, out, _err = run_cmd(["journalctl", "-u", self.unit, "-n", str(int(n)), "--no-pager"])
            if rc == 0:
                return tail_text(out, n)
        return []

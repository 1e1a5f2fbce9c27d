"""The dead-man's switch: page when no heartbeat has finished within two heartbeat intervals.

A watcher thread looks at the mtime of the heartbeat's state file (rewritten by every heartbeat that
finishes) every min(60, interval / 10) seconds. Stale: one firing report (fingerprint deadman-heartbeat);
fresh again: one resolved report, and the switch re-arms. Whether it has fired is kept in
intake/.deadman.json, so a restart neither pages twice nor forgets to resolve. Without a state file at all
(no heartbeat ever finished) the age counts from the intake's start.
"""

from __future__ import annotations

import json
import logging
import threading
import time
from collections.abc import Callable

from ..incidents import STATE_FILE
from ..memory import MemoryStore, atomic_write
from ..reports import Report

log = logging.getLogger("opsrunner.intake")

FLAG_FILE = "intake/.deadman.json"
FINGERPRINT = "deadman-heartbeat"
MAX_CHECK_PERIOD_S = 60.0


def heartbeat_age(store: MemoryStore, now: float | None = None) -> float | None:
    """Seconds since the last heartbeat finished, or None when none ever did."""
    try:
        mtime = store.path(STATE_FILE).stat().st_mtime
    except OSError:
        return None
    return max(0.0, (now or time.time()) - mtime)


def deadman_report(status: str, age: float) -> Report:
    minutes = int(age // 60)
    summary = (
        f"no heartbeat has finished for {minutes} min"
        if status == "firing"
        else f"heartbeats have resumed (the last finished {minutes} min ago)"
    )
    return Report(
        source="intake",
        host="controller",
        service="heartbeat",
        check="heartbeat finished",
        summary=summary,
        severity="critical",
        category="ops",
        fingerprint=FINGERPRINT,
        status=status,
    )


class DeadMan:
    def __init__(
        self,
        store: MemoryStore,
        interval: float,
        emit: Callable[[Report], None],
        started: float | None = None,
    ) -> None:
        self.store = store
        self.interval = interval
        self.period = min(MAX_CHECK_PERIOD_S, interval / 10)
        self.emit = emit
        self.started = started or time.time()
        self.flag = store.path(FLAG_FILE)
        self.fired = self.load_flag()
        self.stopping = threading.Event()
        self.thread = threading.Thread(target=self.run, name="intake-deadman", daemon=True)

    def load_flag(self) -> bool:
        try:
            return bool(json.loads(self.flag.read_text()).get("fired"))
        except (OSError, ValueError, AttributeError):
            return False

    def save_flag(self) -> None:
        atomic_write(self.flag, json.dumps({"fired": self.fired}) + "\n", mode=0o600)

    def check(self, now: float | None = None) -> str | None:
        """One look; returns the status of the report it sent, if any."""
        now = now or time.time()
        age = heartbeat_age(self.store, now)
        reference = age if age is not None else now - self.started
        stale = reference > 2 * self.interval
        if stale and not self.fired:
            status = "firing"
        elif not stale and self.fired and age is not None:
            status = "resolved"
        else:
            return None
        self.emit(deadman_report(status, reference))  # spooled before the flag flips: never lost
        self.fired = status == "firing"
        self.save_flag()
        log.warning("intake: dead-man's switch %s (last heartbeat %.0f s ago)", status, reference)
        return status

    def run(self) -> None:
        while not self.stopping.wait(self.period):
            try:
                self.check()
            except Exception as exc:  # keep watching: a full disk now is no reason to stop for good
                log.error("intake: dead-man's switch check failed: %s", exc)

    def start(self) -> None:
        self.thread.start()

    def stop(self) -> None:
        self.stopping.set()
        if self.thread.is_alive():
            self.thread.join()

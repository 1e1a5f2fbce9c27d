"""Services an operator stopped on purpose: held. The heartbeat leaves a held service stopped (as Monit's
`unmonitor` does): it neither restarts it nor counts its failing checks, opens no incident for it, and
shows it as "held" (not a failure: a heartbeat with only held services down is healthy).

`opsrunner service stop S` (and an applied `plan service stop S`) holds S on each host where it stopped;
`service start S` and `service restart S` (the CLI, a plan, or MCP's service_restart) release it there, and
so does a heartbeat that finds it passing every check again (started by other means: a deploy, by hand).
The ServiceHolds hook sees those runs' results: a run of the service playbook (its extra vars
service_name and service_state), not in check mode. Holds are kept in <memory dir>/incidents/.holds.json.
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass
from typing import Any

from .memory import MemoryStore, atomic_write, format_time, utcnow
from .recorder import Recorder, RunRecord, TaskResult

HOLDS_FILE = "incidents/.holds.json"
HOLD_STATES = {"stopped": True, "started": False, "restarted": False}  # requested state -> held after it


@dataclass(frozen=True)
class Hold:
    host: str
    service: str
    since: str  # when it was stopped (UTC)
    run_id: str  # the run that stopped it

    def describe(self) -> str:
        return f"held: stopped on purpose at {self.since} (run {self.run_id})"


class Holds:
    """The holds of one memory store, read and written under its lock."""

    def __init__(self, store: MemoryStore) -> None:
        self.store = store

    def all(self) -> dict[str, dict[str, Hold]]:
        """host -> service -> Hold."""
        held: dict[str, dict[str, Hold]] = {}
        for hold in self._load():
            held.setdefault(hold.host, {})[hold.service] = hold
        return held

    def on(self, host: str) -> dict[str, Hold]:
        return self.all().get(host, {})

    def change(self, held: list[Hold], released: list[tuple[str, str]]) -> None:
        """Hold some services and release others, in one write."""
        if not held and not released:
            return
        self.store.ensure_layout()
        with self.store.locked(HOLDS_FILE) as target:
            gone = {(h.host, h.service) for h in held} | set(released)
            kept = [h for h in self._load() if (h.host, h.service) not in gone]
            rows = sorted(kept + held, key=lambda h: (h.host, h.service))
            atomic_write(target, json.dumps([asdict(h) for h in rows], indent=1) + "\n", mode=0o600)

    def _load(self) -> list[Hold]:
        try:
            data = json.loads(self.store.path(HOLDS_FILE).read_text())
        except (OSError, ValueError):
            return []
        if not isinstance(data, list):
            return []
        return [Hold(**item) for item in data if isinstance(item, dict) and _is_hold(item)]


def _is_hold(item: dict[str, Any]) -> bool:
    fields = {"host", "service", "since", "run_id"}
    return set(item) == fields and all(isinstance(value, str) for value in item.values())


class ServiceHolds:
    """Recorder hooks: a run of the service playbook holds or releases the service where it acted."""

    def __init__(self, recorder: Recorder) -> None:
        self.recorder = recorder
        name = recorder.extra_vars.get("service_name")
        state = recorder.extra_vars.get("service_state")
        self.service = name if isinstance(name, str) else ""
        self.hold = HOLD_STATES.get(state) if isinstance(state, str) else None
        self.hosts: list[str] = []
        if self.service and self.hold is not None:
            recorder.result_hooks.append(self.on_result)
            recorder.finish_hooks.append(self.on_finish)

    def on_result(self, _recorder: Recorder, result: TaskResult) -> None:
        service = result.result.get("service")
        if (
            result.action.endswith("service")
            and not result.failed
            and isinstance(service, dict)
            and service.get("name") == self.service
        ):
            self.hosts.append(result.host)

    def on_finish(self, recorder: Recorder, record: RunRecord) -> None:
        store = recorder.store
        if store is None or record.check_mode or not self.hosts:
            return
        hosts = sorted(set(self.hosts))
        if self.hold:
            since = format_time(utcnow())
            Holds(store).change([Hold(h, self.service, since, record.run_id) for h in hosts], [])
            record.details.append(
                f"{self.service} held on {', '.join(hosts)}: the heartbeat leaves it stopped until "
                f"`opsrunner service start {self.service}`"
            )
        else:
            before = Holds(store).all()
            released = [h for h in hosts if self.service in before.get(h, {})]
            Holds(store).change([], [(h, self.service) for h in released])
            if released:
                record.details.append(f"{self.service} no longer held on {', '.join(released)}")

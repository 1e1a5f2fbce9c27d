"""The heartbeat counts a crash that systemd repaired (NRestarts rose between two heartbeats) as a failure of
that service: its incident opens at once, nothing is restarted, and it resolves at the next healthy heartbeat.
Hand-built heartbeat runs through the real recorder and memory folder."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from opsrunner.heartbeat import (
    HISTORY_FILE,
    HeartbeatConfig,
    HeartbeatHooks,
    HeartbeatState,
    crash_text,
    restart_plan,
    unit_restarts,
)
from opsrunner.incidents import IncidentStore
from opsrunner.memory import MemoryStore
from opsrunner.recorder import Recorder, RunRecord

CHECK = "redis running"


def ev(name: str, **data: Any) -> dict[str, Any]:
    return {"event": name, "event_data": data}


def service_probe(restarts: int | None, ok: bool = True, result: str = "success", crash: str = "") -> dict:
    data: dict[str, Any] = {"backend": "systemd", "active": ok, "restarts": restarts, "result": result}
    if crash:
        data["crash_result"] = crash
    return {
        "name": CHECK,
        "type": "service",
        "service": "redis",
        "ok": ok,
        "detail": "running (pid 42)" if ok else "not running (systemd): failed/failed",
        "data": data,
    }


def heartbeat(
    store: MemoryStore, *probes: dict[str, Any], host: str = "h1"
) -> tuple[RunRecord, HeartbeatHooks]:
    """One heartbeat run: the heartbeat role's check task on `host` with these probe results."""
    recorder = Recorder(store, source="test", playbook="playbooks/heartbeat.yml")
    hooks = HeartbeatHooks(recorder, send_alert=lambda *_: None)
    res = {"results": list(probes), "labels": {"heartbeat": "check"}}
    recorder.handle(
        ev("runner_on_ok", host=host, task="heartbeat: check", task_action="aitbc.ops.health", res=res)
    )
    recorder.handle(
        ev(
            "playbook_on_stats",
            ok={host: 1},
            processed={host: 1},
            changed={},
            failures={},
            dark={},
            skipped={},
        )
    )
    return recorder.finish(rc=0), hooks


def test_unit_restarts_reads_only_service_probes() -> None:
    assert unit_restarts(service_probe(3)) == 3
    assert unit_restarts(service_probe(None)) is None
    assert unit_restarts({"type": "http", "data": {"restarts": 3}}) is None
    assert unit_restarts({"type": "service", "data": {"restarts": True}}) is None
    assert unit_restarts({"type": "service", "data": {"restarts": "3"}}) is None  # untrusted: ints only


def test_crash_text_prefers_the_journal_result() -> None:
    assert crash_text(service_probe(3, crash="signal"), 2, 3) == (
        "crashed; systemd restarted it (NRestarts 2 -> 3, result: signal)"
    )
    assert crash_text(service_probe(1, result="exit-code"), 0, 1).endswith("result: exit-code)")


def test_first_run_records_the_count_only(tmp_path: Path) -> None:
    store = MemoryStore(tmp_path)
    record, _hooks = heartbeat(store, service_probe(5))
    assert record.outcome == "ok" and record.incidents == []
    assert HeartbeatState.load(store).unit_restarts == {"h1|redis": 5}
    assert IncidentStore(store).all() == []


def test_a_repaired_crash_opens_the_incident_at_once_and_resolves_when_healthy(tmp_path: Path) -> None:
    store = MemoryStore(tmp_path)
    heartbeat(store, service_probe(2))
    record, _hooks = heartbeat(store, service_probe(3, crash="signal"))

    [incident] = IncidentStore(store).all()
    assert (incident.host, incident.service, incident.check, incident.status) == (
        "h1",
        "redis",
        CHECK,
        "open",
    )
    line = "crashed; systemd restarted it (NRestarts 2 -> 3, result: signal)"
    assert [t.text for t in incident.timeline] == [line]
    assert record.incidents == [incident.id]
    assert any(line in detail for detail in record.details)
    # a failure of the service: the run is unhealthy; but it runs, so nothing is planned for a restart
    assert record.outcome == "unhealthy" and record.exit_code == 1
    assert restart_plan(store, "h1", [], HeartbeatConfig()) == []
    # the status page's history shows the crash as that service's failure in this heartbeat
    history = [json.loads(line) for line in store.path(HISTORY_FILE).read_text().splitlines()]
    assert history[-1]["hosts"]["h1"]["services"]["redis"] == {"ok": False, "detail": line}

    record, _hooks = heartbeat(store, service_probe(3))  # the next healthy heartbeat
    [incident] = IncidentStore(store).all()
    assert record.outcome == "ok"
    assert incident.status == "resolved"
    assert incident.cause == "crashed; restarted by systemd"
    assert f"{incident.id} resolved" in " ".join(record.details)


def test_a_crash_joins_the_open_incident_of_its_service(tmp_path: Path) -> None:
    store = MemoryStore(tmp_path)
    config = {"failure_threshold": 1}
    heartbeat(store, service_probe(0))
    down = dict(service_probe(0, ok=False), name="redis ping", type="redis", data={})
    recorder = Recorder(store, source="test", playbook="playbooks/heartbeat.yml")
    HeartbeatHooks(recorder, send_alert=lambda *_: None)
    res = {"results": [service_probe(1, crash="signal"), down], "labels": {"heartbeat": "check", **config}}
    recorder.handle(ev("runner_on_ok", host="h1", task="check", task_action="aitbc.ops.health", res=res))
    recorder.finish(rc=0)
    [incident] = IncidentStore(store).all()
    assert incident.check == "redis ping"
    assert incident.timeline[-1].text == "crashed; systemd restarted it (NRestarts 0 -> 1, result: signal)"


def test_a_counter_reset_is_no_crash(tmp_path: Path) -> None:
    store = MemoryStore(tmp_path)
    heartbeat(store, service_probe(4))
    heartbeat(store, service_probe(0))  # reset-failed or a reboot
    heartbeat(store, service_probe(0))
    assert IncidentStore(store).all() == []
    assert HeartbeatState.load(store).unit_restarts == {"h1|redis": 0}
    heartbeat(store, service_probe(4), host="h2")  # another host's count is its own
    assert HeartbeatState.load(store).unit_restarts == {"h1|redis": 0, "h2|redis": 4}

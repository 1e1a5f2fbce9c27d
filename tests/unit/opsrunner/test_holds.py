"""Services stopped on purpose (opsrunner.holds): the service playbook's runs hold and release them, and
the heartbeat leaves a held service alone. Hand-built runs through the real recorder and memory folder."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from opsrunner.heartbeat import HISTORY_FILE, HeartbeatConfig, HeartbeatHooks, restart_plan
from opsrunner.holds import HOLDS_FILE, Hold, Holds, ServiceHolds
from opsrunner.incidents import IncidentStore
from opsrunner.memory import MemoryStore
from opsrunner.recorder import Recorder, RunRecord
from opsrunner.report import heartbeat_rows


def ev(name: str, **data: Any) -> dict[str, Any]:
    return {"event": name, "event_data": data}


def stats(*hosts: str) -> dict[str, Any]:
    every = dict.fromkeys(hosts, 1)
    return ev("playbook_on_stats", ok=every, processed=every, changed={}, failures={}, dark={}, skipped={})


def service_run(
    store: MemoryStore, state: str, hosts: list[str], check: bool = False, name: str = "web"
) -> RunRecord:
    """A run of the service playbook: the service module's result on each host."""
    extra_vars = {"service_name": name, "service_state": state}
    recorder = Recorder(store, source="test", playbook="service.yml", check_mode=check, extra_vars=extra_vars)
    ServiceHolds(recorder)
    for host in hosts:
        res = {"changed": True, "service": {"name": name, "backend": "process", "active": state != "stopped"}}
        recorder.handle(
            ev("runner_on_ok", host=host, task="service", task_action="aitbc.ops.service", res=res)
        )
    recorder.handle(stats(*hosts))
    return recorder.finish(rc=0)


def failing_web(host: str = "h1") -> dict[str, Any]:
    return {"name": "web running", "type": "service", "service": "web", "ok": False, "detail": "not running"}


def heartbeat(
    store: MemoryStore, *probes: dict[str, Any], host: str = "h1"
) -> tuple[RunRecord, HeartbeatHooks]:
    recorder = Recorder(store, source="test", playbook="playbooks/heartbeat.yml")
    hooks = HeartbeatHooks(recorder, send_alert=lambda *_: None)
    res = {"results": list(probes), "labels": {"heartbeat": "check", "failure_threshold": 1}}
    recorder.handle(
        ev("runner_on_ok", host=host, task="heartbeat: check", task_action="aitbc.ops.health", res=res)
    )
    recorder.handle(stats(host))
    return recorder.finish(rc=0), hooks


def test_a_stop_holds_and_a_start_releases_where_they_acted(tmp_path: Path) -> None:
    store = MemoryStore(tmp_path)
    record = service_run(store, "stopped", ["h1", "h2"])
    assert set(Holds(store).all()) == {"h1", "h2"}
    assert any("web held on h1, h2" in line for line in record.details)
    record = service_run(store, "restarted", ["h2"])
    assert set(Holds(store).all()) == {"h1"} and "web no longer held on h2" in record.details
    assert "no longer held" not in " ".join(
        service_run(store, "started", ["h3"]).details
    )  # nothing to release
    assert (store.path(HOLDS_FILE).stat().st_mode & 0o777) == 0o600


def test_check_mode_and_other_runs_hold_nothing(tmp_path: Path) -> None:
    store = MemoryStore(tmp_path)
    service_run(store, "stopped", ["h1"], check=True)  # a plan's check run
    service_run(store, "status", ["h1"])
    assert Holds(store).all() == {}
    recorder = Recorder(store, source="test", playbook="deploy.yml")  # the module elsewhere: no hold
    ServiceHolds(recorder)
    res = {"service": {"name": "web", "active": False}}
    recorder.handle(ev("runner_on_ok", host="h1", task="stop", task_action="aitbc.ops.service", res=res))
    recorder.finish(rc=0)
    assert Holds(store).all() == {}


def test_the_heartbeat_leaves_a_held_service_alone(tmp_path: Path) -> None:
    store = MemoryStore(tmp_path)
    Holds(store).change([Hold("h1", "web", "2026-12-05T01:00:00Z", "run-1")], [])
    assert restart_plan(store, "h1", [failing_web()], HeartbeatConfig(failure_threshold=1)) == []
    record, hooks = heartbeat(store, failing_web())
    assert record.outcome == "ok" and hooks.healthy()
    assert IncidentStore(store).all() == []
    assert heartbeat_rows(hooks.hosts) == [
        ["h1", "web", "held", "held: stopped on purpose at 2026-12-05T01:00:00Z (run run-1)"]
    ]
    (line,) = [json.loads(text) for text in store.path(HISTORY_FILE).read_text().splitlines()]
    held = line["hosts"]["h1"]["services"]["web"]  # the status page's source: down, and why
    assert held == {"ok": False, "held": True, "detail": heartbeat_rows(hooks.hosts)[0][3]}
    # Released: the same failure counts again.
    Holds(store).change([], [("h1", "web")])
    record, hooks = heartbeat(store, failing_web())
    assert record.outcome == "unhealthy" and len(IncidentStore(store).all()) == 1


def test_a_torn_holds_file_holds_nothing(tmp_path: Path) -> None:
    store = MemoryStore(tmp_path)
    store.path(HOLDS_FILE).parent.mkdir(parents=True, exist_ok=True)
    store.path(HOLDS_FILE).write_text('[{"host": "h1"}, 3')
    assert Holds(store).all() == {}
    store.path(HOLDS_FILE).write_text('[{"host": "h1", "service": "web"}, {"host": 1}]')
    assert Holds(store).all() == {}


def test_a_held_service_found_running_again_is_released(tmp_path: Path) -> None:
    store = MemoryStore(tmp_path)
    Holds(store).change([Hold("h1", "web", "2026-12-05T01:00:00Z", "run-1")], [])
    passing = {**failing_web(), "ok": True, "detail": "running"}
    record, hooks = heartbeat(store, passing)  # started by other means (a deploy, by hand)
    assert Holds(store).all() == {} and "h1: web runs again: no longer held" in record.details
    assert heartbeat_rows(hooks.hosts) == [["h1", "web", "ok", ""]]

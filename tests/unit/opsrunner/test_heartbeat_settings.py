"""The heartbeat's thresholds are checked in one place (HeartbeatConfig), and an outage is paged even when
remediation is off: hand-built heartbeat runs through the real recorder and memory folder."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from opsrunner.heartbeat import HeartbeatConfig, HeartbeatHooks, SettingsError
from opsrunner.incidents import IncidentStore
from opsrunner.memory import MemoryStore
from opsrunner.recorder import Recorder


@pytest.mark.parametrize(
    ("labels", "message"),
    [
        (
            {"max_restarts": 0},
            "heartbeat_max_restarts must be a whole number of 1 or more, not 0; to only report",
        ),
        ({"restart_window": "0"}, "heartbeat_restart_window must be a whole number of 1 or more, not '0'"),
        (
            {"failure_threshold": -1},
            "heartbeat_failure_threshold must be a whole number of 1 or more, not -1",
        ),
        (
            {"success_threshold": "two"},
            "heartbeat_success_threshold must be a whole number of 1 or more, not 'two'",
        ),
        (
            {"failure_threshold": 1.5},
            "heartbeat_failure_threshold must be a whole number of 1 or more, not 1.5",
        ),
    ],
)
def test_bad_thresholds_name_their_variable(labels: dict[str, Any], message: str) -> None:
    with pytest.raises(SettingsError) as caught:
        HeartbeatConfig.from_labels(labels)
    assert str(caught.value).startswith(message)


def test_good_thresholds_arrive_as_numbers() -> None:
    config = HeartbeatConfig.from_labels({"max_restarts": "2", "restart_window": 4, "remediate": "False"})
    assert (config.max_restarts, config.restart_window, config.remediate) == (2, 4, False)


def failing_beat(store: MemoryStore, alerts: list[str], remediate: bool) -> None:
    recorder = Recorder(store, source="test", playbook="playbooks/heartbeat.yml")
    HeartbeatHooks(recorder, send_alert=lambda kind, incident, text: alerts.append(kind))
    probe = {"name": "web http", "type": "http", "service": "web", "ok": False, "detail": "refused"}
    labels = {"heartbeat": "check", "failure_threshold": 1, "remediate": remediate}
    res = {"results": [probe], "labels": labels}
    recorder.handle(
        {
            "event": "runner_on_ok",
            "event_data": {"host": "h1", "task": "check", "task_action": "aitbc.ops.health", "res": res},
        }
    )
    stats = {k: {} for k in ("changed", "failures", "dark", "skipped")}
    recorder.handle(
        {"event": "playbook_on_stats", "event_data": {"ok": {"h1": 1}, "processed": {"h1": 1}, **stats}}
    )
    recorder.finish(rc=0)


def test_without_remediation_an_outage_is_paged_at_once(tmp_path: Path) -> None:
    store = MemoryStore(tmp_path)
    alerts: list[str] = []
    failing_beat(store, alerts, remediate=False)
    (incident,) = IncidentStore(store).all()
    assert incident.escalated and "remediation is off" in incident.timeline[-1].text
    assert alerts == ["opened", "escalated"]  # the responder decides which of them page

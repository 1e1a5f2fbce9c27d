"""The one hook table (opsrunner/hooks.py): which hooks a run of each event gets, under the runner and
under the memory callback (watch=True), in the order their details appear."""

from __future__ import annotations

from pathlib import Path

import pytest

from opsrunner import hooks
from opsrunner.backups import BackupHooks
from opsrunner.decisions import DecisionHooks, decision_hooks
from opsrunner.deploys import DeployHooks
from opsrunner.diagnose import DiagnoseHooks
from opsrunner.heartbeat import HeartbeatHooks
from opsrunner.holds import ServiceHolds
from opsrunner.logreview import finish_hook, review_hooks
from opsrunner.recorder import Recorder

REPO = Path(__file__).resolve().parents[3]
STANDARD = (decision_hooks, BackupHooks, DeployHooks, ServiceHolds)


def recorder(**extra_vars) -> Recorder:
    return Recorder(None, source="test", extra_vars=extra_vars)


# -- the table, as the runner reads it (the event of the command) -------------------------------------


@pytest.mark.parametrize(
    ("event", "own"),
    [
        ("heartbeat", (HeartbeatHooks,)),
        ("log review", (review_hooks,)),
        ("diagnose", (DiagnoseHooks,)),
        ("run", ()),
        ("backup", ()),
        ("deploy", ()),
        ("service restart", ()),
    ],
)
def test_runner_gets_the_standard_hooks_then_its_events_own(event: str, own: tuple) -> None:
    assert hooks.hook_factories(event) == STANDARD + own


# -- the table, as the memory callback reads it (the event of the playbook, and the watchers) ---------


@pytest.mark.parametrize(
    ("playbook", "expected"),
    [
        # The run's own heartbeat hooks take the watcher's place: its unreachable hosts count.
        ("heartbeat.yml", STANDARD + (HeartbeatHooks, review_hooks)),
        ("logs_review.yml", STANDARD + (hooks.watch_heartbeat, review_hooks)),
        ("diagnose.yml", STANDARD + (hooks.watch_heartbeat, review_hooks, DiagnoseHooks)),
        ("backup.yml", STANDARD + (hooks.watch_heartbeat, review_hooks)),
        ("site.yml", STANDARD + (hooks.watch_heartbeat, review_hooks)),
    ],
)
def test_callback_gets_the_watchers_and_its_playbooks_own_hooks(playbook: str, expected: tuple) -> None:
    assert hooks.hook_factories(hooks.playbook_event(playbook), watch=True) == expected


def test_the_event_of_a_playbook_comes_from_its_file_name() -> None:
    assert hooks.playbook_event("/anywhere/playbooks/heartbeat.yml") == "heartbeat"
    assert hooks.playbook_event("logs_review.yml") == "log review"
    assert hooks.playbook_event("diagnose.yml") == "diagnose"
    assert hooks.playbook_event("site.yml") == hooks.RUN == "run"


def test_every_playbook_in_the_table_exists() -> None:
    missing = [name for name in hooks.PLAYBOOK_EVENTS if not (REPO / "playbooks" / name).is_file()]
    assert missing == []


# -- installing them ---------------------------------------------------------------------------------


def test_install_returns_the_hook_objects_a_command_reads() -> None:
    rec = recorder()
    installed = hooks.install_hooks(rec, "heartbeat")
    assert [type(h) for h in installed.installed] == [
        DecisionHooks,
        BackupHooks,
        DeployHooks,
        ServiceHolds,
        HeartbeatHooks,
    ]
    heartbeat = installed.get(HeartbeatHooks)
    assert heartbeat.expected and heartbeat.on_result in rec.result_hooks
    with pytest.raises(LookupError, match="DiagnoseHooks"):
        installed.get(DiagnoseHooks)


def test_install_for_a_plain_playbook_watches_for_heartbeats_without_expecting_one() -> None:
    rec = recorder()
    installed = hooks.install_hooks(rec, "run", watch=True)
    assert not installed.get(HeartbeatHooks).expected
    assert finish_hook in rec.finish_hooks  # the log review's hook holds no object of its own


def test_diagnose_hooks_take_the_service_from_the_runs_variables() -> None:
    assert (
        hooks.install_hooks(recorder(diagnose_service="redis"), "diagnose").get(DiagnoseHooks).service
        == "redis"
    )
    # The memory callback knows no extra vars: every service, as before.
    assert hooks.install_hooks(recorder(), "diagnose", watch=True).get(DiagnoseHooks).service == ""

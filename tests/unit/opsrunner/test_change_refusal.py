"""The change wrapper's refusals, before it touches anything: a plan the policy wants, a freeze window,
an override without a reason. (Change's entry and exit with the inventory run in the integration test.)"""

from __future__ import annotations

import datetime as dt
from pathlib import Path

import pytest

from opsrunner.change import Change, outcome_of, require_plan_or_refuse
from opsrunner.memory import MemoryStore, format_time, utcnow
from opsrunner.policy import Policy
from opsrunner.settings import BadInput, Settings
from opsrunner.windows import Windows


def site(tmp_path: Path, policy: str) -> tuple[Settings, MemoryStore, Path]:
    inventory = tmp_path / "hosts.yml"
    inventory.write_text("all: {hosts: {h1: {ansible_connection: local}}}\n")
    (tmp_path / "ops-policy.yml").write_text(policy)
    settings = Settings.load(memory_dir=str(tmp_path / "memory"))
    return settings, MemoryStore(settings.memory_dir), inventory


def freeze_now(reason: str = "release freeze") -> str:
    now = utcnow()
    start, end = format_time(now - dt.timedelta(hours=1)), format_time(now + dt.timedelta(hours=1))
    return f"require_plan: []\nfreeze: [{{start: '{start}', end: '{end}', reason: {reason}}}]\n"


def test_a_plan_is_required_where_the_policy_says(tmp_path: Path) -> None:
    _, _, inventory = site(tmp_path, "require_plan: [deploy]\n")
    policy = Policy.load(inventory)
    with pytest.raises(BadInput) as caught:
        require_plan_or_refuse(policy, "deploy", "opsrunner plan deploy 2 --from web-2.tar.gz")
    message = str(caught.value)
    assert message.startswith("the policy needs an approved plan for deploy: opsrunner plan deploy 2")
    assert "opsrunner approve PLAN --by NAME and opsrunner apply PLAN" in message
    require_plan_or_refuse(policy, "rollback", "unused")  # not named: direct


def test_a_deploy_in_a_freeze_window_is_refused_and_nothing_opens(tmp_path: Path) -> None:
    settings, store, inventory = site(tmp_path, freeze_now())
    ran = []
    with (
        pytest.raises(BadInput) as caught,
        Change(settings, store, inventory, "deploy", title="deploy web 2"),
    ):
        ran.append(True)
    message = str(caught.value)
    assert message.startswith("deploy refused: freeze window release freeze (")
    assert message.endswith("); use --override-freeze --reason TEXT")
    assert ran == [] and Windows(store).all() == []
    entries = store.read_daily(utcnow().date())
    assert [(e.event, e.outcome) for e in entries] == [("change", "refused")]


def test_a_restore_is_refused_too_but_not_a_rollback_or_config(tmp_path: Path) -> None:
    settings, store, inventory = site(tmp_path, freeze_now())
    with pytest.raises(BadInput, match="^restore refused: freeze window"):
        Change(settings, store, inventory, "restore").__enter__()
    policy = Policy.load(inventory)
    for action in ("rollback", "config", "packages"):
        change = Change(settings, store, inventory, action, policy=policy)
        assert change.action == action  # no freeze check for these (entry reads the inventory: not here)


def test_an_override_needs_a_reason(tmp_path: Path) -> None:
    settings, store, inventory = site(tmp_path, freeze_now())
    with pytest.raises(BadInput, match="--override-freeze needs --reason"):
        Change(settings, store, inventory, "deploy", override_freeze=True, reason="  ")


def test_outcomes() -> None:
    assert outcome_of(None) == "ok"
    assert outcome_of(SystemExit(0)) == "ok" and outcome_of(SystemExit(1)) == "failed"
    assert outcome_of(SystemExit(3)) == "unreachable" and outcome_of(SystemExit(7)) == "exit 7"
    assert outcome_of(BadInput("no such service")) == "refused: no such service"
    assert outcome_of(RuntimeError("x")) == "failed: RuntimeError"

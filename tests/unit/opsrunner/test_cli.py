"""The CLI's shared pieces (opsrunner/cli/context.py): playbook_request builds every command's run, and
the root group holds every command."""

from __future__ import annotations

from pathlib import Path

import pytest

from opsrunner.cli import check_ansible_core, cli
from opsrunner.cli.context import Context, playbook_request
from opsrunner.cli.options import parse_extra_vars
from opsrunner.settings import BadInput, Settings

REPO = Path(__file__).resolve().parents[3]


@pytest.fixture
def ctx(tmp_path: Path) -> Context:
    settings = Settings(project_root=REPO, memory_dir=tmp_path / "mem", work_dir=tmp_path / "work")
    return Context(settings=settings, inventory=None)


def test_a_request_for_a_command_playbook(ctx: Context) -> None:
    request = playbook_request(ctx, "heartbeat.yml", limit="t1", extra_vars={"heartbeat_remediate": False})
    assert request.playbook == REPO / "playbooks" / "heartbeat.yml"
    assert request.inventory == REPO / "inventory" / "local.yml"
    assert (request.limit, request.check, request.diff) == ("t1", False, False)
    assert request.extra_vars == {"heartbeat_remediate": False}
    assert request.event == "heartbeat"  # the playbook's event in the hook table


def test_the_event_is_the_tables_unless_the_command_names_one(ctx: Context) -> None:
    assert playbook_request(ctx, "backups_list.yml").event == "backups list"
    assert playbook_request(ctx, "diagnose").event == "diagnose"  # a name without .yml
    assert playbook_request(ctx, "service.yml", event="service restart").event == "service restart"
    assert playbook_request(ctx, "heartbeat.yml", event="run").event == "run"  # opsrunner run
    assert playbook_request(ctx, "demo.yml").event == "run"  # not in the table


def test_inventory_check_and_diff(ctx: Context, tmp_path: Path) -> None:
    inventory = tmp_path / "hosts.yml"
    request = playbook_request(ctx, "env_sync.yml", inventory=str(inventory), check=True, diff=True)
    assert request.inventory == inventory.absolute() and request.check and request.diff
    ctx.inventory = str(inventory)  # the root group's -i
    assert playbook_request(ctx, "backup.yml").inventory == inventory.absolute()


def test_extra_vars_are_copied(ctx: Context) -> None:
    given = {"a": 1}
    request = playbook_request(ctx, "backup.yml", extra_vars=given)
    request.extra_vars["b"] = 2
    assert given == {"a": 1}


def test_unknown_playbook_is_bad_input(ctx: Context) -> None:
    with pytest.raises(BadInput, match="unknown playbook: nope"):
        playbook_request(ctx, "nope")


def test_parse_extra_vars(tmp_path: Path) -> None:
    (tmp_path / "vars.yml").write_text("c: 3\n")
    assert parse_extra_vars(("a=1", '{"b": [2]}', f"@{tmp_path / 'vars.yml'}")) == {
        "a": "1",
        "b": [2],
        "c": 3,
    }
    with pytest.raises(BadInput, match="use K=V, JSON or @file"):
        parse_extra_vars(("nonsense",))


def test_the_root_group_holds_every_command() -> None:
    assert sorted(cli.commands) == [
        "apply",
        "approve",
        "backup",
        "backups",
        "demo",
        "deploy",
        "diagnose",
        "env",
        "heartbeat",
        "incidents",
        "intake",
        "logs",
        "mcp",
        "memory",
        "packages",
        "plan",
        "plans",
        "releases",
        "report",
        "restore",
        "rollback",
        "run",
        "schedule",
        "service",
        "verify",
    ]


@pytest.mark.parametrize("version", ["2.16.14", "2.18.3", "1.9"])
def test_an_old_ansible_core_is_refused(version: str) -> None:
    with pytest.raises(BadInput, match=f"ansible-core {version} is too old: opsrunner needs 2.19 or newer"):
        check_ansible_core(version)


@pytest.mark.parametrize("version", ["2.19.0", "2.19.4", "2.20.0rc1", "3.0.0"])
def test_a_current_ansible_core_is_accepted(version: str) -> None:
    check_ansible_core(version)

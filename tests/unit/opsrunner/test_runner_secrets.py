"""The pure parts of how opsrunner starts ansible-runner without leaking secrets (issue 13, defects 9, 11
and 12): the run's environment allow-list, extra vars as a file of data, the JSON-escaped forms of secrets,
the kill -9 sweep (with a real process holding a run's lock), and secret discovery failing closed."""

from __future__ import annotations

import json
import multiprocessing
import os
import signal
import stat
import time
from pathlib import Path

import pytest

from opsrunner.ansible_secrets import SecretDiscoveryError, discover_secrets
from opsrunner.redact import Redactor
from opsrunner.runner import (
    claim_private_dir,
    escaped_forms,
    run_environment,
    sweep_leftovers,
    unsafe_yaml,
    write_extravars,
)

REPO = Path(__file__).resolve().parents[3]


def test_the_run_environment_keeps_only_the_allow_list_and_what_the_run_sets() -> None:
    inherited = {
        "PATH": "/usr/bin",
        "HOME": "/root",
        "LC_ALL": "C.UTF-8",
        "ANSIBLE_VAULT_PASSWORD_FILE": "/etc/vault-pass",
        "OPSRUNNER_BACKUP_STORE": "/srv/store",
        "SSH_AUTH_SOCK": "/run/agent.sock",
        "GITHUB_PAT": "ghp_planted",
        "MY_DEPLOY_CRED": "cred-planted",
        "AWS_SECRET_ACCESS_KEY": "aws-planted",
    }
    prepared = {**inherited, "PATH": "/venv/bin:/usr/bin", "AWX_ISOLATED_DATA_DIR": "/work/artifacts/r1"}

    env = run_environment(inherited, prepared)

    assert env == {
        "PATH": "/venv/bin:/usr/bin",
        "HOME": "/root",
        "LC_ALL": "C.UTF-8",
        "ANSIBLE_VAULT_PASSWORD_FILE": "/etc/vault-pass",
        "OPSRUNNER_BACKUP_STORE": "/srv/store",
        "SSH_AUTH_SOCK": "/run/agent.sock",
        "AWX_ISOLATED_DATA_DIR": "/work/artifacts/r1",
    }


def test_a_secret_holding_quotes_and_backslashes_is_masked_in_json_text() -> None:
    secret = 'q"uo\\te-Zp9 é'
    redactor = Redactor([secret])
    redactor.add(escaped_forms(redactor.secrets))
    for text in (json.dumps({"msg": secret}), json.dumps({"msg": secret}, ensure_ascii=False), repr(secret)):
        assert "Zp9" not in redactor.redact_text(text), text


def test_extra_vars_are_written_as_data_ansible_never_templates(tmp_path: Path) -> None:
    from ansible.parsing.dataloader import DataLoader
    from ansible.template import Templar

    values = {"vault_x": 'a"b\\c\n{{ x }}', "cli_arg": "{{ lookup('pipe', 'id') }}", "n": 3, "l": ["{{ y }}"]}
    (tmp_path / "private").mkdir(mode=0o700)
    write_extravars(tmp_path / "private", values)
    path = tmp_path / "private" / "env" / "extravars"
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert stat.S_IMODE(path.parent.stat().st_mode) == 0o700

    loaded = DataLoader().load_from_file(str(path), trusted_as_template=True)
    assert loaded == values
    assert Templar(loader=DataLoader(), variables={}).template(loaded["cli_arg"]) == values["cli_arg"]
    assert "!unsafe" in unsafe_yaml({"k": "{{ v }}"}) and "!unsafe" not in unsafe_yaml({"k": "v"})


def _hold_lock_then_sleep(private_root: Path, run_id: str, ready: multiprocessing.synchronize.Event) -> None:
    run_dir, _fd = claim_private_dir(private_root, run_id)
    write_extravars(run_dir, {"vault_x": "planted"})
    ready.set()
    time.sleep(60)


def test_the_sweep_removes_what_a_killed_run_left_and_spares_a_live_one(tmp_path: Path) -> None:
    fork = multiprocessing.get_context("fork")
    private_root = tmp_path / "private"
    runs = {}
    for run_id in ("20260101T000000Z-dead01", "20260101T000000Z-live01"):
        ready = fork.Event()
        runs[run_id] = fork.Process(target=_hold_lock_then_sleep, args=(private_root, run_id, ready))
        runs[run_id].start()
        assert ready.wait(20)
        partial = tmp_path / "artifacts" / run_id / "job_events" / "0b1c-partial.json"
        partial.parent.mkdir(parents=True)
        partial.write_text('{"event_data": {"res": "planted"}}')
    legacy = private_root / "20250101T000000Z-old001" / "env"
    legacy.mkdir(parents=True)
    (legacy / "cmdline").write_text('-e \'{"vault_x": "planted"}\'')
    os.kill(runs["20260101T000000Z-dead01"].pid, signal.SIGKILL)
    runs["20260101T000000Z-dead01"].join()
    try:
        swept = sweep_leftovers(tmp_path)
        assert sorted(swept) == ["20250101T000000Z-old001", "20260101T000000Z-dead01"]
        assert sorted(p.name for p in private_root.iterdir()) == ["20260101T000000Z-live01"]
        assert (private_root / "20260101T000000Z-live01" / "env" / "extravars").is_file()
        assert not list((tmp_path / "artifacts" / "20260101T000000Z-dead01").rglob("*-partial.json"))
        assert list((tmp_path / "artifacts" / "20260101T000000Z-live01").rglob("*-partial.json"))
    finally:
        runs["20260101T000000Z-live01"].kill()
        runs["20260101T000000Z-live01"].join()


@pytest.fixture
def ansible_cfg(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("ANSIBLE_CONFIG", str(REPO / "ansible.cfg"))


def _localhost(tmp_path: Path) -> Path:
    inventory = tmp_path / "hosts.yml"
    inventory.write_text("all:\n  hosts:\n    localhost:\n      ansible_connection: local\n")
    return inventory


def test_discovery_follows_collection_playbooks_and_import_vars(tmp_path: Path, ansible_cfg: None) -> None:
    playbook = tmp_path / "site.yml"
    playbook.write_text("- import_playbook: aitbc.ops.ping\n  vars:\n    deploy_token: import-planted-1\n")
    values, _context = discover_secrets(playbook, _localhost(tmp_path), timeout=60)
    assert "import-planted-1" in values


@pytest.mark.parametrize(
    "body",
    ['- import_playbook: "{{ which }}.yml"\n', "- import_playbook: missing.yml\n", "- just a string\n"],
    ids=["templated-import", "missing-import", "not-a-play"],
)
def test_discovery_that_cannot_follow_a_playbook_raises(tmp_path: Path, ansible_cfg: None, body: str) -> None:
    playbook = tmp_path / "site.yml"
    playbook.write_text(body)
    with pytest.raises(SecretDiscoveryError):
        discover_secrets(playbook, _localhost(tmp_path), timeout=60)


def test_a_hanging_discovery_is_killed_at_its_deadline(tmp_path: Path, ansible_cfg: None) -> None:
    """A vault password script that never answers: discovery gives up on time, its process gone."""
    script = tmp_path / "vault-pass.sh"
    script.write_text("#!/bin/sh\nsleep 60\necho never\n")
    script.chmod(0o700)
    playbook = tmp_path / "site.yml"
    playbook.write_text("- hosts: all\n  gather_facts: false\n  tasks: []\n")
    started = time.monotonic()
    with pytest.raises(SecretDiscoveryError, match="took over 3 s"):
        discover_secrets(playbook, _localhost(tmp_path), [str(script)], timeout=3)
    assert time.monotonic() - started < 10


def test_extra_vars_keep_their_types_through_the_file(tmp_path: Path) -> None:
    """Ansible's !unsafe constructor resolves scalars like any other: only template-like strings get it, so
    "2" stays the string "2" (deploy's version) and "" stays "" (diagnose's service)."""
    from ansible.parsing.dataloader import DataLoader

    data = {"version": "2", "service": "", "none": None, "count": 3, "flag": True, "list": ["1", "yes"]}
    (tmp_path / "private").mkdir(mode=0o700)
    write_extravars(tmp_path / "private", data)
    path = tmp_path / "private" / "env" / "extravars"
    loaded = DataLoader().load_from_file(str(path), trusted_as_template=True)
    assert loaded == data
    assert isinstance(loaded["version"], str) and isinstance(loaded["service"], str)

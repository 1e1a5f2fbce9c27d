"""aitbc.ops.decision in real runs: opsrunner and plain ansible-playbook (the memory callback) write the
same decision record, with secrets masked, and check mode writes none."""

from __future__ import annotations

import dataclasses
from pathlib import Path

import pytest

from opsrunner.memory import Decision, MemoryStore, utcnow
from opsrunner.redact import MASK

pytestmark = pytest.mark.integration

REPO = Path(__file__).resolve().parents[2]
INVENTORY = REPO / "inventory" / "local.yml"
PLANTED = "PLANTED-DECISION-TOKEN-555"

PLAYBOOK = f"""\
- name: Restore with a decision record
  hosts: localhost
  connection: local
  gather_facts: false
  vars:
    restore_api_token: {PLANTED}
  tasks:
    - name: Record why the wallet database is restored
      aitbc.ops.decision:
        decision: Restore the wallet database from last night's backup
        kind: restore
        context: |
          The wallet daemon reports a corrupt ledger after the disk filled up.
          The API token {{{{ restore_api_token }}}} was in the failing request.
        rationale: The backup is 6 hours old and verified.
        impact: Wallet operations stop for about 5 minutes.
        outcome: ok
        details:
          - "backup set: 2026-11-23T000000Z"
          - "token: {{{{ restore_api_token }}}}"
      register: recorded

    - name: The action returns the fields
      ansible.builtin.assert:
        that:
          - recorded is not changed
          - recorded.decision.kind == 'restore'
          - recorded.decision.details | length == 2
"""


def write_playbook(tmp_path: Path) -> Path:
    playbook = tmp_path / "restore-decision.yml"
    playbook.write_text(PLAYBOOK)
    return playbook


def fields(record: Decision) -> dict:
    """What both adapters must agree on: everything but the date and the run id."""
    data = dataclasses.asdict(record)
    del data["date"], data["run_id"]
    return data


def test_runner_and_callback_write_the_same_decision(tmp_path, opsrunner, ansible_playbook) -> None:
    playbook = write_playbook(tmp_path)
    started = utcnow()

    via_runner = opsrunner(
        "--memory-dir", str(tmp_path / "m1"), "run", str(playbook), "-i", str(INVENTORY), "--json"
    )
    assert via_runner.rc == 0, via_runner.stdout[-2000:] + via_runner.stderr[-2000:]
    result = via_runner.json()

    via_callback = ansible_playbook(
        "-i", str(INVENTORY), str(playbook), env={"OPSRUNNER_MEMORY_DIR": str(tmp_path / "m2")}
    )
    assert via_callback.rc == 0, via_callback.stdout[-2000:] + via_callback.stderr[-2000:]

    [runner_decision] = MemoryStore(tmp_path / "m1").decisions()
    [callback_decision] = MemoryStore(tmp_path / "m2").decisions()
    assert (
        fields(runner_decision)
        == fields(callback_decision)
        == {
            "decision": "Restore the wallet database from last night's backup",
            "kind": "restore",
            "context": "The wallet daemon reports a corrupt ledger after the disk filled up.\n"
            f"The API token {MASK} was in the failing request.",
            "rationale": "The backup is 6 hours old and verified.",
            "impact": "Wallet operations stop for about 5 minutes.",
            "hosts": ["localhost"],
            "outcome": "ok",
            "details": ["backup set: 2026-11-23T000000Z", f"token: {MASK}"],
        }
    )
    assert runner_decision.run_id == result["run_id"]
    for found in (runner_decision, callback_decision):
        assert started <= found.date <= utcnow()

    # Each run names its record in its daily entry, and no secret reached either store.
    for memory, decision in ((tmp_path / "m1", runner_decision), (tmp_path / "m2", callback_decision)):
        [entry] = MemoryStore(memory).read_daily(decision.date.date())
        [path] = (memory / "decisions").glob("*.md")
        assert path.name.endswith("-restore-restore-the-wallet-database-from-last-night-s.md")
        assert f"decision recorded: decisions/{path.name}" in entry.details
        assert entry.run_id == decision.run_id
        for item in memory.rglob("*"):
            if item.is_file():
                assert PLANTED not in item.read_text(errors="replace"), item
    [runner_path] = (tmp_path / "m1" / "decisions").glob("*.md")
    assert f"decision recorded: decisions/{runner_path.name}" in result["details"]


def test_check_mode_writes_no_decision(tmp_path, opsrunner, ansible_playbook) -> None:
    playbook = write_playbook(tmp_path)
    note = "decision not recorded (check mode): Restore the wallet database from last night's backup"

    via_runner = opsrunner(
        "--memory-dir", str(tmp_path / "m1"), "run", str(playbook), "-i", str(INVENTORY), "--check", "--json"
    )
    assert via_runner.rc == 0, via_runner.stdout[-2000:] + via_runner.stderr[-2000:]
    assert note in via_runner.json()["details"]

    via_callback = ansible_playbook(
        "-i", str(INVENTORY), str(playbook), "--check", env={"OPSRUNNER_MEMORY_DIR": str(tmp_path / "m2")}
    )
    assert via_callback.rc == 0, via_callback.stdout[-2000:] + via_callback.stderr[-2000:]

    for memory in (tmp_path / "m1", tmp_path / "m2"):
        assert MemoryStore(memory).decisions() == []
        assert not list((memory / "decisions").iterdir())
        [entry] = MemoryStore(memory).read_daily(utcnow().date())
        assert note in entry.details

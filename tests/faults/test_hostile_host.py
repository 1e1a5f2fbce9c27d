"""Fault: a hostile managed host. What a host returns is data: the controller-side tasks that build paths
from it (the off-host copy of a backup set) refuse names that are not plain, and nothing is written
outside the backup store.

The host's answer is planted as the registered result the role's off-host tasks read (backup_taken), so
real Ansible runs the real tasks on the controller with exactly what a compromised host could return.
"""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

import pytest
import yaml

pytestmark = pytest.mark.integration

GOOD_SET = "20261204T201500Z"


def offhost_play(store: Path, set_path: Path, set_name: str, files: list[str]) -> list[dict]:
    taken = {
        "backup": {
            "set": set_name,
            "path": str(set_path),
            "files": [{"file": name} for name in files],
            "plaintext_sensitive": [],
        }
    }
    return [
        {
            "name": "A host's answer, copied off the host",
            "hosts": "localhost",
            "gather_facts": False,
            "vars": {"backup_taken": taken, "backup_store": str(store)},
            "tasks": [
                {
                    "name": "Off-host copy",
                    "ansible.builtin.include_role": {"name": "aitbc.ops.backup", "tasks_from": "offhost.yml"},
                }
            ],
        }
    ]


def planted_set(tmp_path: Path) -> Path:
    """A set folder on the 'host' (this machine), holding a file a traversal would fetch."""
    set_path = tmp_path / "host" / GOOD_SET
    set_path.mkdir(parents=True)
    (set_path / "payload").write_text("ssh-ed25519 AAAA attacker\n")
    return set_path


@pytest.mark.parametrize(
    ("set_name", "files"),
    [
        ("../../escaped", ["payload"]),
        (GOOD_SET, ["../../escaped/payload"]),
        (GOOD_SET, [".."]),
        ("/tmp", ["payload"]),
    ],
    ids=["set-traversal", "file-traversal", "dotdot-file", "absolute-set"],
)
def test_a_host_returning_paths_writes_nothing_outside_the_store(
    tmp_path: Path, ansible_playbook, set_name: str, files: list[str]
) -> None:
    store = tmp_path / "store"
    store.mkdir()
    set_path = planted_set(tmp_path)
    playbook = tmp_path / "offhost.yml"
    playbook.write_text(yaml.safe_dump(offhost_play(store, set_path, set_name, files)))
    before = sorted(p for p in tmp_path.rglob("*"))

    done = ansible_playbook(str(playbook), "-i", "localhost,", "-c", "local")

    assert done.rc != 0, done.stdout
    assert "refusing to copy from localhost" in done.stdout, done.stdout
    assert "nothing was written to the backup store" in done.stdout
    after = sorted(
        p
        for p in tmp_path.rglob("*")
        if p != tmp_path / "ai-memory" and tmp_path / "ai-memory" not in p.parents
    )
    assert [p for p in after if p not in before] == []
    assert not (tmp_path / "escaped").exists()


def test_plain_names_are_copied(tmp_path: Path, ansible_playbook) -> None:
    """The control case: the same tasks copy a set whose names are plain (checksums re-checked)."""
    store = tmp_path / "store"
    store.mkdir()
    set_path = planted_set(tmp_path)
    digest = hashlib.sha256((set_path / "payload").read_bytes()).hexdigest()
    (set_path / "SHA256SUMS").write_text(f"{digest}  payload\n")
    manifest = {
        "format": 1,
        "set": GOOD_SET,
        "files": [{"file": "payload", "sha256": digest, "size": 26, "kind": "files"}],
    }
    (set_path / "manifest.json").write_text(json.dumps(manifest))
    playbook = tmp_path / "offhost.yml"
    playbook.write_text(yaml.safe_dump(offhost_play(store, set_path, GOOD_SET, ["payload"])))

    done = ansible_playbook(str(playbook), "-i", "localhost,", "-c", "local")

    assert done.rc == 0, done.stdout + done.stderr
    assert (store / "localhost" / GOOD_SET / "payload").exists()

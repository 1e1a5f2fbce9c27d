"""A broken catalogue is a configuration error: one line naming it on stderr, exit 2, and --json agrees.

The inventory is one file for this machine (local connection) beside the shipped group_vars; the broken
service comes in through the host's own catalogue overrides. Nothing is started: the heartbeat stops
at the bad entry before it probes anything.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import yaml
from stack import REPO, opsrunner


def broken_inventory(folder: Path, service: dict) -> Path:
    host = {
        "ansible_connection": "local",
        "aitbc_root": str(folder.parent / "root"),
        "aitbc_service_overrides": {"web": service},
        "aitbc_service_order": ["web"],
    }
    folder.mkdir(parents=True)
    (folder.parent / "root").mkdir()
    inventory = {"all": {"children": {"aitbc": {"hosts": {"localhost": host}}}}}
    (folder / "hosts.yml").write_text(yaml.safe_dump(inventory))
    (folder / "group_vars").symlink_to(REPO / "inventory" / "group_vars")
    return folder


CASES = {
    "unknown probe type": (
        {"probes": [{"type": "bogus", "name": "alive"}]},
        "unknown probe type 'bogus'",
    ),
    "undefined variable": (
        {"probes": [{"type": "tcp", "name": "port", "port": "{{ web_port_nowhere_defined }}"}]},
        "'web_port_nowhere_defined' is undefined",
    ),
}


@pytest.mark.parametrize("case", sorted(CASES))
def test_broken_catalogue_is_a_configuration_error(tmp_path: Path, case: str) -> None:
    service, names = CASES[case]
    inventory = broken_inventory(tmp_path / "inv", service)
    cwd = tmp_path / "cwd"
    cwd.mkdir()
    beat = ("--memory-dir", str(tmp_path / "memory"), "heartbeat", "-i", str(inventory))

    text = opsrunner(*beat, cwd=cwd)
    assert text.returncode == 2, text.stdout + text.stderr
    [line] = text.stderr.strip().splitlines()
    assert line.startswith("opsrunner: error: configuration error: ") and names in line, line
    assert "(no host reported)" not in text.stdout

    done = opsrunner(*beat, "--json", cwd=cwd)
    assert done.returncode == 2, done.stderr
    payload = json.loads(done.stdout)
    assert payload["healthy"] is False
    assert payload["exit_code"] == 2 and payload["outcome"] == "config-error"
    assert names in payload["error"]
    assert done.stderr.strip() == line

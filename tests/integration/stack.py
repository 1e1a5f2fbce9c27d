"""The opsrunner CLI and inventories for tests that run the demo stack on the SSH test hosts."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import yaml

BIN = Path(sys.executable).parent
REPO = Path(__file__).resolve().parents[2]


def opsrunner(
    *args: str, cwd: Path, timeout: float = 300, env: dict[str, str] | None = None
) -> subprocess.CompletedProcess[str]:
    full_env = {**os.environ, "ANSIBLE_CONFIG": str(REPO / "ansible.cfg"), **(env or {})}
    return subprocess.run(
        [str(BIN / "opsrunner"), *args],
        cwd=cwd,
        env=full_env,
        capture_output=True,
        text=True,
        timeout=timeout,
    )


def opsrunner_json(*args: str, cwd: Path, env: dict[str, str] | None = None) -> tuple[int, dict]:
    done = opsrunner(*args, "--json", cwd=cwd, env=env)
    assert done.stdout.strip(), done.stderr
    return done.returncode, json.loads(done.stdout)


def inventory_with(
    ssh_hosts, target: Path, group_vars: dict | None = None, host_vars: dict | None = None
) -> Path:
    """A copy of the test-host inventory with extra variables for every host and per host.

    Both go in as host variables: variables of the inventory file's groups rank below the repository's
    group_vars/all files, so they could not override the catalogue defaults."""
    data = yaml.safe_load(Path(ssh_hosts.inventory).read_text())
    group = data["all"]["children"]["aitbc"]
    for host, values in group["hosts"].items():
        values.update(group_vars or {})
        values.update((host_vars or {}).get(host, {}))
    target.mkdir(parents=True, exist_ok=True)
    (target / "hosts.yml").write_text(yaml.safe_dump(data))
    (target / "group_vars").symlink_to(REPO / "inventory" / "group_vars")
    return target


@contextmanager
def demo_stack(inventory: Path | str, work: Path) -> Iterator[None]:
    """The demo stack up on the inventory's hosts for the duration of the block."""
    up = opsrunner("demo", "up", "-i", str(inventory), cwd=work)
    assert up.returncode == 0, up.stdout + up.stderr
    try:
        yield
    finally:
        opsrunner("demo", "down", "-i", str(inventory), cwd=work)

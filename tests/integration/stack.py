"""The opsrunner CLI and inventories for tests that run the demo stack on the SSH test hosts."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

import yaml
from testhosts import HostPool

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


DEMO_SERVICES = ("redis", "coordinator-api", "blockchain-node", "blockchain-rpc", "wallet-daemon")


def _alive(pidfile: Path) -> bool:
    try:
        os.kill(int(pidfile.read_text().strip()), 0)
    except (OSError, ValueError):
        return False
    return True


@dataclass
class SharedStack:
    """The demo stack on the SSH test hosts, shared by the test modules that need it.

    Bringing the stack up and down costs about 26 s, so it stays up from the first module that asks for
    it (`up`) until a test that must not see it runs (`down`); conftest orders the stack's modules
    together. A module may leave a service killed or stopped: `up` restarts the stack then."""

    pool: HostPool
    work: Path
    is_up: bool = False

    def healthy(self) -> bool:
        return all(
            _alive(host.state_dir / "run" / f"{service}.pid")
            for host in self.pool.hosts
            for service in DEMO_SERVICES
        )

    def up(self) -> None:
        if self.is_up and self.healthy():
            return
        done = opsrunner("demo", "up", "-i", str(self.pool.inventory), cwd=self.work)
        assert done.returncode == 0, done.stdout + done.stderr
        self.is_up = True

    def down(self) -> None:
        if self.is_up:
            self.is_up = False
            opsrunner("demo", "down", "-i", str(self.pool.inventory), cwd=self.work)

"""The shipped aitbc-fleet example (inventory/examples/aitbc-fleet/) on three SSH test hosts: the AITBC
stand-in services placed by `groups:` (and the node host's own list), started by `opsrunner demo up`.
Only the connection variables and folders are changed.

Each service runs on its own host only; backup, heartbeat and deploy act only where a service is placed."""

from __future__ import annotations

import contextlib
import json
import os
import signal
import subprocess
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
from example_inventories import example_on_test_hosts
from stack import opsrunner
from testhosts import HostPool

from opsrunner.memory import MemoryStore

DEMO = Path(__file__).resolve().parents[2] / "demo" / "aitbc_demo.py"
# Where the example places each service (hosts.yml and group_vars/all.yml).
PLACED = {
    "aitbc-coord": ["coordinator-api"],
    "aitbc-node": ["redis", "blockchain-node", "blockchain-rpc"],
    "aitbc-wallet": ["wallet-daemon"],
}
ALL_SERVICES = ["redis", "coordinator-api", "blockchain-node", "blockchain-rpc", "wallet-daemon"]


@dataclass
class Fleet:
    pool: HostPool
    inventory: Path
    work: Path
    hosts: dict[str, str]  # example host -> test host

    @property
    def env(self) -> dict[str, str]:
        return {"OPSRUNNER_BACKUP_STORE": str(self.work / "store")}

    def run(self, *args: str) -> tuple[int, str]:
        done = opsrunner(*args, "-i", str(self.inventory), cwd=self.work, env=self.env)
        return done.returncode, done.stdout + done.stderr

    def run_json(self, *args: str) -> tuple[int, dict]:
        done = opsrunner(*args, "-i", str(self.inventory), "--json", cwd=self.work, env=self.env)
        assert done.stdout.strip(), done.stderr
        return done.returncode, json.loads(done.stdout)

    def root(self, host: str) -> Path:
        return self.pool.host(self.hosts[host]).state_dir / "root"

    def running(self, host: str) -> list[str]:
        """The example's services with a live pid in their pidfile on HOST."""
        alive = []
        for service in ALL_SERVICES:
            pidfile = self.root(host) / "run" / f"{service}.pid"
            with contextlib.suppress(OSError, ValueError):
                os.kill(int(pidfile.read_text()), 0)
                alive.append(service)
        return alive

    def stragglers(self) -> list[int]:
        """Processes of the stand-ins or Redis still running on the test hosts."""
        found = []
        for test_host in self.hosts.values():
            for pid in self.pool.pids(test_host):
                with contextlib.suppress(OSError):
                    cmdline = Path(f"/proc/{pid}/cmdline").read_bytes()
                    if b"aitbc_demo.py" in cmdline or cmdline.startswith(b"redis-server"):
                        found.append(pid)
        return found

    def get(self, host: str, url: str) -> dict:
        script = f"import urllib.request; print(urllib.request.urlopen({url!r}, timeout=5).read().decode())"
        done = self.pool.run(self.hosts[host], [sys.executable, "-c", script])
        assert done.returncode == 0, done.stderr
        return json.loads(done.stdout)


@pytest.fixture(scope="module")
def fleet(
    ssh_hosts: HostPool, tmp_path_factory: pytest.TempPathFactory, shared_stack_down: None
) -> Iterator[Fleet]:
    work = tmp_path_factory.mktemp("aitbc-fleet")
    hosts = example_on_test_hosts("aitbc-fleet", ssh_hosts, work / "inventory")
    fleet = Fleet(ssh_hosts, work / "inventory", work, hosts)
    try:
        rc, out = fleet.run("demo", "up")
        assert rc == 0, out
        yield fleet
    finally:
        fleet.run("demo", "down")
        for pid in fleet.stragglers():
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGKILL)


def test_each_service_runs_on_its_own_host_only(fleet: Fleet) -> None:
    assert {host: fleet.running(host) for host in PLACED} == PLACED
    rc, out = fleet.run("service", "status", "coordinator-api")
    assert rc == 0, out
    rows = [line.split() for line in out.splitlines() if "coordinator-api" in line]
    assert [row[0] for row in rows] == ["aitbc-coord"], out
    # The wallet reaches the coordinator over the network (group_vars: coordinator_url).
    coordinator = fleet.pool.host(fleet.hosts["aitbc-coord"]).address
    wallet_env = (fleet.root("aitbc-wallet") / "log" / "wallet-daemon.log").read_text()
    assert "wallet" in wallet_env
    health = fleet.get("aitbc-wallet", f"http://{coordinator}:18011/health")
    assert health["status"] == "ok", health


def test_backup_only_where_databases_are_placed(fleet: Fleet) -> None:
    rc, result = fleet.run_json("backup")
    assert rc == 0, result
    sets = {
        host: sorted(p.name for p in (fleet.work / "store" / host).rglob("*.db*") if p.is_file())
        for host in PLACED
    }
    assert {host: [n for n in names if n.endswith(".db")] for host, names in sets.items()} == {
        "aitbc-coord": ["coordinator-api.coordinator.db"],
        "aitbc-node": ["blockchain-node.chain.db"],
        "aitbc-wallet": ["wallet-daemon.wallet_ledger.db"],
    }
    # One service's data: only its host backs up; the others have nothing to back up and say so.
    rc, out = fleet.run("backup", "--service", "coordinator-api")
    assert rc == 0, out
    assert "nothing to back up on aitbc-node, aitbc-wallet:" in out, out
    assert "aitbc-coord: backup set" in out and "aitbc-node: backup" not in out, out


def test_heartbeat_is_healthy(fleet: Fleet) -> None:
    rc, result = fleet.run_json("heartbeat")
    assert rc == 0, result
    assert result["healthy"] is True, result


@pytest.fixture(scope="module")
def artifact(tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("artifact") / "coordinator-2.tar.gz"
    argv = [sys.executable, str(DEMO), "release", "--version", "2", "--out", str(out)]
    subprocess.run(argv, check=True, capture_output=True)
    return out


def test_deploy_acts_only_on_the_coordinator_host(fleet: Fleet, artifact: Path) -> None:
    rc, result = fleet.run_json("deploy", "2", "--from", str(artifact), "--service", "coordinator-api")
    assert rc == 0, result
    rc, releases = fleet.run_json("releases")
    assert rc == 0, releases
    shown = {row["host"]: row["current"] for row in releases["releases"]}
    assert shown == {"aitbc-coord": "2"}, releases
    assert fleet.get("aitbc-coord", "http://127.0.0.1:18011/health")["version"] == "2"
    for host in ("aitbc-node", "aitbc-wallet"):
        assert not (fleet.root(host) / "apps").exists(), host
    decisions = MemoryStore(fleet.work / "ai-memory").decisions()
    assert [(d.kind, d.outcome, d.hosts) for d in decisions if d.kind == "deploy"] == [
        ("deploy", "deployed", ["aitbc-coord"])
    ]

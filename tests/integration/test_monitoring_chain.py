"""Our alert rules on real parts: Debian's Prometheus scrapes a demo blockchain RPC (the node writing
the chain beside it) with monitoring/prometheus-rules.yml, and Debian's Alertmanager delivers to a small
HTTP receiver with a bearer token from a credentials file. A stalled chain, a killed RPC and its return
each arrive as the alert a human or `opsrunner intake serve` acts on, labelled with host and service."""

from __future__ import annotations

import os
import secrets
import signal
import subprocess
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
from ports import free_port
from stack import REPO

from monitoring import (
    RULES,
    Target,
    WebhookReceiver,
    fast_rules,
    missing_binaries,
    start_alertmanager,
    start_prometheus,
    wait_until,
)

pytestmark = pytest.mark.skipif(missing_binaries() is not None, reason=missing_binaries() or "")

DEMO = REPO / "demo" / "aitbc_demo.py"
PYTHON = "/usr/bin/python3" if Path("/usr/bin/python3").exists() else sys.executable
HOST, SERVICE = "node1", "blockchain-rpc"


@dataclass
class Demo:
    """The demo node and RPC on one chain.db, started and stopped by PID."""

    db: Path
    rpc_port: int
    logs: Path
    procs: dict[str, subprocess.Popen[bytes]]

    def start(self, name: str, *args: str) -> None:
        with (self.logs / f"{name}.log").open("ab") as out:
            self.procs[name] = subprocess.Popen(
                [PYTHON, "-I", str(DEMO), name, *args], stdout=out, stderr=subprocess.STDOUT
            )
        wait_until(lambda: "started" in self.log(name) or self.procs[name].poll() is not None, f"{name}", 10)
        assert self.procs[name].poll() is None, self.log(name)

    def start_rpc(self) -> None:
        self.start("rpc", "--port", str(self.rpc_port), "--db", str(self.db), "--chain-id", "ait-devnet")

    def log(self, name: str) -> str:
        path = self.logs / f"{name}.log"
        return path.read_text(errors="replace") if path.exists() else ""

    def kill(self, name: str) -> None:
        proc = self.procs[name]
        if proc.poll() is None:
            os.kill(proc.pid, signal.SIGKILL)
            proc.wait(timeout=10)

    @property
    def stall_flag(self) -> Path:
        return self.db.parent / "stall"


@pytest.fixture
def demo(tmp_path: Path) -> Iterator[Demo]:
    chain = tmp_path / "data" / "chain"
    chain.mkdir(parents=True)
    logs = tmp_path / "log"
    logs.mkdir()
    running = Demo(chain / "chain.db", free_port(), logs, {})
    try:
        running.start("node", "--db", str(running.db), "--chain-id", "ait-devnet", "--interval", "0.5")
        running.start_rpc()
        yield running
    finally:
        for name in list(running.procs):
            running.kill(name)


def test_stalled_chain_down_rpc_and_its_return_reach_the_receiver(demo: Demo, tmp_path: Path) -> None:
    token = secrets.token_hex(16)
    credentials = tmp_path / "intake.token"
    credentials.write_text(token + "\n")
    credentials.chmod(0o600)
    rules = fast_rules(tmp_path / "rules.yml")

    with (
        WebhookReceiver() as receiver,
        start_alertmanager(tmp_path / "am", receiver.url, credentials) as alertmanager,
        start_prometheus(
            tmp_path / "prom",
            [Target(f"127.0.0.1:{demo.rpc_port}", HOST, SERVICE)],
            rules,
            alertmanager.address,
        ) as prometheus,
    ):
        prometheus.wait_for_targets(1, timeout=30)
        # The chain grows: give the window (5 s) time to fill, and nothing fires.
        wait_until(lambda: prometheus.query("delta(aitbc_chain_height[5s]) > 0"), "a growing chain", 20)
        assert receiver.alerts() == [] and prometheus.firing() == []

        # Stall: the node stops adding blocks, its RPC keeps answering.
        demo.stall_flag.touch()
        delivery, stalled = receiver.wait_for_alert(
            "the stalled-chain alert", 40, alertname="AitbcChainStalled", status="firing"
        )
        assert delivery.authorization == f"Bearer {token}"
        labels = stalled["labels"]
        assert (labels["host"], labels["service"], labels["check"]) == (HOST, SERVICE, "chain stalled")
        assert (labels["severity"], labels["category"]) == ("critical", "ops")
        assert stalled["annotations"]["summary"].startswith(f"chain stalled on {HOST}")
        assert stalled["fingerprint"]
        demo.stall_flag.unlink()

        # The RPC dies: the scrape fails, the instance is down.
        demo.kill("rpc")
        _delivery, down = receiver.wait_for_alert(
            "the instance-down alert", 30, alertname="AitbcInstanceDown", status="firing"
        )
        assert (down["labels"]["host"], down["labels"]["service"]) == (HOST, SERVICE)
        assert down["labels"]["instance"] == f"127.0.0.1:{demo.rpc_port}"
        assert down["annotations"]["summary"] == (
            f"{SERVICE} on {HOST} is down (its scrape of 127.0.0.1:{demo.rpc_port} fails)"
        )

        # It comes back: the same alert (same fingerprint) arrives resolved.
        demo.start_rpc()
        _delivery, back = receiver.wait_for_alert(
            "the instance-down alert resolved", 30, alertname="AitbcInstanceDown", status="resolved"
        )
        assert back["fingerprint"] == down["fingerprint"] and back["endsAt"] > back["startsAt"]


def test_rules_pass_promtool_at_their_shipped_windows() -> None:
    """`promtool check rules`, and the unit tests beside the rules (15 s scrape, 1 min `for:`, [5m])."""
    for args in (["check", "rules", str(RULES)], ["test", "rules", str(RULES.with_suffix(".test.yml"))]):
        done = subprocess.run(["promtool", *args], capture_output=True, text=True, timeout=60, check=False)
        assert done.returncode == 0, done.stdout + done.stderr

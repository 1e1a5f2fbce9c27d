"""The whole way in, on real parts: Debian's Prometheus scrapes the demo RPC with our rules, Debian's
Alertmanager delivers to `opsrunner intake serve`, and the intake turns each alert into incident work.

kill -9 of the RPC -> alert -> incident (paged) -> scoped assessment -> restart by the heartbeat's rules ->
resolved alert -> our probes agree -> incident resolved (paged), in that order in the daily memory. Then
the chain stalls -> its incident opens.
"""

from __future__ import annotations

import json
import os
import secrets
import signal
import subprocess
import sys
import time
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import pytest
import yaml
from ports import free_port
from stack import REPO

from monitoring import (
    Target,
    WebhookReceiver,
    fast_rules,
    missing_binaries,
    start_alertmanager,
    start_prometheus,
    wait_until,
)
from opsrunner.incidents import Incident, IncidentStore
from opsrunner.memory import MemoryStore, utcnow

pytestmark = [
    pytest.mark.integration,
    pytest.mark.skipif(missing_binaries() is not None, reason=missing_binaries() or ""),
]

BIN = Path(sys.executable).parent
DEMO = REPO / "demo" / "aitbc_demo.py"
HOST = "node1"


def opsrunner(memory: Path, *args: str, timeout: float = 120) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [str(BIN / "opsrunner"), "--memory-dir", str(memory), *args],
        capture_output=True,
        text=True,
        timeout=timeout,
        check=False,
        env={**os.environ, "ANSIBLE_CONFIG": str(REPO / "ansible.cfg")},
    )


def write_inventory(root: Path, rpc_port: int, pages_url: str) -> Path:
    """node1 (this machine) runs the demo node and its RPC as process services."""
    python, db = sys.executable, root / "data" / "chain" / "chain.db"
    db.parent.mkdir(parents=True)
    (root / "run").mkdir()
    (root / "log").mkdir()

    def process(name: str, command: str, **more: object) -> dict[str, object]:
        return {
            "backend": "process",
            "command": command,
            "pidfile": str(root / "run" / f"{name}.pid"),
            "log_file": str(root / "log" / f"{name}.log"),
            **more,
        }

    services = {
        "blockchain-node": process(
            "blockchain-node", f"{python} {DEMO} node --db {db} --chain-id ait-devnet --interval 0.5"
        ),
        "blockchain-rpc": process(
            "blockchain-rpc",
            f"{python} {DEMO} rpc --port {rpc_port} --db {db} --chain-id ait-devnet",
            port=rpc_port,
            url=f"http://127.0.0.1:{rpc_port}",
            probes=[{"type": "http", "path": "/health"}],
        ),
    }
    inventory = root / "hosts.yml"
    settings = {
        "aitbc_services": services,
        "aitbc_alert_urls": [pages_url],
        "heartbeat_security_listeners": False,  # this machine's own listeners are not the test's
    }
    host = {"ansible_connection": "local", "ansible_python_interpreter": python, "aitbc_root": str(root)}
    inventory.write_text(yaml.safe_dump({"all": {"vars": settings, "hosts": {HOST: host}}}))
    return inventory


class IntakeProcess:
    def __init__(self, memory: Path, inventory: Path, token_file: Path, *more: str) -> None:
        self.port = free_port()
        self.log = memory.parent / "intake.log"
        args = [
            "intake",
            "serve",
            "--listen",
            f"127.0.0.1:{self.port}",
            "--token-file",
            str(token_file),
            *more,
        ]
        with self.log.open("wb") as out:
            self.proc = subprocess.Popen(
                [str(BIN / "opsrunner"), "--memory-dir", str(memory), *args, "-i", str(inventory)],
                stdout=out,
                stderr=subprocess.STDOUT,
                env={**os.environ, "ANSIBLE_CONFIG": str(REPO / "ansible.cfg")},
            )
        wait_until(self.healthy, "the intake's /health", 30)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}/alerts"

    def healthy(self) -> bool:
        assert self.proc.poll() is None, self.log.read_text(errors="replace")
        try:
            with urllib.request.urlopen(f"http://127.0.0.1:{self.port}/health", timeout=2) as answer:
                return answer.status == 200
        except OSError:
            return False

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(timeout=30)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()


@pytest.fixture
def site(tmp_path: Path) -> Iterator[dict[str, object]]:
    memory, root = tmp_path / "ai-memory", tmp_path / "node1"
    rpc_port = free_port()
    with WebhookReceiver() as pages:
        inventory = write_inventory(root, rpc_port, pages.url.replace("http://", "json://"))
        for service in ("blockchain-node", "blockchain-rpc"):
            started = opsrunner(memory, "service", "start", service, "-i", str(inventory))
            assert started.returncode == 0, started.stdout + started.stderr
        try:
            yield {
                "memory": memory,
                "root": root,
                "inventory": inventory,
                "rpc_port": rpc_port,
                "pages": pages,
            }
        finally:
            for service in ("blockchain-rpc", "blockchain-node"):
                opsrunner(memory, "service", "stop", service, "-i", str(inventory))


def incident_where(store: IncidentStore, **fields: object) -> Incident | None:
    return next((i for i in store.all() if all(getattr(i, k) == v for k, v in fields.items())), None)


def test_killed_rpc_alert_to_resolution_then_a_stalled_chain(site: dict[str, object], tmp_path: Path) -> None:
    memory, root, inventory = Path(site["memory"]), Path(site["root"]), Path(site["inventory"])  # type: ignore[arg-type]
    pages: WebhookReceiver = site["pages"]  # type: ignore[assignment]
    token = tmp_path / "intake.token"
    token.write_text(secrets.token_hex(16) + "\n")
    token.chmod(0o600)
    incidents = IncidentStore(MemoryStore(memory))
    intake = IntakeProcess(memory, inventory, token)
    try:
        with (
            start_alertmanager(tmp_path / "am", intake.url, token) as alertmanager,
            start_prometheus(
                tmp_path / "prom",
                [Target(f"127.0.0.1:{site['rpc_port']}", HOST, "blockchain-rpc")],
                fast_rules(tmp_path / "rules.yml"),
                alertmanager.address,
            ) as prometheus,
        ):
            prometheus.wait_for_targets(1, timeout=30)
            os.kill(int((root / "run" / "blockchain-rpc.pid").read_text().split()[0]), signal.SIGKILL)
            killed = time.monotonic()

            opened = wait_until(
                lambda: incident_where(incidents, source="alertmanager", check="AitbcInstanceDown"),
                "the instance-down incident",
                60,
            )
            resolved = wait_until(
                lambda: (i := incidents.get(opened.id)) and not i.active and i,
                f"{opened.id} resolved",
                120,
                interval=0.5,
            )
            healthy_after = time.monotonic() - killed
            timeline = [t.text for t in resolved.timeline]
            expected = [
                "opened by",
                "acknowledged by ops",
                "restarted blockchain-rpc: healthy",
                "reports resolved",
            ]
            positions = [next(n for n, text in enumerate(timeline) if word in text) for word in expected]
            assert positions == sorted(positions), timeline
            assert "our probes pass" in resolved.resolution and resolved.restarts >= 1, timeline

            titles = [str(d.payload.get("title", "")) for d in pages.deliveries]
            assert titles[0].startswith("[aitbc-ops] opened:") and any("resolved" in t for t in titles), (
                titles
            )

            # The daily memory tells it in order: the alert, the assessment that restarted, the resolved
            # alert, and the assessment that found our probes passing (its run resolves the incident just
            # before it writes its own entry: wait for that entry).
            def story() -> list[str]:
                entries = MemoryStore(memory).read_daily(utcnow().date())
                return [f"{e.event}:{e.outcome}" for e in entries if opened.id in e.incidents]

            wait_until(lambda: story()[-1].startswith("heartbeat"), "the last assessment's entry", 30)
            kinds = story()
            assert kinds[0] == "intake:opened", kinds
            assert any(k.startswith("heartbeat") for k in kinds[1:]), kinds
            last_intake = max(n for n, k in enumerate(kinds) if k == "intake:reported-resolved")
            assert any(k.startswith("heartbeat") for k in kinds[last_intake + 1 :]), kinds
            print(json.dumps({"healthy_after_s": round(healthy_after, 1)}))

            # The chain stalls (the RPC stays up): its incident opens.
            (root / "data" / "chain" / "stall").touch()
            stalled = wait_until(
                lambda: incident_where(incidents, source="alertmanager", check="chain stalled"),
                "the stalled-chain incident",
                60,
            )
            assert stalled.active and stalled.service == "blockchain-rpc"
    finally:
        intake.stop()


def test_a_silent_heartbeat_is_paged_by_the_intake_and_resolved_when_it_returns(
    site: dict[str, object], tmp_path: Path
) -> None:
    """The dead-man's switch, inward: with no heartbeat finished for two intervals the intake opens the
    incident and pages; the next heartbeat resolves it (and pages that)."""
    memory, inventory = Path(site["memory"]), Path(site["inventory"])  # type: ignore[arg-type]
    pages: WebhookReceiver = site["pages"]  # type: ignore[assignment]
    token = tmp_path / "intake.token"
    token.write_text(secrets.token_hex(16) + "\n")
    token.chmod(0o600)
    intake = IntakeProcess(memory, inventory, token, "--heartbeat-interval", "1")
    incidents = IncidentStore(MemoryStore(memory))
    try:
        silent = wait_until(
            lambda: incident_where(incidents, source="intake", service="heartbeat"),
            "the dead-man incident",
            30,
        )
        wait_until(
            lambda: any("no heartbeat" in str(d.payload.get("title", "")) for d in pages.deliveries),
            "the dead-man page",
            20,
        )
        beat = opsrunner(memory, "heartbeat", "-i", str(inventory))
        assert beat.returncode == 0, beat.stdout + beat.stderr
        wait_until(lambda: not incidents.get(silent.id).active, f"{silent.id} resolved", 30)
    finally:
        intake.stop()

"""`opsrunner intake serve` with its real incident work (the Assessor) under a burst, on a one-file local
inventory: node1 (this machine, ansible_host 127.0.0.1) runs two process services of our own, `web` (up)
and `files` (down).

200 Alertmanager alerts from 16 concurrent senders carry 20 fingerprints (alert n: fingerprint n % 20,
startsAt by n // 20, so each fingerprint is re-sent ten times): two name node1's services (`files` by its
address, as Prometheus's `instance` does), eighteen name hosts the inventory does not have. They make 20
incidents, each accepted alert is handled once, and runs stay bounded: one scoped heartbeat per inventory
service, one at a time; `files` is restarted on the incident a heartbeat of node1 keys. The hosts outside
the inventory start no run: their incidents wait for a person (needs-guidance).
"""

from __future__ import annotations

import datetime as dt
import http.client
import json
import os
import re
import secrets
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
import yaml
from ports import free_port
from stack import REPO

from monitoring import WebhookReceiver, wait_until, webhook_body
from opsrunner.incidents import Incident, IncidentStore
from opsrunner.memory import DailyEntry, MemoryStore, utcnow

pytestmark = pytest.mark.integration

BIN = Path(sys.executable).parent
HOST, ADDRESS = "node1", "127.0.0.1"
ALERTS, FINGERPRINTS, SENDERS = 200, 20, 16
OUTSIDE = [f"edge{k}.example" for k in range(2, FINGERPRINTS)]  # fingerprints 2..19: hosts we do not have


@dataclass
class Site:
    root: Path
    memory: Path
    inventory: Path
    ports: dict[str, int]
    pages: WebhookReceiver

    def pid(self, service: str) -> int | None:
        try:
            pid = int((self.root / "run" / f"{service}.pid").read_text().split()[0])
            os.kill(pid, 0)
            return pid
        except (OSError, ValueError, IndexError):
            return None

    def opsrunner(self, *args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [str(BIN / "opsrunner"), "--memory-dir", str(self.memory), *args, "-i", str(self.inventory)],
            cwd=self.root,  # its artifacts apart from the intake's runs
            env={**os.environ, "ANSIBLE_CONFIG": str(REPO / "ansible.cfg")},
            capture_output=True,
            text=True,
            timeout=120,
            check=False,
        )


def write_inventory(root: Path, ports: dict[str, int], pages_url: str) -> Path:
    """node1 runs `web` and `files` (python -m http.server each, on its own loopback port)."""
    for folder in ("run", "log", "www"):
        (root / folder).mkdir(parents=True, exist_ok=True)

    def served(name: str) -> dict[str, Any]:
        port = ports[name]
        return {
            "backend": "process",
            "command": f"{sys.executable} -m http.server {port} --bind 127.0.0.1 --directory {root / 'www'}",
            "port": port,
            "url": f"http://127.0.0.1:{port}",
            "pidfile": str(root / "run" / f"{name}.pid"),
            "log_file": str(root / "log" / f"{name}.log"),
            "probes": [{"type": "http", "path": "/"}],
        }

    settings = {
        "aitbc_services": {name: served(name) for name in ports},
        "aitbc_alert_urls": [pages_url],
        "heartbeat_security_listeners": False,  # this machine's other listeners are not the test's
    }
    host = {
        "ansible_connection": "local",
        "ansible_python_interpreter": sys.executable,
        "ansible_host": ADDRESS,
        "aitbc_root": str(root),
    }
    inventory = root.parent / "hosts.yml"
    inventory.write_text(yaml.safe_dump({"all": {"vars": settings, "hosts": {HOST: host}}}))
    return inventory


@pytest.fixture
def site(tmp_path: Path) -> Iterator[Site]:
    with WebhookReceiver() as pages:
        ports = {"web": free_port(), "files": free_port()}
        root = tmp_path / HOST
        inventory = write_inventory(root, ports, pages.url.replace("http://", "json://"))
        found = Site(root, tmp_path / "ai-memory", inventory, ports, pages)
        try:
            yield found
        finally:
            for service in ports:  # whatever started them (the CLI, an assessment), stopped by pid
                pid = found.pid(service)
                if pid is not None:
                    os.kill(pid, signal.SIGKILL)


class IntakeProcess:
    """`opsrunner intake serve -i INVENTORY` on a free loopback port, with a bearer token."""

    def __init__(self, site: Site) -> None:
        self.port = free_port()
        self.token = secrets.token_hex(16)
        token_file = site.root.parent / "intake.token"
        token_file.write_text(self.token + "\n")
        token_file.chmod(0o600)
        self.log = site.root.parent / "intake.log"
        listen = ["--listen", f"127.0.0.1:{self.port}", "--token-file", str(token_file)]
        with self.log.open("wb") as out:
            self.proc = subprocess.Popen(
                [str(BIN / "opsrunner"), "--memory-dir", str(site.memory), "intake", "serve", *listen]
                + ["-i", str(site.inventory)],
                cwd=site.root.parent,  # its runs' artifacts: ./.work/opsrunner/artifacts
                stdout=out,
                stderr=subprocess.STDOUT,
                env={**os.environ, "ANSIBLE_CONFIG": str(REPO / "ansible.cfg")},
            )
        wait_until(lambda: self.health() is not None, "the intake's /health", 30)

    def request(self, method: str, path: str, body: bytes = b"") -> tuple[int, Any]:
        conn = http.client.HTTPConnection("127.0.0.1", self.port, timeout=30)
        try:
            headers = {"authorization": f"Bearer {self.token}", "content-type": "application/json"}
            conn.request(method, path, body, headers)
            response = conn.getresponse()
            return response.status, json.loads(response.read())
        finally:
            conn.close()

    def health(self) -> dict[str, Any] | None:
        assert self.proc.poll() is None, self.log.read_text(errors="replace")
        try:
            status, body = self.request("GET", "/health")
        except OSError:
            return None
        return body if status == 200 else None

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(timeout=60)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()


def alert_labels(k: int, site: Site) -> dict[str, str]:
    """Fingerprint k's labels: 0 names node1 by name, 1 by its address; the rest hosts outside it."""
    if k == 0:
        return {"instance": f"{HOST}:{site.ports['web']}", "job": "web"}
    if k == 1:
        return {"instance": f"{ADDRESS}:{site.ports['files']}", "job": "files"}
    return {"instance": f"{OUTSIDE[k - 2]}:9100", "job": "web"}


def alert_body(n: int, site: Site, **labels: str) -> bytes:
    k = n % FINGERPRINTS
    alert = {
        "status": "firing",
        "labels": {"alertname": "InstanceDown", "severity": "warning", **alert_labels(k, site), **labels},
        "annotations": {"summary": f"down (alert {n})"},
        "startsAt": f"2026-12-04T20:{n // FINGERPRINTS:02d}:00Z",
        "endsAt": "0001-01-01T00:00:00Z",
        "generatorURL": "http://127.0.0.1:9090/graph",
        "fingerprint": f"burst{k:02d}",
    }
    return webhook_body(alert)


@dataclass
class Run:
    """A run of ansible-playbook, from its artifacts: when its first and last events were made, and the
    hosts and services its probes covered."""

    run_id: str
    started: dt.datetime
    finished: dt.datetime
    probed: set[tuple[str, str]]


def runs_of(site: Site) -> list[Run]:
    found = []
    artifacts = site.root.parent / ".work" / "opsrunner" / "artifacts"
    for folder in sorted(artifacts.iterdir()) if artifacts.is_dir() else []:
        events = [json.loads(p.read_text()) for p in (folder / "job_events").glob("*.json")]
        times = sorted(dt.datetime.fromisoformat(e["created"]) for e in events)
        probed = {
            (e["event_data"]["host"], str(result.get("service")))
            for e in events
            if e["event"] == "runner_on_ok" and e["event_data"].get("task_action", "").endswith("health")
            for result in e["event_data"]["res"].get("results", [])
        }
        found.append(Run(folder.name, times[0], times[-1], probed))
    return sorted(found, key=lambda run: run.started)


def daily(site: Site, event: str) -> list[DailyEntry]:
    return [e for e in MemoryStore(site.memory).read_daily(utcnow().date()) if e.event == event]


def settled(intake: IntakeProcess, site: Site, count: int) -> dict[str, Any] | None:
    """/health once `count` reports are handled and nothing waits in the queue or the spool, else None."""
    health = intake.health() or {}
    spooled = health.get("spooled_reports")
    if len(daily(site, "intake")) >= count and health.get("queue_depth") == 0 and spooled == 0:
        return health
    return None


def the(incidents: list[Incident], host: str, service: str) -> Incident:
    (found,) = [i for i in incidents if (i.host, i.service) == (host, service)]
    return found


def test_a_burst_of_200_alerts_makes_20_incidents_with_bounded_runs(site: Site) -> None:
    started = site.opsrunner("service", "start", "web")
    assert started.returncode == 0, started.stdout + started.stderr
    assert site.pid("files") is None
    intake = IntakeProcess(site)
    try:
        began = time.monotonic()

        def send(n: int) -> tuple[int, int, Any]:
            return (n, *intake.request("POST", "/alerts", alert_body(n, site)))

        with ThreadPoolExecutor(SENDERS) as senders:
            answers = list(senders.map(send, range(ALERTS)))
        assert all(a[1:] == (202, {"accepted": 1, "duplicates": 0}) for a in answers), answers
        # Alertmanager's retries of alerts already accepted are duplicates: nothing more to handle.
        for n in range(FINGERPRINTS):
            assert intake.request("POST", "/alerts", alert_body(n, site)) == (
                202,
                {"accepted": 0, "duplicates": 1},
            )
        health = wait_until(lambda: settled(intake, site, ALERTS), "200 reports handled", 90, interval=0.5)
        took = time.monotonic() - began
        assert health["status"] == "ok", health
    finally:
        intake.stop()

    # Every accepted alert handled exactly once: one intake entry each, nothing failed, nothing left in the
    # spool (settled: /health counted none there before the stop).
    entries = daily(site, "intake")
    numbers = sorted(int(m.group(1)) for e in entries if (m := re.search(r"\(alert (\d+)\)", e.title)))
    assert numbers == list(range(ALERTS)) and len(entries) == ALERTS, [e.title for e in entries]
    assert not (site.memory / "intake" / "failed.jsonl").exists()

    # 20 fingerprints, 20 (host, service) pairs: 20 incidents, all open.
    incidents = list(IncidentStore(MemoryStore(site.memory)).active().values())
    pairs = {(i.host, i.service) for i in incidents}
    assert len(incidents) == FINGERPRINTS and pairs == {(HOST, "web"), (HOST, "files")} | {
        (host, "web") for host in OUTSIDE
    }, sorted(pairs)
    assert all(len(i.fingerprints) == 1 for i in incidents)

    # Bounded runs: one scoped heartbeat per inventory service, on node1, one at a time; none elsewhere.
    runs = runs_of(site)
    probed = sorted(sorted(run.probed - {(HOST, "host")}) for run in runs)
    assert probed == [[(HOST, "files")], [(HOST, "web")]], runs
    assert all(b.started >= a.finished for a, b in zip(runs, runs[1:], strict=False)), runs
    beats = daily(site, "heartbeat")
    assert sorted(b.run_id for b in beats) == sorted(r.run_id for r in runs)
    assert all(b.hosts == [HOST] for b in beats), [(b.hosts, b.outcome) for b in beats]

    # `files`, named by its address, is on node1's incident: its assessment (a heartbeat of node1) found
    # its checks failing on that same incident, restarted it, and opened no other.
    files = the(incidents, HOST, "files")
    timeline = [t.text for t in files.timeline]
    assert any(t.startswith("also failing: files") for t in timeline), timeline
    assert any("restarted files: healthy" in t for t in timeline), timeline
    assert site.pid("files") is not None
    mapped = [e for e in entries if files.id in e.incidents]
    assert all(f"host named {ADDRESS}" in e.actions for e in mapped), [e.actions for e in mapped]
    web = the(incidents, HOST, "web")
    assert web.status == "open" and web.restarts == 0 and site.pid("web") is not None

    # The hosts we do not have: each put to a person when it opened, asked once, paged once.
    outside = [i for i in incidents if i.host in OUTSIDE]
    for incident in outside:
        assert incident.status == "needs-guidance", (incident.id, incident.status)
        assert incident.question.startswith(f"{incident.host} is not a host of the inventory"), incident
        assert sum("needs guidance" in t.text for t in incident.timeline) == 1, incident.timeline
    asked = [e for e in entries if e.outcome == "needs-guidance"]
    assert sorted(e.hosts[0] for e in asked) == sorted(OUTSIDE)
    titles = [str(d.payload.get("title", "")) for d in site.pages.deliveries]
    guidance = [t for t in titles if t.startswith("[aitbc-ops] needs-guidance")]
    assert len(guidance) == len(OUTSIDE), titles
    print(json.dumps({"handled_s": round(took, 1), "runs": len(runs)}))


def test_an_alert_of_a_host_outside_the_inventory_is_put_to_a_person_without_a_run(site: Site) -> None:
    intake = IntakeProcess(site)
    try:
        ghost = {"instance": "ghost.example:9100", "job": "files", "severity": "critical"}
        assert intake.request("POST", "/alerts", alert_body(0, site, **ghost)) == (
            202,
            {"accepted": 1, "duplicates": 0},
        )
        # Its re-send (a later startsAt) joins the incident and asks nothing again.
        assert intake.request("POST", "/alerts", alert_body(FINGERPRINTS, site, **ghost))[0] == 202
        wait_until(lambda: settled(intake, site, 2), "both reports handled", 30)
    finally:
        intake.stop()
    (incident,) = IncidentStore(MemoryStore(site.memory)).active().values()
    assert (incident.host, incident.service, incident.status) == ("ghost.example", "files", "needs-guidance")
    assert incident.question.startswith("ghost.example is not a host of the inventory"), incident.question
    assert [e.outcome for e in daily(site, "intake")] == ["needs-guidance", "repeated"]
    assert runs_of(site) == [] and daily(site, "heartbeat") == []
    titles = [str(d.payload.get("title", "")) for d in site.pages.deliveries]
    assert titles == ["[aitbc-ops] opened: down (alert 0)", "[aitbc-ops] needs-guidance: down (alert 0)"]
    assert site.pid("files") is None  # never started

"""The heartbeat on the demo stack running on 3 real SSH test hosts.

Kill a service, stop a host's sshd, break a service for good, make a check flap: each time the
heartbeat must open (or not open) incidents, restart within bounds, escalate, alert and resolve as
an operator would expect, and the daily memory must tell it in order.
"""

from __future__ import annotations

import json
import os
import signal
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest
from stack import inventory_with, opsrunner

from opsrunner.incidents import IncidentStore
from opsrunner.memory import MEMORY_DIR_ENV, MemoryStore, utcnow


def heartbeat(inventory: Path, cwd: Path, *extra: str) -> tuple[int, dict]:
    done = opsrunner("heartbeat", "-i", str(inventory), "--json", *extra, cwd=cwd)
    assert done.stdout.strip(), done.stderr
    return done.returncode, json.loads(done.stdout)


def kill_service(host, service: str) -> None:
    pid = int((host.state_dir / "run" / f"{service}.pid").read_text())
    os.kill(pid, signal.SIGKILL)


def test_killed_coordinator_is_detected_restarted_and_resolved(stack, tmp_path) -> None:
    t2 = stack.host("t2")
    kill_service(t2, "coordinator-api")

    first_rc, first = heartbeat(stack.inventory, tmp_path)
    assert first_rc == 1 and first["outcome"] == "unhealthy"
    failing = [c for c in first["checks"] if c["status"] == "FAIL"]
    assert [(c["host"], c["service"]) for c in failing] == [("t2", "coordinator-api")]
    assert first["incidents"] == []  # below the failure threshold (2)

    second_rc, second = heartbeat(stack.inventory, tmp_path)
    assert second_rc == 0, second
    [incident] = IncidentStore(MemoryStore(tmp_path / "ai-memory")).all()
    assert (incident.host, incident.service, incident.status) == ("t2", "coordinator-api", "resolved")
    assert incident.restarts == 1
    assert "### coordinator-api down" in incident.debugging_notes
    story = [e.details for e in MemoryStore(tmp_path / "ai-memory").read_daily(utcnow().date())]
    assert story[0] == []
    assert [line.split(":")[0] for line in story[1]] == [
        f"{incident.id} opened",
        "t2",
        f"{incident.id} resolved",
    ]
    assert "restarted coordinator-api: healthy" in story[1][1]

    third_rc, _ = heartbeat(stack.inventory, tmp_path)
    assert third_rc == 0
    assert len(IncidentStore(MemoryStore(tmp_path / "ai-memory")).all()) == 1


def test_memory_dir_elsewhere_restarts_at_the_default_threshold(stack, tmp_path) -> None:
    """--memory-dir is where every reader and writer of the run looks: the restart planner (a lookup
    inside ansible-playbook) sees the open incident there, not in ./ai-memory of the working directory."""
    assert MEMORY_DIR_ENV not in os.environ, "the test needs the default resolution"
    memory = tmp_path / "somewhere" / "else" / "memory"
    cwd = tmp_path / "cwd"
    cwd.mkdir()
    t2 = stack.host("t2")
    kill_service(t2, "coordinator-api")

    def beat() -> tuple[int, dict]:
        done = opsrunner(
            "--memory-dir", str(memory), "heartbeat", "-i", str(stack.inventory), "--json", cwd=cwd
        )
        assert done.stdout.strip(), done.stderr
        return done.returncode, json.loads(done.stdout)

    assert beat()[0] == 1
    second_rc, second = beat()
    assert second_rc == 0, second
    [incident] = IncidentStore(MemoryStore(memory)).all()
    assert (incident.host, incident.service, incident.restarts) == ("t2", "coordinator-api", 1)
    assert incident.status == "resolved"
    assert any("restarted coordinator-api: healthy" in t.text for t in incident.timeline)
    assert beat()[0] == 0
    assert not (cwd / "ai-memory").exists()
    assert not (memory.parent / "ai-memory").exists()


@pytest.fixture
def webhook() -> Iterator[tuple[list[dict], int]]:
    received: list[dict] = []

    class Hook(BaseHTTPRequestHandler):
        def do_POST(self) -> None:  # noqa: N802 - http.server's hook name
            received.append(json.loads(self.rfile.read(int(self.headers["Content-Length"]))))
            self.send_response(200)
            self.end_headers()

        def log_message(self, *args: object) -> None:
            return

    server = ThreadingHTTPServer(("127.0.0.1", 0), Hook)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield received, server.server_address[1]
    finally:
        server.shutdown()
        server.server_close()


def test_broken_service_escalates_once_and_alerts(stack, tmp_path, mailbox, webhook) -> None:
    box, smtp_port = mailbox
    posts, hook_port = webhook
    alerts = [
        f"mailto://127.0.0.1:{smtp_port}?from=ops@example.org&to=oncall@example.org",
        f"json://127.0.0.1:{hook_port}/hook",
    ]
    t3 = stack.host("t3")
    broken = {
        "backend": "process",
        "command": "/bin/sh -c 'echo cannot start >&2; exit 3'",
        "pidfile": str(t3.state_dir / "run" / "broken-worker.pid"),
        "log_file": str(t3.state_dir / "log" / "broken-worker.log"),
        "probes": [{"type": "tcp", "name": "port", "port": 18099}],
    }
    order = [
        "redis",
        "coordinator-api",
        "blockchain-node",
        "blockchain-rpc",
        "wallet-daemon",
        "broken-worker",
    ]
    inventory = inventory_with(
        stack,
        tmp_path / "inv",
        group_vars={"aitbc_alert_urls": alerts},
        host_vars={
            "t3": {"aitbc_service_overrides": {"broken-worker": broken}, "aitbc_service_order": order}
        },
    )
    limits = ("-e", "heartbeat_failure_threshold=1", "-e", "heartbeat_max_restarts=2", "--limit", "t3")

    codes = [heartbeat(inventory, tmp_path, *limits)[0] for _ in range(3)]
    assert codes == [1, 1, 1]
    [incident] = IncidentStore(MemoryStore(tmp_path / "ai-memory")).all()
    assert (incident.service, incident.status, incident.escalated) == ("broken-worker", "open", True)
    assert incident.restarts == 2, "restarts stop once the budget (2) is spent"
    timeline = [t.text for t in incident.timeline]
    assert sum("restarted broken-worker: failed" in t for t in timeline) == 2
    assert sum(t.startswith("escalated") for t in timeline) == 1
    # A critical incident pages when it opens, and once more on escalation; nothing repeats.
    assert len(box.messages) == 2, "one email when it opens, one on escalation"
    assert "opened" in box.messages[0] and "escalated" in box.messages[1] and incident.id in box.messages[1]
    assert [p["title"] for p in posts] == [
        f"[aitbc-ops] opened: {incident.summary}",
        f"[aitbc-ops] escalated: {incident.summary}",
    ]
    entries = MemoryStore(tmp_path / "ai-memory").read_daily(utcnow().date())
    assert any("page escalated" in d and ": sent" in d for d in entries[1].details)


def test_unreachable_host_is_an_incident_and_others_are_checked(stack, tmp_path, webhook) -> None:
    posts, hook_port = webhook
    inventory = inventory_with(
        stack, tmp_path / "inv", group_vars={"aitbc_alert_urls": [f"json://127.0.0.1:{hook_port}/hook"]}
    )
    stack.stop_sshd("t1")
    try:
        rc, result = heartbeat(inventory, tmp_path, "-e", "heartbeat_failure_threshold=1")
    finally:
        stack.start_sshd("t1")
    assert rc == 3, result
    rows = {(c["host"], c["status"]) for c in result["checks"]}
    assert ("t1", "UNREACHABLE") in rows
    assert {host for host, status in rows if status == "ok"} == {"t2", "t3"}
    [incident] = IncidentStore(MemoryStore(tmp_path / "ai-memory")).all()
    assert (incident.host, incident.check, incident.summary) == ("t1", "reachable", "t1 unreachable")
    assert "### host unreachable" in incident.debugging_notes
    assert [p["title"] for p in posts] == ["[aitbc-ops] opened: t1 unreachable"]

    rc, _ = heartbeat(inventory, tmp_path, "-e", "heartbeat_failure_threshold=1")
    assert rc == 0
    assert IncidentStore(MemoryStore(tmp_path / "ai-memory")).get(incident.id).status == "resolved"
    assert posts[-1]["title"] == "[aitbc-ops] resolved: t1 unreachable"


def test_flapping_check_opens_no_incident_below_threshold(stack, tmp_path) -> None:
    flag = tmp_path / "flappy.pid"
    flappy = {"backend": "process", "command": "/bin/true", "pidfile": str(flag), "running_probe": False,
              "probes": [{"type": "process", "name": "alive", "pidfile": str(flag)}]}  # fmt: skip
    order = ["redis", "coordinator-api", "blockchain-node", "blockchain-rpc", "wallet-daemon", "flappy"]
    inventory = inventory_with(
        stack,
        tmp_path / "inv",
        host_vars={"t2": {"aitbc_service_overrides": {"flappy": flappy}, "aitbc_service_order": order}},
    )
    codes = []
    for beat in range(4):
        if beat % 2:
            flag.write_text(f"{os.getpid()}\n")  # a live pid: the check passes
        else:
            flag.unlink(missing_ok=True)  # fails on every other heartbeat
        codes.append(heartbeat(inventory, tmp_path, "--limit", "t2")[0])
    assert codes == [1, 0, 1, 0]
    assert IncidentStore(MemoryStore(tmp_path / "ai-memory")).all() == []


def test_service_cli_across_hosts(stack, tmp_path) -> None:
    status = opsrunner("service", "status", "redis", "-i", str(stack.inventory), "--json", cwd=tmp_path)
    assert status.returncode == 0, status.stderr
    services = json.loads(status.stdout)["services"]
    assert len(services) == 3 and all(s["active"] for s in services)

    old_pid = int((stack.host("t1").state_dir / "run" / "wallet-daemon.pid").read_text())
    restart = opsrunner(
        "service", "restart", "wallet-daemon", "-i", str(stack.inventory), "--limit", "t1", cwd=tmp_path
    )
    assert restart.returncode == 0, restart.stdout + restart.stderr
    assert int((stack.host("t1").state_dir / "run" / "wallet-daemon.pid").read_text()) != old_pid
    assert "t1" in restart.stdout and "t2" not in restart.stdout

    unknown = opsrunner("service", "stop", "no-such-service", "-i", str(stack.inventory), cwd=tmp_path)
    assert unknown.returncode == 2
    assert unknown.stderr.strip().startswith("opsrunner: error: unknown service: no-such-service (known:")


def test_incident_ack_and_manual_resolve(stack, tmp_path) -> None:
    kill_service(stack.host("t3"), "blockchain-rpc")
    beats = ("-e", "heartbeat_failure_threshold=1", "--no-remediate", "--limit", "t3")
    assert heartbeat(stack.inventory, tmp_path, *beats)[0] == 1
    [incident] = IncidentStore(MemoryStore(tmp_path / "ai-memory")).all()
    assert incident.status == "open" and incident.restarts == 0, "--no-remediate restarts nothing"
    assert opsrunner("incidents", "ack", incident.id, "--note", "looking", cwd=tmp_path).returncode == 0
    why = ("--cause", "rpc killed", "--resolution", "restarted by hand")
    done = opsrunner("incidents", "resolve", incident.id, *why, cwd=tmp_path)
    assert done.returncode == 0, done.stderr
    resolved = IncidentStore(MemoryStore(tmp_path / "ai-memory")).get(incident.id)
    assert (resolved.status, resolved.cause, resolved.resolution) == (
        "resolved",
        "rpc killed",
        "restarted by hand",
    )
    again = opsrunner("incidents", "resolve", incident.id, cwd=tmp_path)
    assert again.returncode == 2 and "already resolved" in again.stderr
    assert opsrunner("incidents", "show", "INC-1", cwd=tmp_path).returncode == 2
    restart = opsrunner(
        "service", "start", "blockchain-rpc", "-i", str(stack.inventory), "--limit", "t3", cwd=tmp_path
    )
    assert restart.returncode == 0, restart.stdout + restart.stderr


def test_logs_review_cli(stack, tmp_path) -> None:
    log = stack.host("t2").state_dir / "log" / "coordinator-api.log"
    with log.open("a") as handle:
        handle.write("2026-11-23T10:00:00Z ERROR database is locked (attempt 3)\n")
    done = opsrunner("logs", "review", "-i", str(stack.inventory), "--limit", "t2", "--json", cwd=tmp_path)
    assert done.returncode == 0, done.stderr
    [entry] = MemoryStore(tmp_path / "ai-memory").read_daily(utcnow().date())
    assert entry.event == "log review"
    assert any(d.startswith("t2 coordinator-api: 1 error") for d in entry.details), entry.details
    proposed = (tmp_path / "ai-memory" / "failures" / "proposed-signatures.md").read_text()
    assert "database is locked" in proposed

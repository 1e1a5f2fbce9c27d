"""`opsrunner intake serve` over real HTTP: uvicorn on a loopback port of its own (in a thread, with a
test handler that appends every report to a file), and the CLI as a subprocess.

Refused requests (unsigned, forged, stale, replayed, too large, invalid) leave nothing behind: no spool
file, no handled report. Accepted ones reach the handler exactly once, also across a restart.
"""

from __future__ import annotations

import base64
import datetime as dt
import http.client
import json
import os
import select
import shutil
import signal
import socket
import subprocess
import sys
import threading
import time
import uuid
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
from ports import free_port
from standardwebhooks.webhooks import Webhook

from monitoring import webhook_body
from opsrunner.incidents import STATE_FILE
from opsrunner.intake.app import IntakeConfig, create_app
from opsrunner.intake.server import ServerThread
from opsrunner.intake.spool import Spool, report_to_json
from opsrunner.reports import Report

pytestmark = pytest.mark.integration

BIN = Path(sys.executable).parent
SECRET = "whsec_" + base64.b64encode(b"intake-test-secret-32-bytes-long").decode()
TOKEN = "intake-test-token"
WAIT_S = 20.0


@dataclass
class Handled:
    """The test handler: appends each report to a file, optionally slowly."""

    path: Path
    delay: float = 0.0
    lock: threading.Lock = field(default_factory=threading.Lock)

    def __call__(self, report: Report) -> None:
        if self.delay:
            time.sleep(self.delay)
        with self.lock, self.path.open("a") as out:
            out.write(json.dumps(report_to_json(report)) + "\n")

    def reports(self) -> list[dict[str, Any]]:
        if not self.path.exists():
            return []
        return [json.loads(line) for line in self.path.read_text().splitlines()]

    def wait_for(self, count: int, timeout: float = WAIT_S) -> list[dict[str, Any]]:
        deadline = time.monotonic() + timeout
        while len(found := self.reports()) < count:
            assert time.monotonic() < deadline, f"handled {len(found)} of {count} reports"
            time.sleep(0.02)
        return found


@dataclass
class Intake:
    memory: Path
    handled: Handled
    server: ServerThread

    @property
    def spool(self) -> list[Path]:
        folder = self.memory / "intake" / "spool"
        return sorted(folder.iterdir()) if folder.exists() else []

    def spooled(self) -> int:
        """Reports in the spool not handled yet, as the server counts them."""
        return int(self.request("GET", "/health")[1]["spooled_reports"])

    def left_in_spool(self) -> list[str]:
        """After a stop: the summaries a restart would replay."""
        return [r.summary for _, reports in Spool(self.memory / "intake" / "spool").load() for r in reports]

    def request(
        self, method: str, path: str, body: bytes = b"", headers: dict[str, str] | None = None
    ) -> tuple[int, Any]:
        conn = http.client.HTTPConnection("127.0.0.1", self.server.port, timeout=30)
        try:
            conn.request(method, path, body, headers or {})
            response = conn.getresponse()
            data = response.read()
        finally:
            conn.close()
        kind = response.getheader("content-type", "")
        return response.status, json.loads(data) if "json" in kind else data.decode()

    def post(self, path: str, body: bytes, headers: dict[str, str] | None = None) -> tuple[int, Any]:
        return self.request("POST", path, body, {"content-type": "application/json", **(headers or {})})


@pytest.fixture
def start(tmp_path: Path) -> Iterator[Callable[..., Intake]]:
    servers: list[ServerThread] = []
    memory = tmp_path / "ai-memory"

    def start_intake(delay: float = 0.0, **config: Any) -> Intake:
        handled = Handled(tmp_path / "handled.jsonl", delay)
        settings = {"token": TOKEN, "signing_secret": SECRET, "deadman": False, **config}
        app = create_app(IntakeConfig(memory_dir=memory, **settings), handled)
        server = ServerThread(app).__enter__()
        servers.append(server)
        return Intake(memory, handled, server)

    yield start_intake
    for server in servers:
        server.stop()


def event_body(n: int = 1, **over: Any) -> bytes:
    body = {
        "source": "test-agent",
        "host": "web1",
        "service": "coordinator-api",
        "check": "api errors",
        "summary": f"event {n}",
        "severity": "warning",
        "fingerprint": f"evt-{n}",
        **over,
    }
    return json.dumps(body).encode()


def signed(
    body: bytes, msg_id: str | None = None, *, secret: str = SECRET, age_s: float = 0
) -> dict[str, str]:
    msg_id = msg_id or f"msg_{uuid.uuid4().hex}"
    moment = dt.datetime.now(dt.UTC) - dt.timedelta(seconds=age_s)
    return {
        "webhook-id": msg_id,
        "webhook-timestamp": str(int(moment.timestamp())),
        "webhook-signature": Webhook(secret).sign(msg_id, moment, body),
    }


def bearer() -> dict[str, str]:
    return {"authorization": f"Bearer {TOKEN}"}


def alert(n: int, fingerprint: str, **labels: str) -> dict[str, Any]:
    return {
        "status": "firing",
        "labels": {
            "alertname": "InstanceDown",
            "instance": f"node{n % 20}:8082",
            "job": "blockchain-node",
            **labels,
        },
        "annotations": {"summary": f"alert {n}"},
        "startsAt": f"2026-12-04T20:{n // 20:02d}:00Z",
        "endsAt": "0001-01-01T00:00:00Z",
        "generatorURL": "http://127.0.0.1:9090/graph",
        "fingerprint": fingerprint,
    }


def huge_request(port: int, size: int, *, chunked: bool) -> int:
    """POST `size` bytes (or as many as the server takes before it answers); the answer's status."""
    with socket.create_connection(("127.0.0.1", port), timeout=30) as sock:
        length = "Transfer-Encoding: chunked" if chunked else f"Content-Length: {size}"
        sock.sendall(
            f"POST /events HTTP/1.1\r\nHost: x\r\n{length}\r\nAuthorization: Bearer {TOKEN}\r\n\r\n".encode()
        )
        piece = b"x" * 65536
        sent = 0
        while sent < size:
            if select.select([sock], [], [], 0)[0]:
                break  # the server answered before the body ended
            data = (b"%x\r\n" % len(piece) + piece + b"\r\n") if chunked else piece
            try:
                sock.sendall(data)
            except (BrokenPipeError, ConnectionResetError):
                break
            sent += len(piece)
        reply = b""
        while b"\r\n" not in reply:
            chunk = sock.recv(4096)
            if not chunk:
                break
            reply += chunk
    assert sent < size, "the server read the whole huge body"
    return int(reply.split(b" ", 2)[1])


# ------------------------------------------------------------------------------------------- tests


def test_signed_event_accepted_and_handled_then_retry_is_a_duplicate(start: Callable[..., Intake]) -> None:
    intake = start()
    body = event_body(1)
    headers = signed(body, "msg_first")
    status, answer = intake.post("/events", body, headers)
    assert (status, answer) == (202, {"accepted": 1, "duplicates": 0})
    (report,) = intake.handled.wait_for(1)
    assert (report["source"], report["host"], report["summary"], report["labels"]) == (
        "agent",
        "web1",
        "event 1",
        {"sender": "test-agent"},
    )
    # The sender's retry: same id, new timestamp and signature -> a duplicate, nothing queued again.
    retry = signed(body, "msg_first", age_s=2)
    assert intake.post("/events", body, retry) == (200, {"duplicate": True, "accepted": 0})
    # The exact replay of the accepted request is refused.
    status, answer = intake.post("/events", body, headers)
    assert status == 401 and "replayed" in answer["error"]
    # A bearer token works as well.
    assert intake.post("/events", event_body(2), bearer())[0] == 202
    intake.handled.wait_for(2)
    time.sleep(0.2)
    assert len(intake.handled.reports()) == 2
    wait_until(lambda: intake.spooled() == 0)


def wait_until(check: Callable[[], bool], timeout: float = WAIT_S) -> None:
    deadline = time.monotonic() + timeout
    while not check():
        assert time.monotonic() < deadline, "timed out"
        time.sleep(0.02)


def test_refused_requests_write_nothing(start: Callable[..., Intake]) -> None:
    intake = start()
    body = event_body(1)
    other = "whsec_" + base64.b64encode(b"another-secret-another-secret!!!").decode()
    cases = {
        "unsigned": {},
        "forged": signed(body, secret=other),
        "stale": signed(body, age_s=3600),
        "wrong token": {"authorization": "Bearer nope"},
        "body changed": signed(event_body(2)),
    }
    for name, headers in cases.items():
        status, answer = intake.post("/events", body, headers)
        assert status == 401, (name, status, answer)
        assert "error" in answer
    assert huge_request(intake.server.port, 10 * 1024 * 1024, chunked=False) == 413
    assert huge_request(intake.server.port, 10 * 1024 * 1024, chunked=True) == 413
    # The server still serves after them.
    assert intake.request("GET", "/health")[0] == 200
    time.sleep(0.2)
    assert intake.spool == [] and intake.handled.reports() == []
    assert not (intake.memory / "intake" / ".seen-ids.json").exists()
    _, metrics = intake.request("GET", "/metrics")
    assert 'opsrunner_intake_requests_total{code="401",route="/events"} 5.0' in metrics
    assert 'opsrunner_intake_requests_total{code="413",route="/events"} 2.0' in metrics


def test_bad_bodies_name_the_field_and_write_nothing(start: Callable[..., Intake]) -> None:
    intake = start(body_limit=4096)
    bad_host = alert(3, "fp3", host="a/b")
    body = webhook_body(alert(0, "fp0"), alert(1, "fp1"), alert(2, "fp2"), bad_host)
    status, answer = intake.post("/alerts", body, bearer())
    assert status == 422 and answer["field"] == "alerts[3].labels.host", answer
    status, answer = intake.post("/events", event_body(1, surprise=True), bearer())
    assert (status, answer["field"]) == (422, "surprise")
    status, answer = intake.post("/events", b"{not json", bearer())
    assert (status, answer["field"]) == (400, "body")
    big = webhook_body(*[alert(n, f"fp{n}") for n in range(30)])
    assert len(big) > 4096
    assert intake.post("/alerts", big, bearer())[0] == 413
    assert intake.request("GET", "/alerts")[0] == 405
    time.sleep(0.2)
    assert intake.spool == [] and intake.handled.reports() == []


def test_a_full_queue_answers_429_and_accepts_nothing_of_that_request(start: Callable[..., Intake]) -> None:
    intake = start(delay=0.5, queue_size=3)
    assert intake.post("/alerts", webhook_body(alert(0, "a0"), alert(1, "a1")), bearer())[0] == 202
    status, answer = intake.post(
        "/alerts", webhook_body(alert(2, "a2"), alert(3, "a3"), alert(4, "a4")), bearer()
    )
    assert status == 429 and "queue is full" in answer["error"]
    time.sleep(1.5)
    assert intake.post("/alerts", webhook_body(alert(2, "a2"), alert(3, "a3")), bearer())[0] == 202
    summaries = [r["summary"] for r in intake.handled.wait_for(4)]
    assert summaries == ["alert 0", "alert 1", "alert 2", "alert 3"]


def test_burst_of_200_alerts_with_20_fingerprints_nothing_lost(start: Callable[..., Intake]) -> None:
    intake = start(delay=0.002, queue_size=60)
    # Alert n: fingerprint fp<n % 20>, startsAt by n // 20 (Alertmanager's retries repeat all three).
    bodies = {n: webhook_body(alert(n, f"fp{n % 20}")) for n in range(200)}

    def send(n: int) -> tuple[int, int, Any]:
        status, answer = intake.post("/alerts", bodies[n], bearer())
        return n, status, answer

    with ThreadPoolExecutor(16) as pool:
        results = list(pool.map(send, range(200)))
    accepted = {n for n, status, answer in results if status == 202 and answer["accepted"] == 1}
    assert all(status in (202, 429) for _, status, _ in results), results
    assert len(accepted) > 0
    handled = intake.handled.wait_for(len(accepted))
    time.sleep(0.3)
    handled = intake.handled.reports()
    assert sorted(int(r["summary"].split()[1]) for r in handled) == sorted(accepted)  # exactly once each
    assert {r["fingerprint"] for r in handled} <= {f"fp{n}" for n in range(20)}
    # Alertmanager's retry of an accepted alert is a duplicate, not queued again.
    again = next(iter(accepted))
    assert intake.post("/alerts", bodies[again], bearer()) == (202, {"accepted": 0, "duplicates": 1})
    # So is an alert repeated inside one group.
    twice = webhook_body(alert(500, "fpX"), alert(500, "fpX"))
    assert intake.post("/alerts", twice, bearer()) == (202, {"accepted": 1, "duplicates": 1})
    intake.handled.wait_for(len(accepted) + 1)
    wait_until(lambda: intake.spooled() == 0)
    _, health = intake.request("GET", "/health")
    assert health["queue_depth"] == 0 and health["spooled_reports"] == 0 and health["status"] == "ok"


def test_restart_replays_the_spool_in_order(start: Callable[..., Intake]) -> None:
    intake = start(delay=0.4)
    for n in range(5):
        assert intake.post("/events", event_body(n), bearer())[0] == 202
    intake.server.stop()  # graceful: the report in hand finishes, the rest stays spooled
    done_before = [r["summary"] for r in intake.handled.reports()]
    assert 1 <= len(done_before) < 5
    assert intake.left_in_spool() == [f"event {n}" for n in range(len(done_before), 5)]
    again = start()
    summaries = [r["summary"] for r in again.handled.wait_for(5)]
    assert summaries == [f"event {n}" for n in range(5)]  # each once, in arrival order
    wait_until(lambda: again.spooled() == 0)


def test_a_restart_keeps_the_new_alerts_of_a_spooled_group_and_alertmanagers_dedup(
    start: Callable[..., Intake],
) -> None:
    intake = start(delay=0.5)
    first, second, third = alert(1, "fpA"), alert(2, "fpB"), alert(3, "fpC")
    assert intake.post("/alerts", webhook_body(first, second), bearer()) == (
        202,
        {"accepted": 2, "duplicates": 0},
    )
    # The same group again with one new alert: only the new one is kept, on disk and on replay.
    assert intake.post("/alerts", webhook_body(second, third), bearer()) == (
        202,
        {"accepted": 1, "duplicates": 1},
    )
    intake.server.stop()  # graceful: what is not handled yet stays spooled, the dedup keys are saved
    assert len(intake.handled.reports()) + len(intake.left_in_spool()) == 3
    again = start()
    summaries = [r["summary"] for r in again.handled.wait_for(3)]
    assert summaries == ["alert 1", "alert 2", "alert 3"]  # each once, in arrival order
    # Alertmanager re-sends the groups after the restart: known alerts, nothing queued again.
    assert again.post("/alerts", webhook_body(first, second), bearer()) == (
        202,
        {"accepted": 0, "duplicates": 2},
    )
    wait_until(lambda: again.spooled() == 0)
    assert len(again.handled.reports()) == 3


def test_a_failing_handler_is_recorded_and_the_work_goes_on(
    start: Callable[..., Intake], tmp_path: Path
) -> None:
    intake = start()
    calls: list[str] = []

    def flaky(report: Report) -> None:
        calls.append(report.summary)
        if report.summary == "event 1":
            raise RuntimeError(f"boom with {TOKEN} and password=hunter2")

    intake.server.server.config.app.state.intake.handler = flaky  # type: ignore[attr-defined]
    for n in range(3):
        assert intake.post("/events", event_body(n), bearer())[0] == 202
    wait_until(lambda: len(calls) == 3)
    wait_until(lambda: intake.spooled() == 0)
    failed = (intake.memory / "intake" / "failed.jsonl").read_text().splitlines()
    assert len(failed) == 1
    line = json.loads(failed[0])
    assert line["report"]["summary"] == "event 1" and "boom" in line["error"]
    assert TOKEN not in failed[0] and "hunter2" not in failed[0]
    _, metrics = intake.request("GET", "/metrics")
    assert "opsrunner_intake_handler_failures_total 1.0" in metrics


def test_deadman_fires_once_and_resolves_once(start: Callable[..., Intake]) -> None:
    memory_state = None
    intake = start(deadman=True, heartbeat_interval=0.2)
    memory_state = intake.memory / STATE_FILE
    memory_state.parent.mkdir(parents=True, exist_ok=True)
    memory_state.write_text("{}\n")
    old = time.time() - 60
    os.utime(memory_state, (old, old))
    (firing,) = intake.handled.wait_for(1)
    assert (firing["source"], firing["fingerprint"], firing["status"]) == (
        "intake",
        "deadman-heartbeat",
        "firing",
    )
    assert firing["summary"] == "no heartbeat has finished for 1 min"
    time.sleep(0.5)
    assert len(intake.handled.reports()) == 1  # once
    _, health = intake.request("GET", "/health")
    assert health["deadman_fired"] is True and health["heartbeat_age_s"] >= 60
    memory_state.touch()  # a heartbeat finished
    first, resolved = intake.handled.wait_for(2)
    assert (resolved["fingerprint"], resolved["status"]) == ("deadman-heartbeat", "resolved")
    time.sleep(0.1)
    assert len(intake.handled.reports()) == 2
    _, metrics = intake.request("GET", "/metrics")
    assert "opsrunner_intake_heartbeat_age_seconds" in metrics


# ------------------------------------------------------------------------------------------- the CLI


def opsrunner(tmp_path: Path, *args: str) -> list[str]:
    return [str(BIN / "opsrunner"), "--memory-dir", str(tmp_path / "ai-memory"), "intake", "serve", *args]


def secret_file(tmp_path: Path, name: str, text: str, mode: int) -> str:
    path = tmp_path / name
    path.write_text(text + "\n")
    path.chmod(mode)
    return str(path)


def test_cli_refuses_to_start_without_safe_authentication(tmp_path: Path) -> None:
    cases = [
        ([], "needs authentication"),
        (["--listen", "0.0.0.0:9095"], "0.0.0.0 is not a loopback address"),
        (["--token-file", secret_file(tmp_path, "wide", TOKEN, 0o644)], "is readable by others (mode 0644)"),
        (
            ["--signing-secret-file", secret_file(tmp_path, "bad", "whsec_!!", 0o600)],
            "not a Standard Webhooks",
        ),
        (["--token-file", str(tmp_path / "missing")], "No such file"),
        (
            ["--listen", "localhost", "--token-file", secret_file(tmp_path, "t", TOKEN, 0o600)],
            "use HOST:PORT",
        ),
        (
            ["--queue-size", "0", "--token-file", secret_file(tmp_path, "t", TOKEN, 0o600)],
            "--queue-size must",
        ),
    ]
    for args, message in cases:
        done = subprocess.run(
            opsrunner(tmp_path, *args), capture_output=True, text=True, timeout=60, check=False
        )
        assert done.returncode == 2, (args, done.stdout, done.stderr)
        assert message in done.stderr and len(done.stderr.strip().splitlines()) == 1, done.stderr
    assert not (tmp_path / "ai-memory" / "intake").exists()


def test_cli_serves_and_stops_on_sigterm(tmp_path: Path) -> None:
    port = free_port()
    args = [
        "--listen",
        f"127.0.0.1:{port}",
        "--token-file",
        secret_file(tmp_path, "token", TOKEN, 0o600),
        "--signing-secret-file",
        secret_file(tmp_path, "secret", SECRET, 0o400),
    ]
    proc = subprocess.Popen(
        opsrunner(tmp_path, *args), stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True
    )
    try:
        deadline = time.monotonic() + 60
        while True:
            try:
                conn = http.client.HTTPConnection("127.0.0.1", port, timeout=5)
                conn.request("GET", "/health")
                response = conn.getresponse()
                health = json.loads(response.read())
                break
            except OSError:
                assert proc.poll() is None, proc.communicate()[0]
                assert time.monotonic() < deadline, "the intake did not start"
                time.sleep(0.1)
        assert response.status == 200 and health["queue_depth"] == 0 and health["queue_size"] == 1000
        conn.request("POST", "/events", event_body(1), {})
        response = conn.getresponse()
        assert response.status == 401
        response.read()
        conn.close()
    finally:
        proc.send_signal(signal.SIGTERM)
        output = proc.communicate(timeout=60)[0]
    # uvicorn stops gracefully, then ends by the signal it caught (systemd counts that a clean stop).
    assert proc.returncode in (0, -signal.SIGTERM), output
    assert "Application shutdown complete" in output
    assert TOKEN not in output


# ------------------------------------------------------------------------------------------- schedule install


def test_schedule_installs_the_intake_with_the_process_backend(
    tmp_path: Path, repo_root: Path, ansible_env: dict[str, str]
) -> None:
    """`present` with aitbc_intake.enabled on the cron backend: the intake runs as a process-backend daemon
    (pidfile under aitbc_root) and answers /health; a changed setting restarts it; `absent` stops it."""
    port = free_port()
    root = tmp_path / "aitbc"
    inventory = tmp_path / "inventory.yml"
    host = {
        "ansible_connection": "local",
        "ansible_python_interpreter": sys.executable,
        "aitbc_root": str(root),
    }
    inventory.write_text(json.dumps({"all": {"hosts": {"localhost": host}}}))
    prefix = f"aitbc-itest-{uuid.uuid4().hex[:6]}"
    settings: dict[str, Any] = {
        "schedule_hosts": "localhost",
        "schedule_prefix": prefix,
        "schedule_backend": "cron",
        "schedule_jobs": [],
        "schedule_cron_file": str(tmp_path / "cron.d" / prefix),
        "schedule_systemd_dir": str(tmp_path / "systemd"),
        "schedule_lock_dir": str(tmp_path / "lock"),
        "schedule_workdir": str(repo_root),
        "schedule_opsrunner": str(BIN / "opsrunner"),
        "schedule_memory_dir": str(tmp_path / "memory"),
        "schedule_intake_stop_timeout": 30,
        "aitbc_intake": {
            "enabled": True,
            "listen": f"127.0.0.1:{port}",
            "token_file": secret_file(tmp_path, "token", TOKEN, 0o600),
        },
    }
    (tmp_path / "systemd").mkdir()
    pidfile = root / "run" / f"{prefix}-intake.pid"

    def play(state: str = "present", **over: Any) -> str:
        extra = {**settings, **over, "schedule_state": state}
        argv = [
            str(BIN / "ansible-playbook"),
            "-i",
            str(inventory),
            str(repo_root / "playbooks" / "schedule.yml"),
        ]
        done = subprocess.run(
            [*argv, "-e", json.dumps(extra)],
            env=ansible_env,
            capture_output=True,
            text=True,
            timeout=300,
            check=False,
        )
        assert done.returncode == 0, done.stdout + done.stderr
        return done.stdout

    def health() -> dict[str, Any]:
        conn = http.client.HTTPConnection("127.0.0.1", port, timeout=5)
        try:
            conn.request("GET", "/health")
            return json.loads(conn.getresponse().read())
        finally:
            conn.close()

    try:
        play()
        first_pid = int(pidfile.read_text().split()[0])
        wait_until(lambda: _answers(health))
        assert health()["queue_size"] == 1000
        assert "changed=0" in play()  # idempotent
        assert int(pidfile.read_text().split()[0]) == first_pid
        play(aitbc_intake={**settings["aitbc_intake"], "queue_size": 50})  # a changed setting restarts it
        wait_until(lambda: _answers(health) and health()["queue_size"] == 50)
        assert int(pidfile.read_text().split()[0]) != first_pid
        play("absent")
        assert not pidfile.exists()
        with pytest.raises(OSError):
            health()
    finally:
        if pidfile.exists():
            os.kill(int(pidfile.read_text().split()[0]), signal.SIGTERM)


def _answers(health: Callable[[], dict[str, Any]]) -> bool:
    try:
        return health()["status"] == "ok"
    except OSError:
        return False


def test_intake_unit_passes_systemd_analyze(
    tmp_path: Path, repo_root: Path, ansible_env: dict[str, str]
) -> None:
    """The systemd unit the role writes, rendered with its own defaults and vars, verified by systemd."""
    analyze = shutil.which("systemd-analyze")
    if analyze is None:
        pytest.skip("systemd-analyze not found (Debian package systemd)")
    role = repo_root / "roles" / "schedule"
    unit = tmp_path / "aitbc-ops-intake.service"
    play = [
        {
            "name": "Render the intake unit",
            "hosts": "localhost",
            "gather_facts": False,
            "vars_files": [str(role / "defaults" / "main.yml"), str(role / "vars" / "main.yml")],
            "tasks": [
                {
                    "name": "Render",
                    "ansible.builtin.template": {
                        "src": str(role / "templates" / "intake.service.j2"),
                        "dest": str(unit),
                        "mode": "0644",
                    },
                }
            ],
        }
    ]
    (tmp_path / "render.yml").write_text(json.dumps(play))
    extra = {
        "aitbc_root": "/var/lib/aitbc-ops",
        "schedule_workdir": "/srv/aitbc ops",
        "schedule_memory_dir": "/var/lib/mem $x%",
        "aitbc_intake": {
            "enabled": True,
            "token_file": "/etc/aitbc/intake token",
            "signing_secret_file": "/etc/s",
        },
    }
    done = subprocess.run(
        [str(BIN / "ansible-playbook"), "-i", "localhost,", "-c", "local", str(tmp_path / "render.yml")]
        + ["-e", json.dumps(extra)],
        env=ansible_env,
        capture_output=True,
        text=True,
        timeout=180,
        check=False,
    )
    assert done.returncode == 0, done.stdout + done.stderr
    verify = subprocess.run(
        [analyze, "verify", "--man=no", str(unit)], capture_output=True, text=True, check=False
    )
    assert verify.returncode == 0 and verify.stderr.strip() == "", verify.stderr
    text = unit.read_text()
    assert (
        "Restart=on-failure" in text and "TimeoutStopSec=300" in text and "WantedBy=multi-user.target" in text
    )
    exec_start = next(line for line in text.splitlines() if line.startswith("ExecStart="))
    assert "intake serve --listen 127.0.0.1:9095 --token-file '/etc/aitbc/intake token'" in exec_start
    assert (
        "--signing-secret-file /etc/s --queue-size 1000 --body-limit 1048576 --heartbeat-interval 1800"
        in exec_start
    )


def test_a_spool_that_cannot_be_written_answers_503_and_accepts_nothing(start: Callable[..., Intake]) -> None:
    intake = start()
    spool = intake.memory / "intake" / "spool"
    spool.rmdir()
    spool.write_text("not a folder\n")  # every spool write now fails (even as root)
    try:
        body = webhook_body(alert(0, "fp-disk"))
        status, answer = intake.post("/alerts", body, bearer())
        assert status == 503 and "cannot store" in answer["error"]
    finally:
        spool.unlink()
        spool.mkdir()
    # Nothing of it was kept: not handled, and Alertmanager's retry is new, not a duplicate.
    assert intake.post("/alerts", body, bearer()) == (202, {"accepted": 1, "duplicates": 0})
    (handled,) = intake.handled.wait_for(1)
    assert handled["fingerprint"] == "fp-disk"
    time.sleep(0.2)
    assert len(intake.handled.reports()) == 1

"""aitbc.ops.health through real Ansible (ad-hoc `ansible`, local connection, /usr/bin/python3 on the "host")
against real redis-server processes and a real HTTP server; plus ansible-doc, and one run over real SSH."""

from __future__ import annotations

import http.server
import json
import os
import re
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import parse_qs, urlsplit

import pytest
from adhoc import Run, run_module
from ports import free_port
from testhosts import HostPool

pytestmark = pytest.mark.integration

REPO = Path(__file__).resolve().parents[2]
BIN = Path(sys.executable).parent
REDIS_SERVER = "/usr/bin/redis-server"
REDIS_PASSWORD = "hunter2-Zq9"  # must never show up in Ansible's output
# Header of ad-hoc (minimal callback) output: "localhost | SUCCESS => {" / "t1 | FAILED! => {".

sys.path.insert(0, str(REPO / "collections"))
from ansible_collections.aitbc.ops.plugins.module_utils.probes.registry import argument_spec  # noqa: E402

# ------------------------------------------------------------------------------------------ services


class Handler(http.server.BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"

    def log_message(self, *args: object) -> None:
        pass

    def do_GET(self) -> None:  # noqa: N802
        url = urlsplit(self.path)
        status, doc = 404, {"error": "not found"}
        if url.path == "/health":
            status, doc = 200, {"status": "ok", "supported_chains": ["ait-devnet"], "height": 7}
        elif url.path == "/down":
            status, doc = 503, {"status": "down"}
        elif url.path == "/slow":
            time.sleep(float(parse_qs(url.query).get("s", ["10"])[0]))
            status, doc = 200, {"status": "late"}
        body = json.dumps(doc).encode()
        try:
            self.send_response(status)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)
        except (BrokenPipeError, ConnectionResetError):
            pass


class QuietServer(http.server.ThreadingHTTPServer):
    daemon_threads = True

    def handle_error(self, request: object, client_address: object) -> None:
        pass


@pytest.fixture(scope="module")
def web() -> Iterator[QuietServer]:
    """A real HTTP server on all addresses (SSH test hosts reach it through their gateway)."""
    server = QuietServer(("0.0.0.0", 0), Handler)
    threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True).start()
    yield server
    server.shutdown()
    server.server_close()


@pytest.fixture(scope="module")
def base_url(web: QuietServer) -> str:
    return f"http://127.0.0.1:{web.server_address[1]}"


@dataclass
class Redis:
    port: int
    pidfile: Path
    proc: subprocess.Popen[bytes]


def start_redis(workdir: Path, *extra: str) -> Redis:
    workdir.mkdir(parents=True, exist_ok=True)
    port, pidfile = free_port(), workdir / "redis.pid"
    argv = [REDIS_SERVER, "--port", str(port), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no",
            "--daemonize", "no", "--dir", str(workdir), "--pidfile", str(pidfile), *extra]  # fmt: skip
    proc = subprocess.Popen(argv, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"redis-server exited with {proc.returncode}")
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=0.5):
                if pidfile.exists() and pidfile.read_text().strip():
                    return Redis(port, pidfile, proc)
        except OSError:
            pass
        time.sleep(0.05)
    stop_redis(Redis(port, pidfile, proc))
    raise RuntimeError("redis-server did not come up within 10 s")


def stop_redis(redis: Redis) -> None:
    """Stop the server we started, by its PID."""
    if redis.proc.poll() is None:
        redis.proc.terminate()
        try:
            redis.proc.wait(timeout=5)
        except subprocess.TimeoutExpired:
            redis.proc.kill()
            redis.proc.wait()


@pytest.fixture(scope="module")
def redis_open(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Redis]:
    if not os.access(REDIS_SERVER, os.X_OK):
        pytest.skip(f"needs {REDIS_SERVER} (Debian package redis-server)")
    redis = start_redis(tmp_path_factory.mktemp("redis-open"))
    yield redis
    stop_redis(redis)


@pytest.fixture(scope="module")
def redis_auth(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Redis]:
    if not os.access(REDIS_SERVER, os.X_OK):
        pytest.skip(f"needs {REDIS_SERVER} (Debian package redis-server)")
    redis = start_redis(tmp_path_factory.mktemp("redis-auth"), "--requirepass", REDIS_PASSWORD)
    yield redis
    stop_redis(redis)


# ------------------------------------------------------------------------------------------- ansible


def health(ansible_env: dict[str, str], args: dict, *options: str, **where: str) -> Run:
    return run_module("aitbc.ops.health", ansible_env, args, *options, timeout=120, **where)


def healthy_probes(base_url: str, redis_open: Redis, redis_auth: Redis) -> list[dict]:
    return [
        {"type": "http", "service": "coordinator", "url": f"{base_url}/health",
         "json": ["status == ok", "supported_chains contains ait-devnet", "height > 0"]},
        {"type": "tcp", "service": "redis", "port": redis_open.port},
        {"type": "redis", "service": "redis", "port": redis_open.port},
        {"type": "redis", "name": "redis-auth", "service": "redis", "port": redis_auth.port,
         "password": REDIS_PASSWORD},
        {"type": "process", "service": "redis", "pidfile": str(redis_open.pidfile)},
        {"type": "process", "name": "redis-by-name", "process": "redis-server"},
        {"type": "disk", "path": "/", "min_free_percent": 0.01},
        {"type": "memory", "min_available_percent": 0.01},
        {"type": "load", "max_load_per_cpu": 10_000},
    ]  # fmt: skip


# --------------------------------------------------------------------------------------------- tests


def test_all_healthy(
    ansible_env: dict[str, str], base_url: str, redis_open: Redis, redis_auth: Redis
) -> None:
    run = health(ansible_env, {"probes": healthy_probes(base_url, redis_open, redis_auth)})
    status, result = run.result()
    assert (run.rc, status) == (0, "SUCCESS"), run.stdout + run.stderr
    assert result["changed"] is False
    assert result["healthy"] is True and result["failed_probes"] == []
    assert result["msg"] == "all 9 probes healthy"
    names = [r["name"] for r in result["results"]]
    assert names == [
        f"http:{base_url}/health",
        f"tcp:127.0.0.1:{redis_open.port}",
        f"redis:127.0.0.1:{redis_open.port}",
        "redis-auth",
        f"process:{redis_open.pidfile}",
        "redis-by-name",
        "disk:/",
        "memory",
        "load",
    ]
    by_name = {r["name"]: r for r in result["results"]}
    http_result = by_name[f"http:{base_url}/health"]
    assert re.fullmatch(
        r"200 in \d+ ms; status == ok; supported_chains contains ait-devnet; height > 0",
        http_result["detail"],
    )
    assert http_result["service"] == "coordinator" and http_result["type"] == "http"
    assert by_name[f"redis:127.0.0.1:{redis_open.port}"]["detail"].startswith("PONG in ")
    assert by_name["redis-auth"]["ok"] is True
    assert by_name[f"process:{redis_open.pidfile}"]["data"]["pid"] == redis_open.proc.pid
    assert redis_open.proc.pid in by_name["redis-by-name"]["data"]["pids"]
    assert all(isinstance(r["latency_ms"], float) for r in result["results"])
    assert REDIS_PASSWORD not in run.stdout + run.stderr


def unhealthy_probes(base_url: str, redis_auth: Redis) -> list[dict]:
    return [
        {"type": "http", "name": "api", "service": "coordinator", "url": f"{base_url}/down"},
        {"type": "redis", "name": "cache", "service": "redis", "port": redis_auth.port},  # no password
        {"type": "tcp", "name": "rpc", "port": free_port()},
        {"type": "memory", "min_available_percent": 0.01},
    ]


def test_unhealthy_fails_the_task(ansible_env: dict[str, str], base_url: str, redis_auth: Redis) -> None:
    run = health(ansible_env, {"probes": unhealthy_probes(base_url, redis_auth)})
    status, result = run.result()
    assert (run.rc, status) == (2, "FAILED!"), run.stdout + run.stderr
    assert result["healthy"] is False and result["changed"] is False
    assert result["failed_probes"] == ["api", "cache", "rpc"]
    details = {r["name"]: r["detail"] for r in result["results"]}
    assert re.fullmatch(r"503 in \d+ ms, expected 200", details["api"])
    assert details["cache"] == "NOAUTH Authentication required."
    assert details["rpc"] == "connection refused"
    assert result["msg"].startswith("3 of 4 probes failed: api (503 in ")
    assert "cache (NOAUTH Authentication required.); rpc (connection refused)" in result["msg"]


def test_unhealthy_reported_without_failing(
    ansible_env: dict[str, str], base_url: str, redis_auth: Redis
) -> None:
    run = health(ansible_env, {"probes": unhealthy_probes(base_url, redis_auth), "fail_on_unhealthy": False})
    status, result = run.result()
    assert (run.rc, status) == (0, "SUCCESS"), run.stdout + run.stderr
    assert result["healthy"] is False
    assert result["failed_probes"] == ["api", "cache", "rpc"]
    assert [r["ok"] for r in result["results"]] == [False, False, False, True]


def test_probes_run_in_check_mode(
    ansible_env: dict[str, str], base_url: str, redis_open: Redis, redis_auth: Redis
) -> None:
    run = health(ansible_env, {"probes": healthy_probes(base_url, redis_open, redis_auth)}, "--check")
    status, result = run.result()
    assert (run.rc, status) == (0, "SUCCESS"), run.stdout + run.stderr
    assert result["healthy"] is True and result["changed"] is False
    assert len(result["results"]) == 9 and all(r["ok"] for r in result["results"])
    assert result["results"][2]["detail"].startswith("PONG in ")  # really ran, not skipped
    # ... and failures are still found in check mode.
    run = health(ansible_env, {"probes": unhealthy_probes(base_url, redis_auth)}, "--check")
    status, result = run.result()
    assert (run.rc, status, result["failed_probes"]) == (2, "FAILED!", ["api", "cache", "rpc"])


def test_probes_share_one_deadline_window(ansible_env: dict[str, str], base_url: str) -> None:
    n = 8
    probes = [
        {"type": "http", "name": f"slow{i}", "url": f"{base_url}/slow?s=10", "timeout": 1} for i in range(n)
    ]
    baseline = health(ansible_env, {"probes": [{"type": "load", "max_load_per_cpu": 10_000}]})
    run = health(ansible_env, {"probes": probes, "fail_on_unhealthy": False})
    status, result = run.result()
    assert status == "SUCCESS", run.stdout + run.stderr
    assert [r["detail"] for r in result["results"]] == ["timed out after 1 s"] * n
    assert all(900 <= r["latency_ms"] < 1500 for r in result["results"]), result["results"]
    # Sequential probes would add n seconds to Ansible's own overhead (the baseline run); concurrent ones
    # about 1 s.
    extra = run.seconds - baseline.seconds
    assert extra < n / 2, (
        f"{n} probes with a 1 s deadline added {extra:.1f} s to a {baseline.seconds:.1f} s run"
    )


@pytest.mark.parametrize(
    ("probes", "message"),
    [
        ([{"type": "memory", "min_available_percent": 1}, {"type": "ping", "name": "gw"}],
         "probe 2 (gw): unknown probe type 'ping' "
         "(known types: auth_failures, backup, disk, file_mode, http, listeners, load, memory, metric, "
         "process, redis, service, tcp)"),
        ([{"type": "tcp", "port": 22, "url": "http://example.org/"}],
         "probe 1 (tcp): option(s) url do not apply to tcp probes (their own options: host, port)"),
        ([{"type": "http", "url": "http://127.0.0.1/", "json": ["status is ok"]}],
         "probe 1 (http): cannot parse json condition 'status is ok'"),
    ],
)  # fmt: skip
def test_bad_probe_definitions(ansible_env: dict[str, str], probes: list[dict], message: str) -> None:
    run = health(ansible_env, {"probes": probes})
    status, result = run.result()
    assert (run.rc, status) == (2, "FAILED!"), run.stdout + run.stderr
    assert result["msg"].startswith(message)
    assert "results" not in result


def test_password_is_not_logged(ansible_env: dict[str, str], redis_auth: Redis) -> None:
    probes = [{"type": "redis", "port": redis_auth.port, "password": REDIS_PASSWORD}]
    run = health(ansible_env, {"probes": probes}, "-vvv")  # -vvv prints the module invocation too
    status, result = run.result()
    assert status == "SUCCESS", run.stdout + run.stderr
    assert (
        result["invocation"]["module_args"]["probes"][0]["password"] == "VALUE_SPECIFIED_IN_NO_LOG_PARAMETER"
    )
    assert REDIS_PASSWORD not in run.stdout + run.stderr


def test_ansible_doc(ansible_env: dict[str, str]) -> None:
    text = subprocess.run(
        [str(BIN / "ansible-doc"), "aitbc.ops.health"],
        env=ansible_env,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert text.returncode == 0, text.stderr
    for word in ("probes", "fail_on_unhealthy", "tls_min_days", "min_free_percent", "max_load_per_cpu",
                 "check_mode", "RETURN VALUES", "failed_probes", "EXAMPLES"):  # fmt: skip
        assert word in text.stdout, word
    # The documented suboptions match the argument_spec the module builds from the probe registry
    # (what ansible-test validate-modules checks).
    raw = subprocess.run(
        [str(BIN / "ansible-doc"), "--json", "aitbc.ops.health"],
        env=ansible_env, capture_output=True, text=True, timeout=60, check=True,
    ).stdout  # fmt: skip
    doc = json.loads(raw)["aitbc.ops.health"]["doc"]
    assert set(doc["options"]) == {"probes", "fail_on_unhealthy", "labels"}
    documented = doc["options"]["probes"]["suboptions"]
    spec = argument_spec()
    assert set(documented) == set(spec)
    for key, option in spec.items():
        assert documented[key]["type"] == option["type"], key
        assert documented[key].get("elements") == option.get("elements"), key
        assert documented[key].get("default") == option.get("default"), key
        assert bool(documented[key].get("required")) == bool(option.get("required")), key
    assert doc["attributes"]["check_mode"]["support"] == "full"
    assert doc["attributes"]["diff_mode"]["support"] == "none"


def test_over_real_ssh(ansible_env: dict[str, str], ssh_hosts: HostPool, web: QuietServer) -> None:
    """The module shipped to a real sshd host (own network namespace where allowed) and run there."""
    host = ssh_hosts.host("t1")
    reach = ssh_hosts.gateway or "127.0.0.1"  # the controller, as seen from t1
    probes = [
        {"type": "http", "name": "controller", "url": f"http://{reach}:{web.server_address[1]}/health",
         "json": ["status == ok"]},
        {"type": "tcp", "name": "sshd", "host": host.address, "port": host.port},
        {"type": "process", "name": "sshd-proc", "process": "sshd"},
        {"type": "disk", "path": str(host.state_dir), "min_free_percent": 0.01},
        {"type": "memory", "min_available_percent": 0.01},
        {"type": "load", "max_load_per_cpu": 10_000},
        {"type": "tcp", "name": "closed", "host": host.address, "port": 1, "timeout": 2},
    ]  # fmt: skip
    run = health(
        ansible_env,
        {"probes": probes, "fail_on_unhealthy": False},
        inventory=str(ssh_hosts.inventory),
        pattern="t1",
    )
    status, result = run.result("t1")
    assert status == "SUCCESS", run.stdout + run.stderr
    assert result["failed_probes"] == ["closed"], result["msg"]
    assert result["results"][-1]["detail"] == "connection refused"

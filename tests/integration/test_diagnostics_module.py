"""aitbc.ops.diagnostics through real Ansible (ad-hoc `ansible`, local connection, /usr/bin/python3 on the
"host") against a real redis-server; plus ansible-doc, and one run over real SSH on test host t1."""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
from adhoc import Run, run_module
from ports import free_port
from testhosts import HostPool

pytestmark = pytest.mark.integration

REPO = Path(__file__).resolve().parents[2]
BIN = Path(sys.executable).parent
REDIS_SERVER = "/usr/bin/redis-server"
# Header of ad-hoc (minimal callback) output: "localhost | SUCCESS => {" / "t1 | FAILED! => {".
SECTIONS = ["load", "cpu", "memory", "disk", "sockets", "processes", "logs", "restarts"]

# ------------------------------------------------------------------------------------------- redis


@dataclass
class Redis:
    port: int
    pidfile: Path
    logfile: Path
    proc: subprocess.Popen[bytes]


@pytest.fixture(scope="module")
def redis(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Redis]:
    """A real redis-server on a free port, with a pidfile and a log file; stopped by its PID."""
    if not os.access(REDIS_SERVER, os.X_OK):
        pytest.skip(f"needs {REDIS_SERVER} (Debian package redis-server)")
    workdir = tmp_path_factory.mktemp("diag-redis")
    port, pidfile, logfile = free_port(), workdir / "redis.pid", workdir / "redis.log"
    argv = [REDIS_SERVER, "--port", str(port), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no",
            "--daemonize", "no", "--dir", str(workdir), "--pidfile", str(pidfile),
            "--logfile", str(logfile)]  # fmt: skip
    proc = subprocess.Popen(argv, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    server = Redis(port, pidfile, logfile, proc)
    try:
        deadline = time.monotonic() + 10
        while True:
            assert proc.poll() is None, f"redis-server exited with {proc.returncode}"
            assert time.monotonic() < deadline, "redis-server did not come up within 10 s"
            ready = pidfile.exists() and logfile.exists() and "Ready to accept" in logfile.read_text()
            if ready:
                with socket.create_connection(("127.0.0.1", port), timeout=1):
                    break
            time.sleep(0.05)
        yield server
    finally:
        if proc.poll() is None:
            proc.terminate()
            try:
                proc.wait(timeout=5)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()


# ----------------------------------------------------------------------------------------- ansible


def diagnostics(ansible_env: dict[str, str], args: dict, *options: str, **where: str) -> Run:
    return run_module("aitbc.ops.diagnostics", ansible_env, args, *options, timeout=180, **where)


def redis_service(redis: Redis) -> dict:
    return {
        "name": "redis",
        "pidfile": str(redis.pidfile),
        "port": redis.port,
        "log_file": str(redis.logfile),
    }


# ------------------------------------------------------------------------------------------- tests


def test_bundle_with_real_redis(ansible_env: dict[str, str], redis: Redis, tmp_path: Path) -> None:
    restarts = tmp_path / "restarts.jsonl"
    now = time.time()
    restarts.write_text(
        "".join(
            json.dumps(e) + "\n"
            for e in (
                {"time": now - 3 * 86400, "service": "redis"},
                {"time": now - 3600, "service": "redis"},
                {"time": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(now - 120)), "service": "redis"},
                {"time": now - 60, "service": "coordinator"},
            )
        )
    )
    run = diagnostics(
        ansible_env, {"services": [redis_service(redis)], "log_lines": 20, "restarts_file": str(restarts)}
    )
    status, result = run.result()
    assert status == "SUCCESS", run.stdout + run.stderr
    assert run.rc == 0
    assert result["changed"] is False
    assert result["failed_sections"] == [], result["msg"]
    diag = result["diagnostics"]
    assert diag["sections"] == SECTIONS
    pid = redis.proc.pid
    assert int(redis.pidfile.read_text()) == pid

    # the listening port, owned by the redis pid (found through /proc/PID/fd, no lsof/ss)
    mine = [s for s in diag["sockets"]["listening"] if s["port"] == redis.port]
    assert len(mine) == 1, diag["sockets"]
    expected = {
        "proto": "tcp",
        "address": "127.0.0.1",
        "pid": pid,
        "command": "redis-server",
        "service": "redis",
    }
    assert {key: mine[0][key] for key in expected} == expected

    # its process
    svc = diag["processes"]["services"]["redis"]
    assert svc["found_by"] == "pidfile" and svc["pids"] == [pid] and svc["port_listening"] is True
    (proc,) = svc["processes"]
    assert proc["command"] == "redis-server"
    assert proc["rss_bytes"] > 1024 * 1024
    assert proc["threads"] >= 1
    assert proc["open_files"] >= 4  # stdin/out/err, the listening socket, epoll, log
    assert proc["uptime_s"] < 600
    assert f"127.0.0.1:{redis.port}" in proc["cmdline"]

    # its log and restarts
    log = diag["logs"]["services"]["redis"]
    assert log["source"] == "file" and 0 < len(log["lines"]) <= 20
    assert any("Ready to accept connections" in line for line in log["lines"])
    assert diag["restarts"]["services"]["redis"]["last_24h"] == 2

    # system sections
    assert diag["load"]["cpus"] >= 1
    assert 0 <= diag["cpu"]["busy_percent"] <= 100
    assert diag["memory"]["total_bytes"] > 0
    assert any(m["mount"] == "/" for m in diag["disk"]["mounts"])

    summary = result["summary"]
    assert f"127.0.0.1:{redis.port} redis-server[{pid}]" in summary
    assert f"pid {pid} redis-server" in summary
    assert "redis: 2 in the last 24 h" in summary
    assert diag["duration_s"] < 3, diag["timings_ms"]
    print(f"\nansible run {run.seconds:.2f} s, collection {diag['duration_s']:.3f} s")
    print(f"sections (ms): {diag['timings_ms']}")


def test_check_mode_collects_the_same(ansible_env: dict[str, str], redis: Redis) -> None:
    run = diagnostics(
        ansible_env, {"services": [redis_service(redis)], "include": ["sockets", "processes"]}, "--check"
    )
    status, result = run.result()
    assert status == "SUCCESS", run.stdout + run.stderr
    assert result["changed"] is False
    diag = result["diagnostics"]
    assert diag["sections"] == ["sockets", "processes"]
    assert "load" not in diag
    assert diag["processes"]["services"]["redis"]["pids"] == [redis.proc.pid]


def test_failing_section_does_not_fail_the_task(
    ansible_env: dict[str, str], redis: Redis, tmp_path: Path
) -> None:
    args = {
        "services": [{"name": "redis", "process": "redis-server", "port": redis.port}],
        "include": ["memory", "processes", "restarts"],
        "restarts_file": str(tmp_path / "missing.jsonl"),
    }
    run = diagnostics(ansible_env, args)
    status, result = run.result()
    assert status == "SUCCESS", run.stdout + run.stderr
    diag = result["diagnostics"]
    assert diag["restarts"] == {"error": f"No such file or directory: {tmp_path / 'missing.jsonl'}"}
    assert result["failed_sections"] == ["restarts"]
    assert "restarts: ERROR: No such file or directory" in result["summary"]
    assert redis.proc.pid in diag["processes"]["services"]["redis"]["pids"]
    assert diag["memory"]["total_bytes"] > 0


@pytest.mark.parametrize(
    ("args", "message"),
    [
        ({"services": [{"name": "a"}, {"name": "a"}]}, "services[2]: duplicate service name 'a'"),
        ({"include": ["gpu"]}, "include"),
        ({"log_lines": 20000}, "log_lines must be between 0 and 10000, got 20000"),
        ({"services": [{"pidfile": "/x"}]}, "name"),
    ],
)
def test_bad_input_fails_with_one_message(ansible_env: dict[str, str], args: dict, message: str) -> None:
    run = diagnostics(ansible_env, args)
    status, result = run.result()
    assert status == "FAILED!", run.stdout
    assert message in result["msg"]
    assert "\n" not in result["msg"]


def test_ansible_doc(ansible_env: dict[str, str]) -> None:
    text = subprocess.run(
        [str(BIN / "ansible-doc"), "aitbc.ops.diagnostics"],
        env=ansible_env, capture_output=True, text=True, timeout=60,
    )  # fmt: skip
    assert text.returncode == 0, text.stderr
    for word in ("services", "log_lines", "include", "restarts_file", "section_timeout", "journal_unit",
                 "RETURN VALUES", "EXAMPLES", "summary"):  # fmt: skip
        assert word in text.stdout, word
    raw = subprocess.run(
        [str(BIN / "ansible-doc"), "--json", "aitbc.ops.diagnostics"],
        env=ansible_env, capture_output=True, text=True, timeout=60, check=True,
    ).stdout  # fmt: skip
    doc = json.loads(raw)["aitbc.ops.diagnostics"]["doc"]
    assert set(doc["options"]) == {"services", "log_lines", "include", "restarts_file", "section_timeout"}
    assert set(doc["options"]["services"]["suboptions"]) == {
        "name", "pidfile", "process", "port", "log_file", "journal_unit", "unit",
    }  # fmt: skip
    assert doc["options"]["include"]["choices"] == SECTIONS
    assert doc["attributes"]["check_mode"]["support"] == "full"


def test_over_real_ssh(ansible_env: dict[str, str], ssh_hosts: HostPool) -> None:
    """The module shipped to a real sshd host (own network namespace where allowed) and run there: its sshd
    shows up among the listening sockets, with its process."""
    host = ssh_hosts.host("t1")
    service = {"name": "sshd", "port": host.port, "log_file": str(host.sshd_dir / "sshd.log")}
    with socket.socket() as controller_socket:  # listening in the controller's network namespace
        controller_socket.bind(("0.0.0.0", 0))
        controller_socket.listen(1)
        controller_port = controller_socket.getsockname()[1]
        run = diagnostics(
            ansible_env,
            {"services": [service], "log_lines": 5},
            inventory=str(ssh_hosts.inventory),
            pattern="t1",
        )
    status, result = run.result("t1")
    assert status == "SUCCESS", run.stdout + run.stderr
    assert result["failed_sections"] == [], result["msg"]
    diag = result["diagnostics"]
    listening = [s for s in diag["sockets"]["listening"] if s["port"] == host.port and s["proto"] == "tcp"]
    assert listening, diag["sockets"]
    sock = listening[0]
    assert sock["address"] in (host.address, "0.0.0.0")
    assert sock["command"] == "sshd", sock
    assert sock["service"] == "sshd"
    if host.sshd_pid is not None:
        assert sock["pid"] == host.sshd_pid
    svc = diag["processes"]["services"]["sshd"]
    assert svc["found_by"] == "port" and svc["pids"] == [sock["pid"]]
    assert svc["processes"][0]["rss_bytes"] > 0
    assert f"{sock['address']}:{host.port} sshd[{sock['pid']}]" in result["summary"]
    ports = {s["port"] for s in diag["sockets"]["listening"]}
    if ssh_hosts.mode == "netns":
        # the module ran inside t1's network namespace: the controller's sockets are not there
        assert controller_port not in ports
    else:
        assert controller_port in ports
    print(
        f"\nssh run {run.seconds:.2f} s, collection {diag['duration_s']:.3f} s, sections {diag['timings_ms']}"
    )

"""aitbc.ops.service over real SSH (ansible-playbook, not local): the supervisor backend against a
supervisord running inside test host t2's network namespace, and the process backend on t3.
Every daemon started here is killed by pid in a finalizer."""

from __future__ import annotations

import contextlib
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import yaml
from adhoc import HEADER
from ports import free_port

pytestmark = pytest.mark.integration

BIN = Path(sys.executable).parent
ENV = {
    **os.environ,
    "ANSIBLE_CONFIG": str(Path(__file__).resolve().parents[2] / "ansible.cfg"),
    "ANSIBLE_CALLBACKS_ENABLED": "ansible.builtin.minimal",  # empty crashes ansible-core 2.19
    "ANSIBLE_STDOUT_CALLBACK": "ansible.builtin.minimal",  # "HOST | STATUS => {json}" per task
    "ANSIBLE_NOCOLOR": "1",
}


def kill(pid: int | None, sig: int = signal.SIGKILL) -> None:
    if pid:
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, sig)


def play(pool, host: str, tmp: Path, steps: list[dict]) -> list[dict]:
    """Run one aitbc.ops.service task per step on `host` over SSH; return each task's result."""
    tasks = [{"name": f"step {i}", "aitbc.ops.service": s} for i, s in enumerate(steps)]
    book = tmp / f"{host}-{time.monotonic_ns()}.yml"
    book.write_text(yaml.safe_dump([{"hosts": "all", "gather_facts": False, "tasks": tasks}]))
    argv = [str(BIN / "ansible-playbook"), "-i", str(pool.inventory), "--limit", host, str(book)]
    proc = subprocess.run(argv, env=ENV, capture_output=True, text=True, timeout=180, check=False)
    assert proc.returncode == 0, proc.stdout[-4000:] + proc.stderr
    decoder = json.JSONDecoder()
    results = [decoder.raw_decode(proc.stdout, m.end())[0] for m in HEADER.finditer(proc.stdout)]
    assert len(results) == len(steps)
    return results


def in_host_netns(pool, pid: int) -> bool:
    """True if pid runs in another network namespace than the test (always true in loopback mode)."""
    return pool.mode != "netns" or os.readlink(f"/proc/{pid}/ns/net") != os.readlink("/proc/self/ns/net")


def test_supervisor_backend_over_ssh(ssh_hosts, tmp_path: Path, request: pytest.FixtureRequest) -> None:
    work = ssh_hosts.host("t2").state_dir / "sv"
    work.mkdir(exist_ok=True)
    port, conf, sock = free_port(), work / "supervisord.conf", work / "sv.sock"
    conf.write_text(
        f"[unix_http_server]\nfile={sock}\n\n"
        f"[supervisord]\nuser=root\nlogfile={work}/supervisord.log\npidfile={work}/supervisord.pid\n"
        f"childlogdir={work}\n\n"
        "[rpcinterface:supervisor]\n"
        "supervisor.rpcinterface_factory = supervisor.rpcinterface:make_main_rpcinterface\n\n"
        f"[supervisorctl]\nserverurl=unix://{sock}\n\n"
        f"[program:web]\ncommand=/usr/bin/python3 -m http.server {port} --bind 127.0.0.1\n"
        f"directory={work}\nautostart=false\nstartsecs=1\nstopwaitsecs=5\n"
        f"stdout_logfile={work}/web.log\nredirect_stderr=true\n"
    )
    pids: list[int] = []

    def cleanup() -> None:
        with contextlib.suppress(OSError, ValueError):
            kill(int((work / "supervisord.pid").read_text()), signal.SIGTERM)  # stops its programs
        time.sleep(1)
        for pid in pids:
            kill(pid)

    request.addfinalizer(cleanup)
    cmd = f"setsid supervisord -c {conf} </dev/null >{work}/out.log 2>&1"
    ssh_hosts.run("t2", cmd, check=True)
    ctl = f"supervisorctl -c {conf} status web"
    deadline = time.monotonic() + 15
    while "STOPPED" not in ssh_hosts.run("t2", ctl).stdout:
        assert time.monotonic() < deadline, (work / "out.log").read_text()
        time.sleep(0.2)
    assert in_host_netns(ssh_hosts, int((work / "supervisord.pid").read_text()))

    base = {"name": "web", "backend": "supervisor", "supervisor_config": str(conf)}
    probe = {"probes": [{"type": "http", "url": f"http://127.0.0.1:{port}/"}], "timeout": 15}
    steps = [base] + [{**base, "state": st} for st in ("started", "started", "restarted", "stopped")]
    steps[1]["wait_healthy"] = probe
    status, start, again, restart, stop = play(ssh_hosts, "t2", tmp_path, steps)
    pids += [r["service"]["pid"] for r in (start, restart) if r["service"]["pid"]]
    assert not status["changed"] and status["service"]["active"] is False, status
    assert status["service"]["detail"].startswith("STOPPED")
    assert start["changed"] and start["service"]["active"] and start["service"]["pid"], start
    assert start["probes"] and all(p["ok"] for p in start["probes"]), start["probes"]
    assert not again["changed"] and again["service"]["pid"] == start["service"]["pid"]
    assert restart["changed"] and restart["service"]["pid"] not in (None, start["service"]["pid"])
    assert stop["changed"] and stop["service"]["active"] is False
    assert "STOPPED" in ssh_hosts.run("t2", ctl).stdout


def test_process_backend_over_ssh(ssh_hosts, tmp_path: Path, request: pytest.FixtureRequest) -> None:
    root = ssh_hosts.host("t3").state_dir / "proc"
    port, pidfile = free_port(), root / "web.pid"
    args = {
        "name": "web3",
        "backend": "process",
        "command": f"/usr/bin/python3 -m http.server {port} --bind 127.0.0.1",
        "pidfile": str(pidfile),
        "log_file": str(root / "web.log"),
        "chdir": str(ssh_hosts.host("t3").state_dir),
        "state": "started",
    }
    pids: list[int] = []

    def cleanup() -> None:
        with contextlib.suppress(OSError, ValueError):
            pids.append(int(pidfile.read_text()))
        for pid in pids:
            kill(pid)

    request.addfinalizer(cleanup)
    start, again = play(ssh_hosts, "t3", tmp_path, [args, args])
    pid = start["service"]["pid"]
    pids.append(pid)
    assert start["changed"] and start["service"]["active"] and start["service"]["backend"] == "process"
    assert not again["changed"] and again["service"]["pid"] == pid
    assert int(pidfile.read_text()) == pid and in_host_netns(ssh_hosts, pid)

    kill(int(pidfile.read_text()))
    time.sleep(0.3)
    status, back = play(ssh_hosts, "t3", tmp_path, [{**args, "state": "status"}, args])
    pids.append(back["service"]["pid"])
    assert not status["changed"] and status["service"]["active"] is False, status
    assert back["changed"] and back["service"]["active"] and back["service"]["pid"] != pid
    assert int(pidfile.read_text()) == back["service"]["pid"]

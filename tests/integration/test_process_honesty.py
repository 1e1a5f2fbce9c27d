"""Honest service state with real processes through real Ansible (local connection): a process-backend
service whose main process dies while a forked child keeps its listening port (nginx's orphaned worker after
a `kill -9` of its master) is reported as "port N held by pid M, not the service" by `status` and by the
`service` probe, while an http probe is still answered by the orphan; `started` stops such leftovers of the
service's previous daemon (its session), but refuses while a stranger holds the port (and leaves it alone); a
program that dies 2 s after its start fails the start with its exit status instead of "running, changed".
Every process started here is killed by pid."""

from __future__ import annotations

import contextlib
import os
import re
import shlex
import signal
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest
from adhoc import run_module
from ports import free_port

pytestmark = pytest.mark.integration

PY = "/usr/bin/python3" if Path("/usr/bin/python3").exists() else sys.executable

# Serves HTTP on PORT; with --orphan, forks a child that keeps serving and the parent dies at once.
SERVER = r"""
import http.server, os, sys, time

port = int(sys.argv[1])

class Quiet(http.server.BaseHTTPRequestHandler):
    def do_GET(self):
        self.send_response(200)
        self.end_headers()
        self.wfile.write(b"ok")

    def log_message(self, *args):
        pass

server = http.server.HTTPServer(("127.0.0.1", port), Quiet)
print("listening", port, flush=True)
if "--orphan" in sys.argv:
    if os.fork() == 0:
        server.serve_forever()
    time.sleep(0.3)
    print("parent exits, the child keeps the port", flush=True)
    os._exit(0)
server.serve_forever()
"""


def alive(pid: int) -> bool:
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rpartition(")")[2].split()[0]
    except (OSError, IndexError):
        return False
    return state not in ("Z", "X")


def pids_with(marker: str) -> list[int]:
    found = []
    for entry in os.listdir("/proc"):
        if entry.isdigit() and int(entry) != os.getpid():
            with contextlib.suppress(OSError):
                if marker.encode() in Path(f"/proc/{entry}/environ").read_bytes():
                    found.append(int(entry))
    return found


@pytest.fixture
def marker() -> Iterator[str]:
    """A mark in the environment of every process this test starts; they are killed by pid at the end."""
    mark = f"aitbc-honesty-{uuid.uuid4().hex[:10]}"
    yield mark
    for pid in pids_with(mark):
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, signal.SIGKILL)


def service_args(root: Path, marker: str, name: str, command: str, port: int | None = None) -> dict:
    args = {
        "name": name,
        "backend": "process",
        "command": command,
        "pidfile": str(root / "run" / f"{name}.pid"),
        "log_file": str(root / "log" / f"{name}.log"),
        "env": {"AITBC_MARK": marker},
    }
    if port:
        args["port"] = port
    return args


def service(ansible_env: dict[str, str], args: dict, state: str) -> tuple[str, dict]:
    return run_module("aitbc.ops.service", ansible_env, dict(args, state=state)).result()


def probes(ansible_env: dict[str, str], name: str, args: dict, port: int) -> dict[str, dict]:
    """The `service` probe of the service and an http probe of its port, by type."""
    service_probe = {
        "type": "service",
        "name": f"{name} running",
        "service": name,
        "backend": "process",
        **{key: args[key] for key in ("pidfile", "command", "port")},
    }
    http_probe = {"type": "http", "name": f"{name} http", "service": name, "url": f"http://127.0.0.1:{port}/"}
    run = run_module(
        "aitbc.ops.health", ansible_env, {"probes": [service_probe, http_probe], "fail_on_unhealthy": False}
    )
    _status, result = run.result()
    return {probe["type"]: probe for probe in result["results"]}


def test_the_service_itself_on_its_port_is_healthy(
    ansible_env: dict[str, str], tmp_path: Path, marker: str
) -> None:
    script = tmp_path / "server.py"
    script.write_text(SERVER)
    port = free_port()
    args = service_args(tmp_path, marker, "web-ok", f"{PY} {shlex.quote(str(script))} {port}", port)
    status, result = service(ansible_env, args, "started")
    assert status == "CHANGED", result
    pid = result["service"]["pid"]
    status, result = service(ansible_env, args, "status")
    assert result["service"]["active"] and result["service"]["pid"] == pid
    assert "port_held_by" not in result["service"], result["service"]
    found = probes(ansible_env, "web-ok", args, port)
    assert found["service"]["ok"], found["service"]
    assert found["service"]["detail"] == f"running (pid {pid})"
    assert found["http"]["ok"]
    status, result = service(ansible_env, args, "stopped")
    assert status == "CHANGED" and not alive(pid)


def test_an_orphan_on_the_port_is_reported_and_never_taken_for_the_service(
    ansible_env: dict[str, str], tmp_path: Path, marker: str
) -> None:
    script = tmp_path / "server.py"
    script.write_text(SERVER)
    port = free_port()
    name = "web-orphan"
    args = service_args(tmp_path, marker, name, f"{PY} {shlex.quote(str(script))} {port} --orphan", port)
    args["settle"] = 0.1  # the parent dies at 0.3 s: let this start succeed, as nginx's master did
    status, result = service(ansible_env, args, "started")
    assert status == "CHANGED", result
    parent = result["service"]["pid"]
    deadline = time.monotonic() + 10
    while alive(parent) and time.monotonic() < deadline:
        time.sleep(0.05)
    assert not alive(parent)
    [orphan] = [pid for pid in pids_with(marker) if pid != parent]

    status, result = service(ansible_env, args, "status")
    held = f"port {port} held by pid {orphan} (python3), not the service"
    assert not result["service"]["active"]
    assert result["service"]["detail"] == f"stale pidfile (pid {parent} is not running); {held}"
    assert result["service"]["port_held_by"] == {"pid": orphan, "comm": "python3"}

    found = probes(ansible_env, name, args, port)
    assert found["http"]["ok"], found["http"]  # the orphan answers HTTP ...
    assert not found["service"]["ok"]  # ... but the service is not running
    assert (
        found["service"]["detail"]
        == f"not running (process): stale pidfile (pid {parent} is not running); {held}"
    )

    # a start stops the service's own leftovers (the previous daemon's session), then runs a new daemon
    plain = dict(args, command=f"{PY} {shlex.quote(str(script))} {port}")
    del plain["settle"]
    status, result = service(ansible_env, plain, "started")
    assert status == "CHANGED", result
    assert f"stopped leftovers of the previous daemon (session {parent}) holding port {port}" in result["msg"]
    assert not alive(orphan)
    new = result["service"]["pid"]
    found = probes(ansible_env, name, plain, port)
    assert found["service"]["ok"] and found["service"]["detail"] == f"running (pid {new})", found["service"]
    status, result = service(ansible_env, plain, "stopped")
    assert status == "CHANGED" and not alive(new)


def test_a_stranger_on_the_port_is_never_killed(
    ansible_env: dict[str, str], tmp_path: Path, marker: str
) -> None:
    script = tmp_path / "server.py"
    script.write_text(SERVER)
    port = free_port()
    stranger = subprocess.Popen(
        [PY, str(script), str(port)], env=dict(os.environ, AITBC_MARK=marker), stdout=subprocess.PIPE
    )
    try:
        assert stranger.stdout is not None and stranger.stdout.readline().startswith(b"listening")
        args = service_args(tmp_path, marker, "web-stranger", f"{PY} {shlex.quote(str(script))} {port}", port)
        held = f"port {port} held by pid {stranger.pid} (python3), not the service"
        status, result = service(ansible_env, args, "status")
        assert result["service"]["detail"] == f"no pidfile; {held}"
        status, result = service(ansible_env, args, "started")
        assert status == "FAILED!", result
        assert result["msg"] == f"cannot start web-stranger: {held}"
        assert not Path(args["pidfile"]).exists()  # nothing was spawned
        assert alive(stranger.pid)  # a stranger is reported, never killed
    finally:
        stranger.kill()
        stranger.wait()
        stranger.stdout.close()


def test_a_program_that_dies_after_two_seconds_fails_its_start(
    ansible_env: dict[str, str], tmp_path: Path, marker: str
) -> None:
    code = (
        "import sys, time; print('up', flush=True); time.sleep(2); "
        "print('bind: address in use', flush=True); sys.exit(1)"
    )
    args = service_args(tmp_path, marker, "dies-late", f"{PY} -c {shlex.quote(code)}")
    started = time.monotonic()
    status, result = service(ansible_env, args, "started")
    assert status == "FAILED!", result
    assert re.search(
        r"^dies-late exited with status 1 after 2\.\d s; last lines of \S+: up \| bind: address in use$",
        result["msg"],
    ), result["msg"]
    assert result["log_tail"] == ["up", "bind: address in use"]
    assert time.monotonic() - started < 60
    assert not Path(args["pidfile"]).exists()
    status, result = service(ansible_env, args, "status")
    assert not result["service"]["active"]

"""plugins/module_utils/service/ports.py and probes/service.py: who holds a service's port (real sockets of
this process and its children), the service probe's options and its verdict on a process service."""

from __future__ import annotations

import os
import shlex
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from ansible_collections.aitbc.ops.plugins.module_utils._procs import read_stat
from ansible_collections.aitbc.ops.plugins.module_utils.probes.base import ProbeConfigError
from ansible_collections.aitbc.ops.plugins.module_utils.probes.registry import build_probe, run_probes
from ansible_collections.aitbc.ops.plugins.module_utils.service.ports import (
    Holder,
    add_port_check,
    belongs_to,
    port_stranger,
)
from ansible_collections.aitbc.ops.plugins.module_utils.service.spec import ServiceError, ServiceSpec
from ansible_collections.aitbc.ops.plugins.module_utils.service_manage import manage_service

pytestmark = pytest.mark.skipif(not os.path.isdir("/proc/self/fd"), reason="needs Linux /proc")


@pytest.fixture
def listener() -> Iterator[int]:
    """A TCP port this test process listens on."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        sock.listen()
        yield sock.getsockname()[1]


@pytest.fixture
def child() -> Iterator[int]:
    proc = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)"])
    try:
        yield proc.pid
    finally:
        proc.kill()
        proc.wait()


def test_holder_words() -> None:
    assert Holder(42, "nginx").describe(8080) == "port 8080 held by pid 42 (nginx), not the service"
    assert (
        Holder(None, None).describe(80) == "port 80 held by a process this user cannot see, not the service"
    )
    assert Holder(42, "nginx").to_dict() == {"pid": 42, "comm": "nginx"}


def test_a_port_held_by_another_process_is_a_stranger(listener: int) -> None:
    me = os.getpid()
    comm = (read_stat(me) or {}).get("comm")
    assert port_stranger(listener, None) == Holder(me, comm)  # no service process: anyone is a stranger
    assert port_stranger(listener, me) is None  # the service itself
    assert port_stranger(None, None) is None


def test_a_closed_port_has_no_stranger() -> None:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]  # bound, not listening
        assert port_stranger(port, None) is None


def test_descendants_belong_to_the_service(child: int) -> None:
    assert belongs_to(child, os.getpid())
    assert belongs_to(os.getpid(), os.getpid())
    assert not belongs_to(os.getpid(), child)


def test_add_port_check_names_the_stranger(listener: int) -> None:
    status = add_port_check({"active": False, "pid": None, "detail": "no pidfile"}, listener)
    assert status["detail"].startswith(f"no pidfile; port {listener} held by pid {os.getpid()} (")
    assert status["port_held_by"]["pid"] == os.getpid()
    mine = add_port_check({"active": True, "pid": os.getpid(), "detail": "running"}, listener)
    assert mine == {"active": True, "pid": os.getpid(), "detail": "running"}


def test_spec_keeps_start_timeout_as_the_settle_time() -> None:
    assert ServiceSpec.from_params({"name": "a"}).settle == 3.0
    spec = ServiceSpec.from_params({"name": "a", "start_timeout": 0.5})
    assert spec.settle == spec.start_timeout == 0.5
    assert ServiceSpec.from_params({"name": "a", "start_timeout": 0.5, "settle": 2}).settle == 2
    with pytest.raises(ServiceError, match="port 70000 is not between 1 and 65535"):
        ServiceSpec.from_params({"name": "a", "port": 70000})


@pytest.mark.parametrize(
    ("spec", "message"),
    [
        ({"type": "service"}, "service probes need service"),
        ({"type": "service", "service": "a", "backend": "upstart"}, "unknown backend 'upstart'"),
        ({"type": "service", "service": "a", "port": 0}, "port 0 is not between 1 and 65535"),
        ({"type": "service", "service": "a", "url": "http://x/"}, "option(s) url do not apply to service"),
    ],
)
def test_service_probe_definitions(spec: dict, message: str) -> None:
    with pytest.raises(ProbeConfigError) as info:
        build_probe(spec)
    assert message in str(info.value)


def test_service_probe_of_a_process_service(tmp_path: Path, listener: int) -> None:
    pidfile = tmp_path / "web.pid"
    base = {"type": "service", "service": "web", "backend": "process", "pidfile": str(pidfile)}
    probe = build_probe(dict(base, name="web running", port=listener, command="nginx -g 'daemon off;'"))
    [result] = run_probes([probe])
    assert result["name"] == "web running" and result["service"] == "web" and not result["ok"]
    held = f"port {listener} held by pid {os.getpid()}"
    assert result["detail"].startswith(f"not running (process): no pidfile; {held}")
    assert result["data"]["port_held_by"]["pid"] == os.getpid()

    # this process as the service, by its pidfile: running, and its own port is no stranger
    pidfile.write_text(f"{os.getpid()}\n")
    os.utime(pidfile, (time.time(), time.time()))
    [result] = run_probes([build_probe(dict(base, port=listener))])
    assert result["name"] == "service:web"
    assert result["ok"], result
    assert result["detail"] == f"running (pid {os.getpid()})"
    assert result["data"]["backend"] == "process" and result["data"]["pid"] == os.getpid()


def test_a_start_whose_pidfile_is_taken_over_fails_and_stops_the_process(tmp_path: Path) -> None:
    pidfile = tmp_path / "run" / "hijack.pid"
    code = f"import time; time.sleep(0.2); open({str(pidfile)!r}, 'w').write('1\\n'); time.sleep(60)"
    params = {
        "name": "hijack",
        "backend": "process",
        "command": f"{sys.executable} -c {shlex.quote(code)}",
        "pidfile": str(pidfile),
        "log_file": str(tmp_path / "hijack.log"),
        "settle": 1.0,
        "state": "started",
    }
    with pytest.raises(ServiceError) as info:
        manage_service(params)
    assert info.value.msg.startswith("hijack (pid ")
    assert f"is not the running service after 1 s: its pidfile {pidfile} is gone or stale" in info.value.msg
    spawned = int(info.value.msg.split("(pid ", 1)[1].split(")", 1)[0])
    assert (read_stat(spawned) or {}).get("state") in (None, "Z", "X")  # stopped, not left behind
    assert not pidfile.exists()


def test_start_refuses_while_a_stranger_holds_the_port(tmp_path: Path, listener: int) -> None:
    params = {
        "name": "web",
        "backend": "process",
        "command": f"{sys.executable} -c 'import time; time.sleep(60)'",
        "pidfile": str(tmp_path / "web.pid"),
        "port": listener,
        "state": "started",
    }
    with pytest.raises(ServiceError) as info:
        manage_service(params)
    assert info.value.msg.startswith(f"cannot start web: port {listener} held by pid {os.getpid()} (")
    assert not (tmp_path / "web.pid").exists()  # nothing was spawned

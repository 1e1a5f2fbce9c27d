"""plugins/module_utils/service/sysv.py against a real init script in /etc/init.d (root only), through
service(8) on a host without systemd as PID 1."""

from __future__ import annotations

import os
import shutil
import signal
import sys
import time
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(REPO / "collections"))
from ansible_collections.aitbc.ops.plugins.module_utils._procs import pid_alive, read_cmdline  # noqa: E402
from ansible_collections.aitbc.ops.plugins.module_utils.service.spec import ServiceError, ServiceSpec  # noqa: E402
from ansible_collections.aitbc.ops.plugins.module_utils.service_manage import manage_service, select_backend  # noqa: E402

pytestmark = pytest.mark.integration


def alive(pid: int | None) -> bool:
    return bool(pid) and pid_alive(pid)


def _int(text: str) -> int | None:
    text = text.strip()
    return int(text) if text.isdigit() else None


def wait_for(predicate: Callable[[], bool], timeout: float = 5.0) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return True
        time.sleep(0.05)
    return predicate()


@pytest.fixture
def init_script(tmp_path: Path) -> Iterator[tuple[str, Path]]:
    if os.geteuid() != 0 or not os.access("/etc/init.d", os.W_OK):
        pytest.skip("needs root to write /etc/init.d")
    if not shutil.which("service"):
        pytest.skip("no service(8) command")
    if os.path.isdir("/run/systemd/system"):
        pytest.skip("on a systemd host service(8) redirects to systemctl")
    name = f"aitbc-ops-test-{uuid.uuid4().hex[:8]}"
    pidfile = tmp_path / f"{name}.pid"
    script = Path("/etc/init.d") / name
    script.write_text(
        f"""#!/bin/sh
PIDFILE={pidfile}
running() {{ [ -f "$PIDFILE" ] && kill -0 "$(cat "$PIDFILE")" 2>/dev/null; }}
case "$1" in
  start) running && exit 0
         setsid sleep 300 </dev/null >/dev/null 2>&1 &
         echo $! > "$PIDFILE" ;;
  stop) running && kill "$(cat "$PIDFILE")"; rm -f "$PIDFILE" ;;
  restart) "$0" stop; "$0" start ;;
  reload) running || exit 7 ;;
  status) running && {{ echo "{name} is running"; exit 0; }}; echo "{name} is not running"; exit 3 ;;
  *) echo "usage: $0 start|stop|restart|reload|status"; exit 2 ;;
esac
"""
    )
    script.chmod(0o755)
    try:
        yield name, pidfile
    finally:
        pid = _int(pidfile.read_text()) if pidfile.exists() else None
        if pid and alive(pid) and read_cmdline(pid)[:1] == ["sleep"]:
            os.kill(pid, signal.SIGKILL)
        script.unlink()


def test_sysv_backend_with_a_real_init_script(init_script: tuple[str, Path]) -> None:
    name, pidfile = init_script
    params = {"name": name, "pidfile": str(pidfile)}  # auto: no command, the pidfile would mean process
    assert manage_service(dict(params, backend="sysv"))["service"]["active"] is False
    assert select_backend(ServiceSpec(name=name)).name == "sysv"

    started = manage_service(dict(params, backend="sysv", state="started"))
    assert started["changed"] is True
    svc = started["service"]
    assert svc["backend"] == "sysv" and svc["active"] is True and svc["pid"] == _int(pidfile.read_text())
    assert svc["detail"] == f"{name} is running"
    assert manage_service(dict(params, backend="sysv", state="started"))["changed"] is False
    pid = svc["pid"]
    stopped = manage_service(dict(params, backend="sysv", state="stopped"))
    assert stopped["changed"] is True and stopped["service"]["active"] is False
    assert wait_for(lambda: not alive(pid))
    with pytest.raises(ServiceError, match=r"^init script not found: /etc/init.d/aitbc-no-such"):
        manage_service({"name": "aitbc-no-such", "backend": "sysv"})

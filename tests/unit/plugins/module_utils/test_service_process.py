"""plugins/module_utils/service/process.py and manage.py: the process backend end to end with real daemons
(python3 sleepers and http.server) in tmp_path, check mode, diff and the health gate, and the command-line
helpers on fixed input. Every process a test starts is killed by pid in a finalizer."""

from __future__ import annotations

import os
import re
import shlex
import signal
import socket
import subprocess
import sys
import time
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from ansible_collections.aitbc.ops.plugins.module_utils import env_file as ef
from ansible_collections.aitbc.ops.plugins.module_utils._procs import (
    pid_alive,
    proc_uptime,
    read_cmdline,
    read_stat,
)
from ansible_collections.aitbc.ops.plugins.module_utils._text import tail_file
from ansible_collections.aitbc.ops.plugins.module_utils.service.process import (
    OLDER_COMMAND,
    _reap,
    cmdline_matches,
    needs_shell,
    parse_env_text,
    read_env_file,
)
from ansible_collections.aitbc.ops.plugins.module_utils.service.registry import BACKENDS
from ansible_collections.aitbc.ops.plugins.module_utils.service.spec import ServiceError, ServiceSpec
from ansible_collections.aitbc.ops.plugins.module_utils.service_manage import (
    NO_LOG_PLACEHOLDER,
    manage_service,
    redacted_params,
    wait_healthy,
)

# Managed hosts run daemons with /usr/bin/python3; fall back to the test interpreter elsewhere.
PY = "/usr/bin/python3" if Path("/usr/bin/python3").exists() else sys.executable


def sleeper_code(marker: str, *, ignore_term: bool = False, children: int = 0) -> str:
    """A daemon in python: prints 'ready', logs TERM/HUP, optionally ignores TERM or forks children."""
    lines = [
        "import os, signal, subprocess, sys, time",
        f"MARK = {marker!r}",
        "def term(*args):",
        "    print('got TERM', flush=True)",
        "    sys.exit(0)",
        f"signal.signal(signal.SIGTERM, signal.SIG_IGN if {ignore_term!r} else term)",
        "signal.signal(signal.SIGHUP, lambda *_: print('got HUP', flush=True))",
        f"kids = [subprocess.Popen(['sleep', '300']) for _ in range({children})]",
        "print('ready', os.environ.get('SVC_A', '-'), os.environ.get('SVC_B', '-'), flush=True)",
        "print('stderr line', file=sys.stderr, flush=True)",
        "while True:",
        "    time.sleep(0.2)",
    ]
    return "\n".join(lines)


def alive(pid: int | None) -> bool:
    return bool(pid) and pid_alive(pid)


def wait_for(predicate: Callable[[], bool], timeout: float = 5.0) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return True
        time.sleep(0.05)
    return predicate()


class Daemons:
    """Builds service params in tmp_path and kills, by pid, whatever they started."""

    def __init__(self, tmp_path: Path):
        self.dir = tmp_path
        self.marker = f"aitbc-svc-test-{uuid.uuid4().hex[:10]}"
        self.pids: set[int] = set()

    def params(self, name: str = "sleeper", code: str | None = None, **extra) -> dict:
        code = code if code is not None else sleeper_code(self.marker)
        params = {
            "name": name,
            "backend": "process",
            "command": f"{PY} -c {shlex.quote(code)}",
            "pidfile": str(self.dir / "run" / f"{name}.pid"),
            "log_file": str(self.dir / "log" / f"{name}.log"),
            "start_timeout": 0.3,
            "stop_timeout": 5,
        }
        params.update(extra)
        # Marks every daemon so the finalizer kills only what this test started.
        params["env"] = {"AITBC_MARK": self.marker, **(extra.get("env") or {})}
        return params

    def run(self, params: dict, state: str, check_mode: bool = False) -> dict:
        result = manage_service(dict(params, state=state), check_mode=check_mode)
        if result["service"]["pid"]:
            self.pids.add(result["service"]["pid"])
        return result

    def ours(self, pid: int) -> bool:
        return self.marker in " ".join(read_cmdline(pid)) or self.marker in _environ(pid)

    def kill_all(self) -> None:
        for pidfile in self.dir.glob("**/*.pid"):
            pid = _int(pidfile.read_text())
            if pid:
                self.pids.add(pid)
        for pid in sorted(self.pids):
            if pid == os.getpid() or not alive(pid) or not self.ours(pid):
                continue
            st = read_stat(pid)
            try:
                if st and st["pgrp"] == pid and pid != os.getpgrp():
                    os.killpg(pid, signal.SIGKILL)
                else:
                    os.kill(pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
            _reap(pid)


def _int(text: str) -> int | None:
    text = text.strip()
    return int(text) if text.isdigit() else None


def _environ(pid: int) -> str:
    try:
        return Path(f"/proc/{pid}/environ").read_bytes().decode("utf-8", "replace")
    except OSError:
        return ""


@pytest.fixture
def daemons(tmp_path: Path) -> Iterator[Daemons]:
    d = Daemons(tmp_path)
    try:
        yield d
    finally:
        d.kill_all()


def read_pidfile(params: dict) -> int | None:
    path = Path(params["pidfile"])
    return _int(path.read_text()) if path.exists() else None


# --------------------------------------------------------------------------- process backend, real daemons


def test_start_writes_pidfile_and_log_then_start_again_changes_nothing(daemons: Daemons) -> None:
    params = daemons.params()
    first = daemons.run(params, "started")
    assert first["changed"] is True
    svc = first["service"]
    assert svc["name"] == "sleeper" and svc["backend"] == "process" and svc["active"] is True
    pid = svc["pid"]
    assert read_pidfile(params) == pid and alive(pid)
    # Atomic write: no temporary files left beside the pidfile.
    leftovers = [p.name for p in Path(params["pidfile"]).parent.iterdir() if p.name.startswith(".")]
    assert leftovers == []
    assert wait_for(lambda: "ready" in Path(params["log_file"]).read_text())
    log = Path(params["log_file"]).read_text()
    assert "stderr line" in log  # stderr goes to the same log

    again = daemons.run(params, "started")
    assert again["changed"] is False
    assert again["service"]["pid"] == pid
    assert "already running" in again["msg"]


def test_daemon_is_detached_from_the_caller(daemons: Daemons) -> None:
    params = daemons.params()
    pid = daemons.run(params, "started")["service"]["pid"]
    st = read_stat(pid)
    assert st["session"] == pid and st["pgrp"] == pid  # own session: no SIGHUP when a channel closes
    fds = {int(fd): os.readlink(f"/proc/{pid}/fd/{fd}") for fd in os.listdir(f"/proc/{pid}/fd")}
    assert fds[0] == "/dev/null"
    assert fds[1] == fds[2] == params["log_file"]
    # Nothing else inherited: no pipe of the caller (Ansible would wait for its EOF) and no lock file.
    assert not [target for fd, target in fds.items() if fd > 2 and ("pipe:" in target or ".lock" in target)]
    assert Path(f"/proc/{pid}/cwd").resolve() == Path("/")


def test_status_fields_and_uptime(daemons: Daemons) -> None:
    params = daemons.params()
    stopped = daemons.run(params, "status")
    assert stopped == {
        "changed": False,
        "service": {
            "name": "sleeper",
            "backend": "process",
            "active": False,
            "pid": None,
            "uptime_s": None,
            "detail": "no pidfile",
        },
        "msg": "sleeper is stopped (process)",
    }
    pid = daemons.run(params, "started")["service"]["pid"]
    time.sleep(1.2)
    status = daemons.run(params, "status")
    assert status["changed"] is False
    svc = status["service"]
    assert svc["active"] is True and svc["pid"] == pid
    assert isinstance(svc["uptime_s"], float) and 1.0 <= svc["uptime_s"] < 30
    assert status["msg"] == "sleeper is running (process)"


def test_stop_sends_term_and_removes_pidfile(daemons: Daemons) -> None:
    params = daemons.params()
    pid = daemons.run(params, "started")["service"]["pid"]
    assert wait_for(lambda: "ready" in Path(params["log_file"]).read_text())
    started = time.monotonic()
    result = daemons.run(params, "stopped")
    assert result["changed"] is True
    assert result["msg"] == "sleeper stopped"
    assert time.monotonic() - started < 3
    assert not alive(pid)
    assert not Path(params["pidfile"]).exists()
    assert "got TERM" in Path(params["log_file"]).read_text()
    assert result["service"]["active"] is False

    again = daemons.run(params, "stopped")
    assert again["changed"] is False and "already stopped" in again["msg"]


def test_stop_kills_a_process_that_ignores_term(daemons: Daemons) -> None:
    params = daemons.params(code=sleeper_code(daemons.marker, ignore_term=True), stop_timeout=1)
    pid = daemons.run(params, "started")["service"]["pid"]
    assert wait_for(lambda: "ready" in Path(params["log_file"]).read_text())
    started = time.monotonic()
    result = daemons.run(params, "stopped")
    elapsed = time.monotonic() - started
    assert result["changed"] is True
    assert "SIGKILL after 1s" in result["msg"]
    assert 1.0 <= elapsed < 5
    assert not alive(pid)
    assert not Path(params["pidfile"]).exists()


def test_stop_takes_the_whole_process_group(daemons: Daemons) -> None:
    params = daemons.params(code=sleeper_code(daemons.marker, children=2))
    pid = daemons.run(params, "started")["service"]["pid"]
    assert wait_for(lambda: "ready" in Path(params["log_file"]).read_text())
    kids = [
        int(p) for p in os.listdir("/proc") if p.isdigit() and (read_stat(int(p)) or {}).get("ppid") == pid
    ]
    assert len(kids) == 2
    daemons.pids.update(kids)
    daemons.run(params, "stopped")
    assert wait_for(lambda: not any(alive(k) for k in kids), 3)


def test_stale_pidfile_with_a_dead_pid(daemons: Daemons) -> None:
    params = daemons.params()
    dead = subprocess.Popen(["true"])
    dead.wait()
    Path(params["pidfile"]).parent.mkdir(parents=True)
    Path(params["pidfile"]).write_text(f"{dead.pid}\n")

    status = daemons.run(params, "status")
    assert status["service"]["active"] is False
    assert "stale pidfile" in status["service"]["detail"]

    started = daemons.run(params, "started")
    assert started["changed"] is True
    assert "replaced stale pidfile" in started["msg"]
    assert read_pidfile(params) == started["service"]["pid"] != dead.pid
    assert alive(started["service"]["pid"])


def test_stale_pidfile_whose_pid_now_runs_another_program(daemons: Daemons) -> None:
    params = daemons.params()
    pidfile = Path(params["pidfile"])
    pidfile.parent.mkdir(parents=True)
    pidfile.write_text(f"{os.getpid()}\n")  # alive, but it is this test runner, not the sleeper
    # Written long before this runner started (a reused pid): a young runner (an xdist worker that has
    # just started) would otherwise pass for the daemon that start() spawned when the pidfile was written.
    os.utime(pidfile, (time.time() - 3600, time.time() - 3600))

    status = daemons.run(params, "status")
    assert status["service"]["active"] is False
    assert "another program" in status["service"]["detail"]

    would = daemons.run(params, "stopped", check_mode=True)
    assert would["changed"] is True and "would remove stale pidfile" in would["msg"]
    assert pidfile.exists()
    # stopped: the stale pidfile is removed and the unrelated process (us) is left alone
    stopped = daemons.run(params, "stopped")
    assert stopped["changed"] is True and "removed stale pidfile" in stopped["msg"]
    assert not pidfile.exists()

    pidfile.write_text(f"{os.getpid()}\n")
    os.utime(pidfile, (time.time() - 3600, time.time() - 3600))
    started = daemons.run(params, "started")
    assert started["changed"] is True
    new_pid = started["service"]["pid"]
    assert new_pid != os.getpid() and read_pidfile(params) == new_pid and alive(new_pid)
    assert daemons.run(params, "stopped")["changed"] is True


def test_a_changed_command_keeps_the_running_daemon_managed_until_restart(daemons: Daemons) -> None:
    old = daemons.params()
    first = daemons.run(old, "started")["service"]["pid"]
    # The catalogue's command changes under the running daemon (a new flag, say): the daemon in the
    # pidfile is still ours, so it is neither forgotten nor started twice.
    new = daemons.params(code=sleeper_code(daemons.marker) + "\n# --workers 4")

    status = daemons.run(new, "status")
    assert status["service"]["active"] is True and status["service"]["pid"] == first
    assert status["service"]["detail"] == OLDER_COMMAND

    started = daemons.run(new, "started")
    assert started["changed"] is False and started["service"]["pid"] == first
    assert started["warnings"] == [f"sleeper is {OLDER_COMMAND}"]

    restarted = daemons.run(new, "restarted")
    second = restarted["service"]["pid"]
    assert restarted["changed"] is True and second != first and not alive(first) and alive(second)
    assert daemons.run(new, "status")["service"]["detail"] == "running"
    assert daemons.run(new, "stopped")["changed"] is True and not alive(second)


def test_a_pidfile_without_command_still_reports_and_stops(daemons: Daemons) -> None:
    params = daemons.params()
    pid = daemons.run(params, "started")["service"]["pid"]
    bare = {k: params[k] for k in ("name", "pidfile", "log_file")}  # backend auto: the pidfile means process
    status = daemons.run(bare, "status")
    assert status["service"]["backend"] == "process"
    assert status["service"]["active"] is True and status["service"]["pid"] == pid
    assert daemons.run(bare, "stopped")["changed"] is True
    assert not alive(pid)


def test_command_that_exits_immediately_fails_with_the_log_tail(daemons: Daemons) -> None:
    code = "\n".join(
        [
            "import sys",
            "print('loading config', flush=True)",
            "print('fatal: missing /etc/aitbc.conf')",
            "sys.exit(3)",
        ]
    )
    params = daemons.params(code=code, start_timeout=1.0)
    log = Path(params["log_file"])
    log.parent.mkdir(parents=True)
    log.write_text("an old line from an earlier run\n")
    with pytest.raises(ServiceError) as info:
        daemons.run(params, "started")
    msg = info.value.msg
    assert "\n" not in msg
    assert re.search(r"exited with status 3 after \d+\.\d s;", msg), msg
    assert "fatal: missing /etc/aitbc.conf" in msg
    assert "old line" not in msg  # only what this start wrote
    assert info.value.details["log_tail"] == ["loading config", "fatal: missing /etc/aitbc.conf"]
    assert not Path(params["pidfile"]).exists()


@pytest.mark.parametrize(
    ("command", "missing"),
    [
        ("no-such-program-aitbc --flag", "no-such-program-aitbc"),
        ("/opt/nowhere/bin/daemon", "/opt/nowhere/bin/daemon"),
        ("no-such-program-aitbc --flag | cat", "no-such-program-aitbc"),
    ],
)
def test_command_not_found(daemons: Daemons, command: str, missing: str) -> None:
    params = daemons.params(command=command)
    with pytest.raises(ServiceError) as info:
        daemons.run(params, "started")
    assert info.value.msg == f"command not found: {missing}"
    with pytest.raises(ServiceError, match="command not found"):  # check mode finds it too
        daemons.run(params, "started", check_mode=True)


def test_shell_command_runs_through_sh_and_is_tracked(daemons: Daemons) -> None:
    code = "import os, time; print(os.environ['SVC_A'], flush=True); time.sleep(300)"
    params = daemons.params(command=f'exec {PY} -c "{code}"  # a comment', env={"SVC_A": "from-env"})
    assert needs_shell(params["command"])
    pid = daemons.run(params, "started")["service"]["pid"]
    assert wait_for(lambda: "from-env" in Path(params["log_file"]).read_text())
    status = daemons.run(params, "status")  # sh exec'd python: the cmdline check still recognises it
    assert status["service"]["active"] is True and status["service"]["pid"] == pid
    assert daemons.run(params, "stopped")["changed"] is True


def test_environment_from_env_file_and_env(daemons: Daemons, tmp_path: Path) -> None:
    env_file = tmp_path / "svc.env"
    env_file.write_text("# comment\n\nexport SVC_A='from-file'\nSVC_B=\"file-b\"\n")
    params = daemons.params(env_file=str(env_file), env={"SVC_A": "from-env", "SVC_B": 42})
    daemons.run(params, "started")
    # The file (the applied configuration) wins over env, as EnvironmentFile= does in systemd.
    assert wait_for(lambda: "ready from-file file-b" in Path(params["log_file"]).read_text())

    env_file.write_text("SVC_A=ok\nthis line is wrong\n")
    daemons.run(params, "stopped")
    with pytest.raises(ServiceError, match=r"^env_file .*svc.env line 2: expected KEY=VALUE$"):
        daemons.run(params, "started")
    with pytest.raises(ServiceError, match="env_file not found"):
        daemons.run(dict(params, env_file=str(tmp_path / "missing.env")), "started")


# Values that need every kind of quoting in an env file: $, both quotes, backslashes, spaces, #, backtick.
HOSTILE_VALUES = {
    "SVC_DOLLAR": "abc$def",
    "SVC_BRACES": "${HOME}x",
    "SVC_QUOTES": """q"uo'te""",
    "SVC_BACKSLASH": "back\\slash\\n\\",
    "SVC_SPACES": "  two words  ",
    "SVC_HASH": "x # not a comment",
    "SVC_LEADING_HASH": "#hash",
    "SVC_TICKS": "`id` $(id)",
    "SVC_EMPTY": "",
    "SVC_MIXED": """a'b"c\\$d`e;f""",
}


def test_env_file_values_reach_the_daemon_exactly_as_written(daemons: Daemons, tmp_path: Path) -> None:
    env_file = tmp_path / "svc.env"
    ef.apply({"path": str(env_file), "values": HOSTILE_VALUES, "secret_values": {}, "mode": "0600"})
    params = daemons.params(env_file=str(env_file))
    pid = daemons.run(params, "started")["service"]["pid"]
    raw = Path(f"/proc/{pid}/environ").read_bytes().decode()
    environ = dict(item.partition("=")[::2] for item in raw.split("\0") if item)
    assert {key: environ.get(key) for key in HOSTILE_VALUES} == HOSTILE_VALUES


def test_daemons_do_not_inherit_the_runs_markers(daemons: Daemons, monkeypatch: pytest.MonkeyPatch) -> None:
    # opsrunner/runner.py run_pids finds a run's processes by this exact NUL-separated entry of
    # /proc/PID/environ, and a Ctrl-C of the run kills them: a service it started must not carry it.
    run_id = f"20261204T210000Z-{uuid.uuid4().hex[:6]}"
    monkeypatch.setenv("OPSRUNNER_RUN_ID", run_id)
    monkeypatch.setenv("OPSRUNNER_MEMORY_DIR", "/tmp/run-memory")
    monkeypatch.setenv("ANSIBLE_CONFIG", "/tmp/ansible.cfg")
    monkeypatch.setenv("ANSIBLE_STDOUT_CALLBACK", "awx_display")
    monkeypatch.setenv("AWX_ISOLATED_DATA_DIR", "/tmp/artifacts")
    monkeypatch.setenv("SVC_INHERITED", "kept")
    params = daemons.params(env={"ANSIBLE_WANTED": "the service's own"})
    pid = daemons.run(params, "started")["service"]["pid"]
    entries = Path(f"/proc/{pid}/environ").read_bytes().split(b"\0")
    assert f"OPSRUNNER_RUN_ID={run_id}".encode() not in entries
    names = {entry.partition(b"=")[0].decode() for entry in entries if entry}
    assert not {n for n in names if n.startswith(("OPSRUNNER_", "ANSIBLE_CONFIG", "ANSIBLE_STDOUT", "AWX_"))}
    assert {b"SVC_INHERITED=kept", b"ANSIBLE_WANTED=the service's own"} <= set(entries)
    # A child the run starts directly still carries the marker (what run_pids relies on).
    child = subprocess.run(
        [PY, "-c", "import os; print(os.environ['OPSRUNNER_RUN_ID'])"],
        capture_output=True,
        text=True,
        check=False,
    )
    assert child.stdout.strip() == run_id


def test_env_values_are_masked_in_the_invocation() -> None:
    masked = redacted_params({"name": "x", "env": {"API_TOKEN": "s3cret", "A": 1}, "command": "c"})
    assert masked == {
        "name": "x",
        "env": {"API_TOKEN": NO_LOG_PLACEHOLDER, "A": NO_LOG_PLACEHOLDER},
        "command": "c",
    }
    assert redacted_params({"name": "x", "env": None}) == {"name": "x", "env": None}


def test_check_mode_changes_nothing(daemons: Daemons) -> None:
    params = daemons.params()
    would_start = daemons.run(params, "started", check_mode=True)
    assert would_start["changed"] is True and would_start["msg"] == "would start sleeper (check mode)"
    assert not Path(params["pidfile"]).exists()

    pid = daemons.run(params, "started")["service"]["pid"]
    for state in ("stopped", "restarted", "reloaded"):
        result = daemons.run(params, state, check_mode=True)
        assert result["changed"] is True and "check mode" in result["msg"]
        assert result["service"]["pid"] == pid
    assert alive(pid) and read_pidfile(params) == pid
    assert daemons.run(params, "started", check_mode=True)["changed"] is False


def test_diff_reports_state_and_pid(daemons: Daemons) -> None:
    params = daemons.params()

    def run(state: str, check_mode: bool = False) -> dict:
        result = manage_service(dict(params, state=state), check_mode=check_mode, diff=True)
        if result["service"]["pid"]:
            daemons.pids.add(result["service"]["pid"])
        return result

    unchanged = {"before": {}, "after": {}}
    # Check mode predicts the after: a new process's pid is unknown (None).
    assert run("started", check_mode=True)["diff"] == {
        "before": {"state": "stopped"},
        "after": {"state": "running"},
    }
    started = run("started")
    pid = started["service"]["pid"]
    assert started["diff"] == {
        "before": {"state": "stopped", "pid": None},
        "after": {"state": "running", "pid": pid},
    }
    assert run("started")["diff"] == unchanged
    assert run("status")["diff"] == unchanged
    assert run("restarted", check_mode=True)["diff"] == {"before": {"pid": pid}, "after": {"pid": None}}
    assert run("reloaded", check_mode=True)["diff"] == unchanged  # a reload keeps the process
    assert run("stopped", check_mode=True)["diff"] == {
        "before": {"state": "running", "pid": pid},
        "after": {"state": "stopped", "pid": None},
    }
    restarted = run("restarted")
    new_pid = restarted["service"]["pid"]
    assert new_pid != pid and restarted["diff"] == {"before": {"pid": pid}, "after": {"pid": new_pid}}
    assert run("stopped")["diff"] == {
        "before": {"state": "running", "pid": new_pid},
        "after": {"state": "stopped", "pid": None},
    }
    assert "diff" not in manage_service(dict(params, state="status"))  # only when asked for


def test_restart_and_reload(daemons: Daemons) -> None:
    params = daemons.params()
    restarted_from_stopped = daemons.run(params, "restarted")
    assert restarted_from_stopped["changed"] is True
    first = restarted_from_stopped["service"]["pid"]
    assert wait_for(lambda: "ready" in Path(params["log_file"]).read_text())

    restarted = daemons.run(params, "restarted")
    assert restarted["changed"] is True and restarted["msg"] == "sleeper restarted"
    second = restarted["service"]["pid"]
    assert second != first and not alive(first) and alive(second)
    assert read_pidfile(params) == second

    assert wait_for(lambda: Path(params["log_file"]).read_text().count("ready") == 2)
    reloaded = daemons.run(params, "reloaded")
    assert reloaded["changed"] is True and "SIGHUP" in reloaded["msg"]
    assert reloaded["service"]["pid"] == second
    assert wait_for(lambda: "got HUP" in Path(params["log_file"]).read_text())

    daemons.run(params, "stopped")
    reload_stopped = daemons.run(params, "reloaded")  # reloaded starts a stopped service
    assert reload_stopped["changed"] is True and reload_stopped["msg"] == "sleeper started"
    assert reload_stopped["service"]["active"] is True


def test_default_log_file_beside_the_pidfile(daemons: Daemons) -> None:
    params = daemons.params()
    del params["log_file"]
    daemons.run(params, "started")
    log = Path(params["pidfile"]).with_name("sleeper.log")
    assert wait_for(lambda: log.exists() and "ready" in log.read_text())
    assert BACKENDS["process"](ServiceSpec.from_params(params)).logs(5)[0].startswith("ready")


def test_wait_healthy_with_http_server(daemons: Daemons) -> None:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    params = daemons.params(
        name="web",
        command=f"{PY} -m http.server {port} --bind 127.0.0.1 --directory {daemons.dir}",
        wait_healthy={"probes": [{"type": "http", "url": f"http://127.0.0.1:{port}/"}], "timeout": 10},
    )
    result = daemons.run(params, "started")
    assert result["changed"] is True
    assert [p["ok"] for p in result["probes"]] == [True]

    # wait_healthy directly: the probes engine runs each probe, tagged with the service
    ok = wait_healthy("web", [{"type": "tcp", "port": port}], timeout=2)
    assert [(r["name"], r["ok"], r["service"]) for r in ok] == [(f"tcp:127.0.0.1:{port}", True, "web")]
    assert ok[0]["detail"].startswith("connected in ")
    with pytest.raises(ServiceError) as info:
        wait_healthy(
            "web",
            [{"name": "missing page", "type": "http", "url": f"http://127.0.0.1:{port}/nope"}],
            timeout=1,
            interval=0.2,
        )
    assert info.value.msg.startswith("web is not healthy after 1s: missing page: 404 in ")
    assert info.value.msg.endswith(" ms, expected 200")

    # failing health after a start: the task fails, says why, and reports the service as started
    failing = dict(
        params, wait_healthy={"probes": [{"type": "tcp", "port": 1}], "timeout": 1, "interval": 0.2}
    )
    with pytest.raises(ServiceError) as info:
        daemons.run(failing, "restarted")
    assert info.value.msg.startswith("web is not healthy after 1s: ")
    assert info.value.details["changed"] is True
    assert info.value.details["service"]["active"] is True


def test_wait_healthy_runs_the_probes_engine(daemons: Daemons) -> None:
    """The health gate is the health module's engine: its result keys, and every probe type it knows."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    probes = [
        {"type": "http", "url": f"http://127.0.0.1:{port}/", "status": [200]},
        {"type": "tcp", "port": port},
    ]
    params = daemons.params(
        name="web2",
        command=f"{PY} -m http.server {port} --bind 127.0.0.1 --directory {daemons.dir}",
        wait_healthy={"probes": probes, "timeout": 10, "interval": 0.2},
    )
    result = daemons.run(params, "started")
    assert [(r["name"], r["type"], r["service"], r["ok"]) for r in result["probes"]] == [
        (f"http:http://127.0.0.1:{port}/", "http", "web2", True),
        (f"tcp:127.0.0.1:{port}", "tcp", "web2", True),
    ]
    assert result["probes"][0]["data"]["status"] == 200
    # A redis probe against the http server: a type only the engine has, failing on the wrong reply.
    with pytest.raises(ServiceError, match=r"^web2 is not healthy after 1s: redis:127.0.0.1:"):
        daemons.run(
            dict(params, wait_healthy={"probes": [{"type": "redis", "port": port}], "timeout": 1}), "started"
        )


def test_bad_probe_definitions_fail_before_anything_starts(daemons: Daemons) -> None:
    params = daemons.params(wait_healthy={"probes": [{"type": "bogus"}], "timeout": 1})
    with pytest.raises(ServiceError, match=r"^wait_healthy: "):
        daemons.run(params, "started")
    assert not Path(params["pidfile"]).exists()
    with pytest.raises(ServiceError, match=r"^wait_healthy: probe 1 \(bogus\): unknown probe type 'bogus'"):
        daemons.run(params, "started", check_mode=True)  # check mode validates them too


def test_one_line_errors(daemons: Daemons) -> None:
    with pytest.raises(ServiceError, match=r"^unknown backend: upstart \(choose from auto, process, "):
        manage_service({"name": "x", "backend": "upstart", "state": "status"})
    with pytest.raises(ServiceError, match=r"^the process backend needs a command to start x$"):
        manage_service(
            {"name": "x", "backend": "process", "pidfile": str(daemons.dir / "x.pid"), "state": "started"}
        )
    with pytest.raises(ServiceError, match=r"^chdir not found: /nonexistent-aitbc$"):
        daemons.run(daemons.params(chdir="/nonexistent-aitbc"), "started")


# --------------------------------------------------------------------------- pure functions


def test_cmdline_matches() -> None:
    match = cmdline_matches
    assert match(["redis-server", "--port", "1"], ["redis-server 127.0.0.1:1"], "redis-server")
    assert match(["/usr/bin/redis-server", "--port", "1"], ["/usr/bin/redis-server *:1"], "redis-server")
    assert match(["python3", "app.py", "serve"], ["/usr/bin/python3.11", "app.py", "serve", "--x"], "python3")
    assert match(
        ["python3", "-m", "http.server"], ["/root/.pyenv/versions/3.11/bin/python3", "-m", "http.server"]
    )
    assert not match(["python3", "app.py"], ["/usr/bin/python3", "other.py"], "python3")
    assert not match(["python3", "-c", "import time"], read_cmdline(os.getpid()), "python3")
    assert not match(["redis-server"], ["nginx: master process"], "nginx")
    assert not match(["redis-server"], [], "")  # kernel threads and zombies have no cmdline
    assert match(["a-very-long-daemon-name"], ["x"], "a-very-long-dae")  # comm is 15 chars at most


@pytest.mark.parametrize(
    ("command", "shell"),
    [
        ('redis-server --port 1 --save "60 1"', False),
        ("python3 -c 'import time; time.sleep(1)'", False),
        ('python3 -c "import time; time.sleep(1)"', False),
        ('echo "$HOME"', True),
        ("app > out.log", True),
        ("a | b", True),
        ("FOO=1 app", True),
        ("app *.txt", True),
        ("app 'unbalanced", True),
    ],
)
def test_needs_shell(command: str, shell: bool) -> None:
    assert needs_shell(command) is shell


def test_tail_file_and_env_file(tmp_path: Path) -> None:
    log = tmp_path / "x.log"
    log.write_text("".join(f"line {i}\n" for i in range(100000)))
    assert tail_file(str(log), 3) == ["line 99997", "line 99998", "line 99999"]
    assert tail_file(str(tmp_path / "missing.log"), 3) == []
    env = tmp_path / "e.env"
    env.write_text("A=1\n  export B = two words \nC='q=1'\n#D=4\n")
    assert read_env_file(str(env)) == {"A": "1", "B": "two words", "C": "q=1"}


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        # systemd's EnvironmentFile= grammar: escapes, quotes only where a value starts, comments, lines.
        ('A="abc\\$def"', {"A": "abc$def"}),
        ("A='abc\\$def'", {"A": "abc\\$def"}),
        ("A=abc\\$def", {"A": "abc$def"}),
        ('A="x\\ny"', {"A": "x\\ny"}),  # only " \\ ` $ are escapes inside double quotes
        ('A=abc"def"', {"A": 'abc"def"'}),
        ('A="one" two ', {"A": "onetwo"}),
        ("A=x # not a comment", {"A": "x # not a comment"}),
        ("; comment\n# comment \\\n continued\nA=1", {"A": "1"}),
        ('A="multi\nline"\nB=2', {"A": "multi\nline", "B": "2"}),
        ("A=joined\\\nline", {"A": "joinedline"}),
        ("A=trailing\\ ", {"A": "trailing "}),
    ],
)
def test_env_file_grammar(text: str, expected: dict[str, str]) -> None:
    assert parse_env_text(text) == expected


def test_env_file_errors_name_the_line() -> None:
    with pytest.raises(ServiceError, match=r"^x line 3: expected KEY=VALUE$"):
        parse_env_text('A="two\nlines"\nno assignment here', "x")
    with pytest.raises(ServiceError, match="line 1: expected KEY=VALUE"):
        parse_env_text("1BAD=x")


def test_proc_helpers() -> None:
    me = read_stat(os.getpid())
    assert me["state"] in "RS" and me["ppid"] == os.getppid()
    assert proc_uptime(os.getpid()) >= 0
    assert read_cmdline(os.getpid())
    assert read_stat(2**22 + 7) is None and not pid_alive(2**22 + 7)

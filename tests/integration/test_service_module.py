"""The aitbc.ops.service module through real Ansible: ad-hoc `ansible -m aitbc.ops.service` and a tiny
playbook on localhost (connection local), the supervisor backend against a real supervisord started in
tmp_path, and the process backend over a real SSH test host (pipelining), where the daemon must outlive
the SSH session. Every process started here is killed by pid at the end."""

from __future__ import annotations

import contextlib
import json
import os
import re
import shlex
import shutil
import signal
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
import yaml
from adhoc import HEADER

pytestmark = pytest.mark.integration

BIN = Path(sys.executable).parent
PY = "/usr/bin/python3" if Path("/usr/bin/python3").exists() else sys.executable
LOCAL = ["-i", "localhost,", "-c", "local", "-e", f"ansible_python_interpreter={PY}"]
# A module call returns in a few seconds; a daemon holding the module's stdout would make it hang.
ANSIBLE_TIMEOUT = 90


@dataclass
class Adhoc:
    rc: int
    status: str
    result: dict
    elapsed: float
    stdout: str
    stderr: str


def adhoc(
    env: dict[str, str],
    args: dict,
    *,
    host: str = "localhost",
    target: list[str] | None = None,
    extra: list[str] | None = None,
) -> Adhoc:
    """Run `ansible HOST -m aitbc.ops.service -a JSON` and parse the one host's result."""
    argv = [str(BIN / "ansible"), host, *(target or LOCAL), "-m", "aitbc.ops.service", "-a", json.dumps(args)]
    argv += extra or []
    started = time.monotonic()
    proc = subprocess.run(
        argv,
        env=env,
        capture_output=True,
        text=True,
        timeout=ANSIBLE_TIMEOUT,
        stdin=subprocess.DEVNULL,
        check=False,
    )
    elapsed = time.monotonic() - started
    match = HEADER.search(proc.stdout)
    assert match, f"no result in ansible output (rc {proc.returncode}):\n{proc.stdout}\n{proc.stderr}"
    result, _end = json.JSONDecoder().raw_decode(proc.stdout, match.end())
    return Adhoc(proc.returncode, match["status"], result, elapsed, proc.stdout, proc.stderr)


def alive(pid: int | None) -> bool:
    if not pid:
        return False
    try:
        raw = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return False
    return raw.rpartition(")")[2].split()[0] not in ("Z", "X")


def wait_for(predicate, timeout: float = 10.0) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return True
        time.sleep(0.05)
    return predicate()


class Reaper:
    """Remembers pids; at teardown kills the live ones that carry this test's marker (by pid)."""

    def __init__(self) -> None:
        self.marker = f"aitbc-svc-it-{uuid.uuid4().hex[:10]}"
        self.pids: set[int] = set()

    def add(self, pid: int | None) -> int | None:
        if pid:
            self.pids.add(pid)
        return pid

    def ours(self, pid: int) -> bool:
        for name in ("cmdline", "environ"):
            try:
                if self.marker.encode() in Path(f"/proc/{pid}/{name}").read_bytes():
                    return True
            except OSError:
                pass
        return False

    def kill_all(self) -> None:
        for pid in sorted(self.pids):
            if pid != os.getpid() and alive(pid) and self.ours(pid):
                with contextlib.suppress(ProcessLookupError):
                    os.kill(pid, signal.SIGKILL)


@pytest.fixture
def reaper() -> Iterator[Reaper]:
    r = Reaper()
    try:
        yield r
    finally:
        r.kill_all()


def sleeper(marker: str) -> str:
    """One line (supervisord's command= takes no newlines): logs TERM, then exits."""
    code = (
        f"import signal, sys, time; MARK = {marker!r}; "
        "signal.signal(signal.SIGTERM, lambda *_: (print('got TERM', flush=True), sys.exit(0))); "
        "print('ready', flush=True); time.sleep(3600)"
    )
    return f"{PY} -c {shlex.quote(code)}"


def process_args(root: Path, marker: str, name: str = "svc-it") -> dict:
    return {
        "name": name,
        "backend": "process",
        "command": sleeper(marker),
        "pidfile": str(root / "run" / f"{name}.pid"),
        "log_file": str(root / "log" / f"{name}.log"),
        "env": {"AITBC_MARK": marker},
        "start_timeout": 0.5,
    }


# --------------------------------------------------------------------------- process backend, ad-hoc


def test_process_backend_lifecycle(ansible_env: dict[str, str], tmp_path: Path, reaper: Reaper) -> None:
    args = process_args(tmp_path, reaper.marker)
    pidfile = Path(args["pidfile"])

    start = adhoc(ansible_env, {**args, "state": "started"})
    assert start.rc == 0 and start.status == "CHANGED", start.stdout
    svc = start.result["service"]
    pid = reaper.add(svc["pid"])
    assert svc["backend"] == "process" and svc["active"] is True and start.result["msg"] == "svc-it started"
    # The module has exited and Ansible did not wait for the daemon: it runs on, detached.
    assert start.elapsed < 30
    assert alive(pid) and int(pidfile.read_text()) == pid
    stat = Path(f"/proc/{pid}/stat").read_text().rpartition(")")[2].split()
    assert int(stat[3]) == pid  # session id: its own session
    assert wait_for(lambda: "ready" in Path(args["log_file"]).read_text())

    again = adhoc(ansible_env, {**args, "state": "started"})
    assert again.status == "SUCCESS" and again.result["changed"] is False
    assert again.result["service"]["pid"] == pid

    check_stop = adhoc(ansible_env, {**args, "state": "stopped"}, extra=["--check"])
    assert check_stop.status == "CHANGED" and check_stop.result["changed"] is True
    assert check_stop.result["msg"] == "would stop svc-it (check mode)"
    assert alive(pid) and int(pidfile.read_text()) == pid

    stop = adhoc(ansible_env, {**args, "state": "stopped"})
    assert stop.status == "CHANGED" and stop.result["service"]["active"] is False
    assert not alive(pid) and not pidfile.exists()
    assert "got TERM" in Path(args["log_file"]).read_text()
    assert adhoc(ansible_env, {**args, "state": "stopped"}).result["changed"] is False

    restart = adhoc(ansible_env, {**args, "state": "restarted"})
    assert restart.status == "CHANGED"
    first = reaper.add(restart.result["service"]["pid"])
    restart2 = adhoc(ansible_env, {**args, "state": "restarted"})
    assert restart2.status == "CHANGED"
    second = reaper.add(restart2.result["service"]["pid"])
    assert second != first and alive(second) and not alive(first)

    status = adhoc(ansible_env, {"name": "svc-it", "pidfile": args["pidfile"]})  # auto + state=status
    assert status.status == "SUCCESS" and status.result["service"]["pid"] == second
    assert status.result["service"]["backend"] == "process"
    assert adhoc(ansible_env, {**args, "state": "stopped"}).status == "CHANGED"
    assert not alive(second)


def diff_lines(run: Adhoc) -> list[str]:
    """The -/+ lines of the diff Ansible prints before the result (the minimal callback drops `diff`)."""
    lines = run.stdout.splitlines()
    return [line for line in lines if line[:1] in ("-", "+") and line[:3] not in ("---", "+++")]


def test_check_and_diff_report_state_and_pid(
    ansible_env: dict[str, str], tmp_path: Path, reaper: Reaper
) -> None:
    args = process_args(tmp_path, reaper.marker, name="svc-diff")

    would = adhoc(ansible_env, {**args, "state": "started"}, extra=["--check", "--diff"])
    assert would.status == "CHANGED" and not Path(args["pidfile"]).exists(), would.stdout
    assert diff_lines(would) == ['-    "state": "stopped"', '+    "state": "running"'], would.stdout

    start = adhoc(ansible_env, {**args, "state": "started"}, extra=["--diff"])
    pid = reaper.add(start.result["service"]["pid"])
    assert start.status == "CHANGED" and alive(pid), start.stdout
    assert sorted(diff_lines(start)) == sorted(
        ['-    "pid": null,', '-    "state": "stopped"', f'+    "pid": {pid},', '+    "state": "running"']
    ), start.stdout

    # Check mode predicts the stop; the daemon runs on.
    would_stop = adhoc(ansible_env, {**args, "state": "stopped"}, extra=["--check", "--diff"])
    assert sorted(diff_lines(would_stop)) == sorted(
        [f'-    "pid": {pid},', '-    "state": "running"', '+    "pid": null,', '+    "state": "stopped"']
    ), would_stop.stdout
    assert alive(pid)

    unchanged = adhoc(ansible_env, {**args, "state": "started"}, extra=["--diff"])
    assert unchanged.status == "SUCCESS" and diff_lines(unchanged) == [], unchanged.stdout
    assert adhoc(ansible_env, {**args, "state": "stopped"}).status == "CHANGED"
    assert not alive(pid)


def test_failures_are_one_clear_line(ansible_env: dict[str, str], tmp_path: Path, reaper: Reaper) -> None:
    args = process_args(tmp_path, reaper.marker, "svc-bad")
    code = "import sys; print('fatal: port 18011 already in use', flush=True); sys.exit(4)"
    dies = adhoc(ansible_env, {**args, "command": f"{PY} -c {shlex.quote(code)}", "state": "started"})
    assert dies.rc == 2 and dies.status == "FAILED!"
    assert re.fullmatch(
        rf"svc-bad exited with status 4 after 0\.\d s; last lines of {re.escape(args['log_file'])}: "
        "fatal: port 18011 already in use",
        dies.result["msg"],
    ), dies.result["msg"]
    assert dies.result["log_tail"] == ["fatal: port 18011 already in use"]
    assert not Path(args["pidfile"]).exists()

    missing = adhoc(ansible_env, {**args, "command": "aitbc-no-such-binary --serve", "state": "started"})
    assert missing.status == "FAILED!" and missing.result["msg"] == "command not found: aitbc-no-such-binary"

    no_command = adhoc(
        ansible_env, {"name": "svc-bad", "backend": "process", "pidfile": args["pidfile"], "state": "started"}
    )
    assert no_command.result["msg"] == "the process backend needs a command to start svc-bad"

    bad_choice = adhoc(ansible_env, {"name": "x", "backend": "upstart"})
    assert bad_choice.status == "FAILED!" and "backend" in bad_choice.result["msg"]


def test_env_values_are_not_echoed(ansible_env: dict[str, str], tmp_path: Path, reaper: Reaper) -> None:
    args = process_args(tmp_path, reaper.marker, "svc-env")
    args["env"] = {"AITBC_MARK": reaper.marker, "API_TOKEN": "tok-5f1e2d9c"}
    try:
        start = adhoc(ansible_env, {**args, "state": "started"}, extra=["-vvv"])
        reaper.add(start.result["service"]["pid"])
        assert start.status == "CHANGED"
        assert (
            start.result["invocation"]["module_args"]["env"]["API_TOKEN"]
            == "VALUE_SPECIFIED_IN_NO_LOG_PARAMETER"
        )
        assert "tok-5f1e2d9c" not in start.stdout + start.stderr
        environ = Path(f"/proc/{start.result['service']['pid']}/environ").read_bytes()
        assert b"API_TOKEN=tok-5f1e2d9c" in environ  # the daemon does get the value
    finally:
        adhoc(ansible_env, {**args, "state": "stopped"})


def test_playbook_idempotence(ansible_env: dict[str, str], tmp_path: Path, reaper: Reaper) -> None:
    args = process_args(tmp_path, reaper.marker, "svc-play")
    tasks = [
        {"name": "start", "aitbc.ops.service": {**args, "state": "started"}, "register": "s1"},
        {"name": "start again", "aitbc.ops.service": {**args, "state": "started"}, "register": "s2"},
        {
            "name": "stop, check mode",
            "aitbc.ops.service": {**args, "state": "stopped"},
            "check_mode": True,
            "register": "s3",
        },
        {
            "name": "status",
            "aitbc.ops.service": {"name": "svc-play", "pidfile": args["pidfile"]},
            "register": "s4",
        },
        {"name": "stop", "aitbc.ops.service": {**args, "state": "stopped"}, "register": "s5"},
        {
            "name": "check",
            "ansible.builtin.assert": {
                "that": [
                    "s1 is changed and s1.service.active",
                    "s2 is not changed and s2.service.pid == s1.service.pid",
                    "s3 is changed",
                    "s4 is not changed and s4.service.active and s4.service.pid == s1.service.pid",
                    "s5 is changed and not s5.service.active",
                ]
            },
        },
        {"name": "pid for the test", "ansible.builtin.debug": {"msg": "PID={{ s1.service.pid }}"}},
    ]
    playbook = tmp_path / "service.yml"
    playbook.write_text(yaml.safe_dump([{"hosts": "localhost", "gather_facts": False, "tasks": tasks}]))
    proc = subprocess.run(
        [str(BIN / "ansible-playbook"), *LOCAL, str(playbook)],
        env=ansible_env,
        capture_output=True,
        text=True,
        timeout=ANSIBLE_TIMEOUT * 2,
        stdin=subprocess.DEVNULL,
        check=False,
    )
    pid = re.search(r"PID=(\d+)", proc.stdout)
    reaper.add(int(pid.group(1)) if pid else None)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert re.search(r"localhost\s+: ok=7\s+changed=3\s+unreachable=0\s+failed=0", proc.stdout), proc.stdout
    assert pid and not alive(int(pid.group(1)))


def test_ansible_doc() -> None:
    env = {
        **os.environ,
        "ANSIBLE_CONFIG": str(Path(__file__).resolve().parents[2] / "ansible.cfg"),
        "ANSIBLE_CALLBACKS_ENABLED": "ansible.builtin.minimal",
        "ANSIBLE_NOCOLOR": "1",
    }
    proc = subprocess.run(
        [str(BIN / "ansible-doc"), "aitbc.ops.service"],
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert proc.returncode == 0, proc.stderr
    for word in ("wait_healthy", "stop_timeout", "supervisor_config", "uptime_s", "check_mode"):
        assert word in proc.stdout
    as_json = subprocess.run(
        [str(BIN / "ansible-doc"), "--json", "aitbc.ops.service"],
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
        check=True,
    )
    doc = json.loads(as_json.stdout)["aitbc.ops.service"]["doc"]
    assert doc["options"]["backend"]["choices"] == [
        "auto",
        "process",
        "systemd",
        "supervisor",
        "docker",
        "sysv",
    ]


# ----------------------------------------------------------------- supervisor backend, real supervisord


@dataclass
class Supervisord:
    config: Path
    pid: int
    workdir: Path


@pytest.fixture
def supervisord(tmp_path: Path, reaper: Reaper) -> Iterator[Supervisord]:
    if shutil.which("supervisord") is None or shutil.which("supervisorctl") is None:
        pytest.skip("supervisor is not installed (apt-get install supervisor)")
    work = tmp_path / "sv"
    work.mkdir()
    sock = work / "supervisor.sock"
    if len(str(sock)) > 100:
        pytest.skip(f"unix socket path too long: {sock}")
    config = work / "supervisord.conf"
    config.write_text(
        f"""[unix_http_server]
file={sock}

[supervisord]
user=root
logfile={work}/supervisord.log
pidfile={work}/supervisord.pid
childlogdir={work}

[rpcinterface:supervisor]
supervisor.rpcinterface_factory = supervisor.rpcinterface:make_main_rpcinterface

[supervisorctl]
serverurl=unix://{sock}

[program:sleeper]
command={sleeper(reaper.marker)}
autostart=false
startsecs=1
stopwaitsecs=5
stdout_logfile={work}/sleeper.log
redirect_stderr=true

[program:crasher]
command=/bin/sh -c "echo crasher-says-boom {reaper.marker}; exit 3"
autostart=false
startsecs=1
startretries=0
stdout_logfile={work}/crasher.log
redirect_stderr=true
"""
    )
    with open(work / "supervisord.out", "ab") as out:
        proc = subprocess.Popen(
            ["supervisord", "-n", "-c", str(config)],
            stdin=subprocess.DEVNULL,
            stdout=out,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
    try:
        ready = wait_for(
            lambda: (
                subprocess.run(
                    ["supervisorctl", "-c", str(config), "pid"], capture_output=True, text=True, check=False
                ).stdout.strip()
                == str(proc.pid)
            ),
            15,
        )
        assert ready, (work / "supervisord.out").read_text()
        yield Supervisord(config, proc.pid, work)
    finally:
        # supervisord stops its programs on SIGTERM; KILL it (by pid) if it does not exit in time.
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(timeout=15)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(timeout=5)


def test_supervisor_backend(ansible_env: dict[str, str], supervisord: Supervisord, reaper: Reaper) -> None:
    base = {
        "name": "sleeper-svc",
        "backend": "supervisor",
        "program": "sleeper",
        "supervisor_config": str(supervisord.config),
    }

    status = adhoc(ansible_env, base)
    assert status.status == "SUCCESS"
    assert status.result["service"] == {
        "name": "sleeper-svc",
        "backend": "supervisor",
        "active": False,
        "pid": None,
        "uptime_s": None,
        "detail": "STOPPED Not started",
    }

    start = adhoc(ansible_env, {**base, "state": "started"})
    assert start.status == "CHANGED", start.stdout
    pid = reaper.add(start.result["service"]["pid"])
    assert alive(pid) and start.result["service"]["active"] is True
    assert isinstance(start.result["service"]["uptime_s"], float)

    again = adhoc(ansible_env, {**base, "state": "started"})
    assert (
        again.status == "SUCCESS"
        and again.result["changed"] is False
        and again.result["service"]["pid"] == pid
    )

    # backend auto: no command or pidfile, no systemd here, and supervisorctl knows the program
    auto = adhoc(ansible_env, {"name": "sleeper", "supervisor_config": str(supervisord.config)})
    assert auto.result["service"]["backend"] == "supervisor" and auto.result["service"]["pid"] == pid

    check_stop = adhoc(ansible_env, {**base, "state": "stopped"}, extra=["--check"])
    assert check_stop.status == "CHANGED" and alive(pid)

    restart = adhoc(ansible_env, {**base, "state": "restarted"})
    assert restart.status == "CHANGED"
    new_pid = reaper.add(restart.result["service"]["pid"])
    assert new_pid != pid and alive(new_pid) and not alive(pid)

    stop = adhoc(ansible_env, {**base, "state": "stopped"})
    assert stop.status == "CHANGED" and stop.result["service"]["active"] is False
    assert stop.result["service"]["detail"].startswith("STOPPED")
    assert wait_for(lambda: not alive(new_pid), 5)
    assert adhoc(ansible_env, {**base, "state": "stopped"}).result["changed"] is False

    crash = adhoc(ansible_env, {**base, "name": "crasher", "program": "crasher", "state": "started"})
    assert crash.status == "FAILED!"
    assert crash.result["msg"] == "supervisorctl start crasher failed: crasher: ERROR (spawn error)"
    assert any("crasher-says-boom" in line for line in crash.result["log_tail"])

    unknown = adhoc(ansible_env, {**base, "program": "nope"})
    assert unknown.status == "FAILED!" and unknown.result["msg"] == "supervisor program not found: nope"


# --------------------------------------------------------------------------- process backend over SSH


def test_process_daemon_outlives_the_ssh_session(
    ssh_hosts, ansible_env: dict[str, str], reaper: Reaper
) -> None:
    """With pipelining the module runs on the SSH channel's stdin/stdout: the daemon must hold neither, and
    must keep running when the session, and even sshd, goes away."""
    pool = ssh_hosts
    host = pool.host("t1")
    args = process_args(Path(host.state_dir), reaper.marker, "svc-ssh")
    target = ["-i", str(pool.inventory)]

    start = adhoc(ansible_env, {**args, "state": "started"}, host="t1", target=target)
    assert start.status == "CHANGED", start.stdout + start.stderr
    pid = reaper.add(start.result["service"]["pid"])
    assert start.elapsed < 30 and alive(pid)

    pool.stop_sshd("t1")  # every SSH session of t1 is gone now
    try:
        time.sleep(0.5)
        assert alive(pid)
    finally:
        pool.start_sshd("t1")

    again = adhoc(ansible_env, {**args, "state": "started"}, host="t1", target=target)
    assert again.status == "SUCCESS" and again.result["service"]["pid"] == pid
    stop = adhoc(ansible_env, {**args, "state": "stopped"}, host="t1", target=target)
    assert stop.status == "CHANGED" and not alive(pid)

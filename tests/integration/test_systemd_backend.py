"""The systemd backend of aitbc.ops.service and the aitbc.ops.systemd_units role, on a real systemd host:
Debian booted as PID 1 under systemd-nspawn (nspawn.py), reached over real SSH with the repository's
ansible.cfg. The role installs the catalogue as aitbc-<service>.service units; the module then controls
aitbc-coordinator-api.service through systemctl and reads its journal."""

from __future__ import annotations

import json
import re
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path

import pytest
import yaml
from nspawn import SystemdHost

pytestmark = pytest.mark.integration

BIN = Path(sys.executable).parent
UNIT = "aitbc-coordinator-api.service"
COORDINATOR_HEALTH = "http://127.0.0.1:18011/health"
HEADER = re.compile(r"^(?P<host>\S+) \| (?P<status>[A-Z]+!?) => ", re.MULTILINE)
RECAP = re.compile(
    r"^(?P<host>\S+)\s+: ok=\d+\s+changed=(?P<changed>\d+)\s+unreachable=\d+\s+failed=(?P<failed>\d+)",
    re.MULTILINE,
)
ANSIBLE_TIMEOUT = 300


# --------------------------------------------------------------------------- running Ansible


@dataclass
class Play:
    rc: int
    changed: int
    failed: int
    stdout: str


def playbook(env: dict[str, str], host: SystemdHost, path: Path, *extra: str) -> Play:
    argv = [str(BIN / "ansible-playbook"), "-i", str(host.inventory), str(path), *extra]
    proc = subprocess.run(
        argv, env=env, capture_output=True, text=True, timeout=ANSIBLE_TIMEOUT, stdin=subprocess.DEVNULL
    )
    out = proc.stdout + proc.stderr
    recap = {m["host"]: m for m in RECAP.finditer(proc.stdout)}
    assert host.name in recap, f"no recap for {host.name} (rc {proc.returncode}):\n{out}"
    row = recap[host.name]
    return Play(proc.returncode, int(row["changed"]), int(row["failed"]), out)


def service(env: dict[str, str], host: SystemdHost, **args: object) -> tuple[str, dict]:
    """`ansible HOST -m aitbc.ops.service -a JSON`: (status word, result)."""
    status, result, _warnings = service_warned(env, host, **args)
    return status, result


def service_warned(env: dict[str, str], host: SystemdHost, **args: object) -> tuple[str, dict, str]:
    """As service(), with Ansible's output besides (the module's warnings are shown there, not in the
    result)."""
    args = {"name": "coordinator-api", "unit": UNIT, "backend": "systemd", **args}
    argv = [str(BIN / "ansible"), host.name, "-i", str(host.inventory), "-m", "aitbc.ops.service"]
    proc = subprocess.run(
        [*argv, "-a", json.dumps(args)],
        env=env,
        capture_output=True,
        text=True,
        timeout=ANSIBLE_TIMEOUT,
        stdin=subprocess.DEVNULL,
    )
    match = HEADER.search(proc.stdout)
    assert match, f"no result (rc {proc.returncode}):\n{proc.stdout}\n{proc.stderr}"
    result, _end = json.JSONDecoder().raw_decode(proc.stdout, match.end())
    return match["status"], result, proc.stdout + proc.stderr


def unit_props(host: SystemdHost, unit: str = UNIT) -> dict[str, str]:
    out = host.run(f"systemctl show {unit} -p ActiveState,SubState,MainPID,Result", check=True).stdout
    return dict(line.split("=", 1) for line in out.splitlines() if "=" in line)


def ensure(host: SystemdHost, action: str, unit: str = UNIT) -> None:
    """Set a precondition with systemctl itself (not the module under test)."""
    host.run(f"systemctl {action} {unit}", check=True)


def wait_for(predicate, timeout: float = 10.0) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return True
        time.sleep(0.1)
    return predicate()


HEALTH = {
    "probes": [{"type": "http", "name": "coordinator health", "url": COORDINATOR_HEALTH}],
    "timeout": 20,
    "interval": 0.2,
}


# --------------------------------------------------------------------------- the role


@pytest.fixture(scope="module")
def role_runs(
    systemd_host: SystemdHost, ansible_env: dict[str, str], tmp_path_factory: pytest.TempPathFactory
) -> dict[str, Play]:
    """Apply aitbc.ops.systemd_units three times: --check on the fresh host, for real, then again."""
    book = tmp_path_factory.mktemp("systemd-units") / "units.yml"
    play = [
        {"name": "AITBC units", "hosts": "aitbc", "gather_facts": False, "roles": ["aitbc.ops.systemd_units"]}
    ]
    book.write_text(yaml.safe_dump(play, sort_keys=False))
    # The systemd host is shared by the session: start from a host without any of our units or files.
    systemd_host.run(
        "systemctl stop 'aitbc-*' 2>/dev/null; rm -f /etc/systemd/system/aitbc-*.service"
        " /etc/systemd/system/multi-user.target.wants/aitbc-*.service;"
        " systemctl daemon-reload; rm -rf /opt/aitbc",
        check=True,
    )
    runs: dict[str, Play] = {}
    runs["check"] = playbook(ansible_env, systemd_host, book, "--check")
    runs["check_left"] = Play(
        0, 0, 0, systemd_host.run("ls /etc/systemd/system/aitbc-* /opt/aitbc 2>&1").stdout
    )
    runs["first"] = playbook(ansible_env, systemd_host, book)
    runs["second"] = playbook(ansible_env, systemd_host, book)
    runs["second_check"] = playbook(ansible_env, systemd_host, book, "--check", "--diff")
    return runs


def test_role_check_mode_on_fresh_host_changes_nothing(role_runs: dict[str, Play]) -> None:
    check = role_runs["check"]
    assert check.rc == 0 and check.failed == 0, check.stdout
    assert check.changed > 0, check.stdout  # it reports what it would do
    assert "No such file" in role_runs["check_left"].stdout, role_runs["check_left"].stdout


def test_role_installs_and_starts_every_unit(role_runs: dict[str, Play], systemd_host: SystemdHost) -> None:
    first = role_runs["first"]
    assert first.rc == 0 and first.failed == 0 and first.changed > 0, first.stdout
    names = ["redis", "coordinator-api", "blockchain-node", "blockchain-rpc", "wallet-daemon"]
    units = " ".join(f"aitbc-{n}.service" for n in names)
    active = systemd_host.run(f"systemctl is-active {units}").stdout.split()
    assert active == ["active"] * len(names), active
    enabled = systemd_host.run(f"systemctl is-enabled {units}").stdout.split()
    assert enabled == ["enabled"] * len(names), enabled
    unit = systemd_host.run(f"systemctl cat {UNIT}", check=True).stdout
    program = "/opt/aitbc/apps/coordinator-api/current/aitbc_demo.py"
    assert f"ExecStart=/usr/bin/python3 {program} coordinator --port 18011" in unit
    assert 'Environment="APP_ENV=demo"' in unit and "Restart=no" in unit
    assert "StandardOutput=append:/opt/aitbc/log/coordinator-api.log" in unit
    health = systemd_host.run(
        f"python3 -c \"import urllib.request as u; print(u.urlopen('{COORDINATOR_HEALTH}').read().decode())\""
    )
    assert json.loads(health.stdout)["status"] == "ok", health


def test_role_is_idempotent(role_runs: dict[str, Play]) -> None:
    for run in ("second", "second_check"):
        play = role_runs[run]
        assert play.rc == 0 and play.failed == 0 and play.changed == 0, play.stdout


# --------------------------------------------------------------------------- the module's systemd backend


def test_status_reports_the_main_pid(
    role_runs: dict[str, Play], systemd_host: SystemdHost, ansible_env
) -> None:
    ensure(systemd_host, "start")
    status, result = service(ansible_env, systemd_host, state="status")
    assert status == "SUCCESS" and not result["changed"], result
    svc = result["service"]
    assert svc["backend"] == "systemd" and svc["active"] is True and svc["detail"] == "active/running", svc
    assert svc["pid"] == int(unit_props(systemd_host)["MainPID"]) > 1
    assert svc["uptime_s"] is not None and svc["uptime_s"] >= 0


def test_stop_then_stop_again(role_runs: dict[str, Play], systemd_host: SystemdHost, ansible_env) -> None:
    ensure(systemd_host, "start")
    status, result = service(ansible_env, systemd_host, state="stopped")
    assert status == "CHANGED" and result["changed"], result
    assert result["service"]["active"] is False and result["service"]["pid"] is None
    assert unit_props(systemd_host)["ActiveState"] == "inactive"
    status, result = service(ansible_env, systemd_host, state="stopped")
    assert status == "SUCCESS" and not result["changed"], result
    assert result["msg"] == "coordinator-api is already stopped"


def test_start_waits_until_healthy(
    role_runs: dict[str, Play], systemd_host: SystemdHost, ansible_env
) -> None:
    ensure(systemd_host, "stop")
    status, result = service(ansible_env, systemd_host, state="started", wait_healthy=HEALTH)
    assert status == "CHANGED" and result["service"]["active"], result
    assert [p["ok"] for p in result["probes"]] == [True], result["probes"]
    assert unit_props(systemd_host)["SubState"] == "running"
    status, result = service(ansible_env, systemd_host, state="started")
    assert status == "SUCCESS" and not result["changed"], result


def test_restart_changes_the_pid(role_runs: dict[str, Play], systemd_host: SystemdHost, ansible_env) -> None:
    ensure(systemd_host, "start")
    before = int(unit_props(systemd_host)["MainPID"])
    status, result = service(ansible_env, systemd_host, state="restarted", wait_healthy=HEALTH)
    assert status == "CHANGED", result
    assert result["service"]["pid"] not in (None, before), (before, result["service"])
    assert result["service"]["pid"] == int(unit_props(systemd_host)["MainPID"])


def test_a_restart_applies_the_env_file_over_the_units_environment(
    role_runs: dict[str, Play], systemd_host: SystemdHost, ansible_env
) -> None:
    # What role aitbc.ops.config writes (0600); the unit names it in EnvironmentFile=, never its values.
    env_file = "/opt/aitbc/config/coordinator-api.env"
    assert f"EnvironmentFile=-{env_file}" in systemd_host.run(f"systemctl cat {UNIT}", check=True).stdout
    systemd_host.run(
        f"install -d -m 0750 /opt/aitbc/config && umask 077 && "
        f"printf 'APP_ENV=staging\\nHMAC_SECRET=from-the-env-file\\n' > {env_file}",
        check=True,
    )
    try:
        status, result = service(ansible_env, systemd_host, state="restarted", wait_healthy=HEALTH)
        assert status == "CHANGED", result
        environ = systemd_host.run(f"tr '\\0' '\\n' < /proc/{result['service']['pid']}/environ").stdout
        assert "HMAC_SECRET=from-the-env-file" in environ.splitlines()
        assert "APP_ENV=staging" in environ.splitlines()  # the file wins over Environment="APP_ENV=demo"
    finally:
        # Back to the unit's own environment; reset-failed flushes the start rate counter, which these
        # extra starts would otherwise leave near systemd's limit (5 in 10 s) for the next tests.
        systemd_host.run(
            f"rm -f {env_file} && systemctl restart {UNIT} && systemctl reset-failed {UNIT}", check=True
        )


# What the env_file module writes must reach the service unchanged through EnvironmentFile= (systemd's own
# parser); the process backend reads the same grammar (tests/unit/plugins/module_utils/test_service_process).
QUOTING_VALUES = {
    "SVC_DOLLAR": "abc$def",
    "SVC_BRACES": "${HOME}x",
    "SVC_QUOTES": """q"uo'te""",
    "SVC_BACKSLASH": "back\\slash\\n\\",
    "SVC_SPACES": "  two words  ",
    "SVC_HASH": "x # not a comment",
    "SVC_TICKS": "`id` $(id)",
    "SVC_MIXED": """a'b"c\\$d`e;f""",
}


def test_env_file_values_reach_a_systemd_service_exactly(
    role_runs: dict[str, Play], systemd_host: SystemdHost, ansible_env
) -> None:
    env_file = "/opt/aitbc/config/coordinator-api.env"
    systemd_host.run("install -d -m 0750 /opt/aitbc/config", check=True)
    args = {"path": env_file, "values": QUOTING_VALUES, "mode": "0600"}
    argv = [
        str(BIN / "ansible"),
        systemd_host.name,
        "-i",
        str(systemd_host.inventory),
        "-m",
        "aitbc.ops.env_file",
    ]
    proc = subprocess.run(
        [*argv, "-a", json.dumps(args)],
        env=ansible_env,
        capture_output=True,
        text=True,
        timeout=ANSIBLE_TIMEOUT,
    )
    assert proc.returncode == 0, proc.stdout + proc.stderr
    try:
        status, result = service(ansible_env, systemd_host, state="restarted", wait_healthy=HEALTH)
        assert status == "CHANGED", result
        raw = systemd_host.run(f"cat /proc/{result['service']['pid']}/environ", check=True).stdout
        environ = dict(item.partition("=")[::2] for item in raw.split("\0") if item)
        assert {key: environ.get(key) for key in QUOTING_VALUES} == QUOTING_VALUES
    finally:
        systemd_host.run(
            f"rm -f {env_file} && systemctl restart {UNIT} && systemctl reset-failed {UNIT}", check=True
        )


def test_auto_backend_picks_systemd(
    role_runs: dict[str, Play], systemd_host: SystemdHost, ansible_env
) -> None:
    status, result = service(ansible_env, systemd_host, backend="auto", state="status")
    assert status == "SUCCESS" and result["service"]["backend"] == "systemd", result


def test_kill_9_is_seen_as_failed_and_remediated(
    role_runs: dict[str, Play], systemd_host: SystemdHost, ansible_env
) -> None:
    ensure(systemd_host, "start")
    main_pid = int(unit_props(systemd_host)["MainPID"])
    # From outside the container: SIGKILL the service's main process by its PID on the controller.
    subprocess.run(["kill", "-9", str(systemd_host.host_pid(main_pid))], check=True)
    assert wait_for(lambda: unit_props(systemd_host)["ActiveState"] == "failed"), unit_props(systemd_host)
    status, result = service(ansible_env, systemd_host, state="status")
    assert status == "SUCCESS" and result["service"]["active"] is False, result
    assert result["service"]["detail"] == "failed/failed" and result["service"]["pid"] is None
    assert unit_props(systemd_host)["Result"] == "signal"
    # Restart=no left it down; the module's `started` is the remediation.
    status, result = service(ansible_env, systemd_host, state="started", wait_healthy=HEALTH)
    assert status == "CHANGED" and result["service"]["active"], result


# Units of our own with Restart=always (the catalogue's use Restart=no): a crash systemd repairs itself, and
# one that crashes at once until its start limit.
CRASHY = "aitbc-test-crashy.service"
SHORT_LIVED = "aitbc-test-short-lived.service"
RECOVERING = "aitbc-test-recovering.service"
RESTART_ALWAYS = """[Service]
ExecStart={exec_start}
Restart=always
RestartSec=200ms
[Unit]
StartLimitIntervalSec=60
StartLimitBurst={burst}
"""


@pytest.fixture
def own_unit(systemd_host: SystemdHost):
    """Install a unit from RESTART_ALWAYS; stopped, reset and removed afterwards."""
    installed: list[str] = []

    def install(unit: str, exec_start: str, burst: int = 100) -> None:
        text = RESTART_ALWAYS.format(exec_start=exec_start, burst=burst)
        systemd_host.run(
            f"cat > /etc/systemd/system/{unit} <<'EOF'\n{text}EOF\nsystemctl daemon-reload", check=True
        )
        installed.append(unit)

    yield install
    for unit in installed:
        systemd_host.run(
            f"systemctl stop {unit}; systemctl reset-failed {unit}; rm -f /etc/systemd/system/{unit};"
            " systemctl daemon-reload"
        )


def test_a_crash_that_systemd_repaired_shows_in_status(
    systemd_host: SystemdHost, ansible_env, own_unit
) -> None:
    own_unit(CRASHY, "/bin/sleep infinity")
    ensure(systemd_host, "start", CRASHY)
    before = int(unit_props(systemd_host, CRASHY)["MainPID"])
    systemd_host.run(f"systemctl kill -s KILL {CRASHY}", check=True)

    def repaired() -> bool:
        props = unit_props(systemd_host, CRASHY)
        return props["SubState"] == "running" and int(props["MainPID"]) not in (0, before)

    assert wait_for(repaired), unit_props(systemd_host, CRASHY)
    args = {"name": "crashy", "unit": CRASHY}
    status, result, output = service_warned(ansible_env, systemd_host, state="status", **args)
    svc = result["service"]
    assert status == "SUCCESS" and svc["active"] is True and svc["restarts"] >= 1, result
    assert re.match(r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ$", svc["active_since"]), svc
    assert svc["result"] == "success", svc  # systemd resets Result on the restart: the journal names it
    warning = f"{CRASHY} was restarted by systemd {svc['restarts']} time(s) (last result: signal)"
    assert warning in " ".join(output.split()), output
    # `started` on the repaired unit changes nothing, and says so too.
    status, result, output = service_warned(ansible_env, systemd_host, state="started", **args)
    assert status == "SUCCESS" and not result["changed"] and result["service"]["restarts"] >= 1, result
    assert "restarted by systemd" in output, output


def test_a_start_limit_hit_is_reset_and_reported_with_its_cause(
    systemd_host: SystemdHost, ansible_env, own_unit
) -> None:
    own_unit(SHORT_LIVED, "/bin/sh -c 'echo cannot bind 0.0.0.0:6399 >&2; exit 3'", burst=3)
    systemd_host.run(f"systemctl start {SHORT_LIVED}")
    # systemd 252 keeps Result=exit-code when Restart= runs into the limit; only the journal says it.
    journal = f"journalctl -u {SHORT_LIVED} --no-pager | grep -q 'Start request repeated too quickly'"
    assert wait_for(lambda: systemd_host.run(journal).returncode == 0)
    assert unit_props(systemd_host, SHORT_LIVED)["ActiveState"] == "failed"
    status, result = service(ansible_env, systemd_host, name="short-lived", unit=SHORT_LIVED, state="started")
    assert status == "FAILED!", result
    msg = result["msg"]
    assert "\n" not in msg, msg
    assert "start request repeated too quickly (start-limit-hit); reset-failed and retried" in msg, msg
    assert "status=3" in msg and "cannot bind 0.0.0.0:6399" in msg, msg
    assert any(SHORT_LIVED in line for line in result["log_tail"]), result
    assert "fatal signal" not in msg


def test_journal_is_readable_and_feeds_log_tail(
    role_runs: dict[str, Play], systemd_host: SystemdHost, ansible_env
) -> None:
    journal = systemd_host.ssh(f"journalctl -u {UNIT} --no-pager -n 50")
    assert journal.returncode == 0 and "Started aitbc-coordinator-api.service" in journal.stdout, journal
    # A health wait that cannot pass fails with the unit's journal as log_tail (the backend's logs()).
    bad = {
        "probes": [{"type": "http", "name": "nothing there", "url": "http://127.0.0.1:9/health"}],
        "timeout": 1,
        "interval": 0.2,
    }
    ensure(systemd_host, "stop")
    status, result = service(ansible_env, systemd_host, state="started", wait_healthy=bad)
    assert status == "FAILED!" and "not healthy" in result["msg"], result
    assert any("aitbc-coordinator-api.service" in line for line in result["log_tail"]), result["log_tail"]


# --------------------------------------------------------------------------- deploys through systemd


def test_deploy_and_automatic_rollback_through_systemd_units(
    role_runs: dict[str, Play], systemd_host: SystemdHost, tmp_path: Path
) -> None:
    """opsrunner deploy restarts aitbc-coordinator-api.service through systemctl: release 2 goes live;
    the broken release 3 fails its gate and the unit runs release 2 again."""
    from stack import opsrunner_json

    ensure(systemd_host, "start")
    data = yaml.safe_load(systemd_host.inventory.read_text())
    host_vars = data["all"]["children"]["aitbc"]["hosts"][systemd_host.name]
    host_vars["aitbc_service_overrides"] = {"coordinator-api": {"backend": "systemd", "unit": UNIT}}
    host_vars["deploy_gate_timeout"] = 8
    (tmp_path / "inv").mkdir()
    inventory = tmp_path / "inv" / "hosts.yml"
    inventory.write_text(yaml.safe_dump(data))
    (tmp_path / "inv" / "group_vars").symlink_to(
        Path(__file__).resolve().parents[2] / "inventory" / "group_vars"
    )
    demo = Path(__file__).resolve().parents[2] / "demo" / "aitbc_demo.py"
    for version, broken in (("2", []), ("3", ["--broken"])):
        argv = [
            sys.executable,
            str(demo),
            "release",
            "--version",
            version,
            "--out",
            str(tmp_path / f"{version}.tgz"),
        ]
        subprocess.run(argv + broken, check=True, capture_output=True)

    before = int(unit_props(systemd_host)["MainPID"])
    rc, result = opsrunner_json(
        "deploy", "2", "--from", str(tmp_path / "2.tgz"), "-i", str(inventory), cwd=tmp_path
    )
    assert rc == 0, result
    assert result["releases"][systemd_host.name] == {"current": "2", "previous": "1"}
    props = unit_props(systemd_host)
    assert props["ActiveState"] == "active" and int(props["MainPID"]) != before
    served = systemd_host.run(
        f"python3 -c \"import urllib.request as u; print(u.urlopen('{COORDINATOR_HEALTH}').read().decode())\""
    )
    assert '"version": "2"' in served.stdout, served

    rc, result = opsrunner_json(
        "deploy", "3", "--from", str(tmp_path / "3.tgz"), "-i", str(inventory), cwd=tmp_path
    )
    assert rc == 1
    assert result["releases"][systemd_host.name]["current"] == "2"
    assert unit_props(systemd_host)["ActiveState"] == "active"
    served = systemd_host.run(
        f"python3 -c \"import urllib.request as u; print(u.urlopen('{COORDINATOR_HEALTH}').read().decode())\""
    )
    assert '"version": "2"' in served.stdout, served


def test_a_start_limit_hit_whose_cause_is_gone_recovers(
    systemd_host: SystemdHost, ansible_env, own_unit
) -> None:
    flag = "/run/aitbc-test-may-start"
    systemd_host.run(f"rm -f {flag}", check=True)
    own_unit(RECOVERING, f"/bin/sh -c 'test -e {flag} || exit 3; exec sleep infinity'", burst=3)
    systemd_host.run(f"systemctl start {RECOVERING}")
    journal = f"journalctl -u {RECOVERING} --no-pager | grep -q 'Start request repeated too quickly'"
    assert wait_for(lambda: systemd_host.run(journal).returncode == 0)
    systemd_host.run(f"touch {flag}", check=True)  # the cause is fixed; the start limit still refuses
    try:
        args = {"name": "recovering", "unit": RECOVERING}
        status, result = service(ansible_env, systemd_host, state="started", **args)
        assert status == "CHANGED", result
        assert result["msg"] == "recovering started (start limit was hit: reset-failed and retried)", result
        assert result["service"]["active"] is True and result["service"]["detail"] == "active/running"
    finally:
        systemd_host.run(f"rm -f {flag}")

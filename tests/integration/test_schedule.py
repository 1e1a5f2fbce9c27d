"""The aitbc.ops.schedule role (playbooks/schedule.yml) through real ansible-playbook.

cron backend: on an SSH test host (t1). Hosts share the controller's filesystem, so every test points the
cron file, the systemd unit folder and the lock folder into its own folder under t1's state dir.
systemd backend: on a real systemd host (systemd-nspawn, tests/integration/nspawn.py), when one can boot.
Unit templates: rendered with the role's own defaults and checked by `systemd-analyze verify`.
"""

from __future__ import annotations

import fcntl
import json
import re
import shlex
import shutil
import subprocess
import sys
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
import yaml

pytestmark = pytest.mark.integration

REPO_ROOT = Path(__file__).resolve().parents[2]
BIN = Path(sys.executable).parent
PLAYBOOK = REPO_ROOT / "playbooks" / "schedule.yml"
ROLE = REPO_ROOT / "roles" / "schedule"
ANSIBLE_TIMEOUT = 180
DEFAULT_CRON = {"heartbeat": "*/30 * * * *", "log-review": "0 6 * * *", "backup": "0 1 * * *"}
DEFAULT_COMMANDS = {"heartbeat": "heartbeat", "log-review": "logs review", "backup": "backup"}
# A job whose command needs every kind of escaping: % (cron: newline; systemd: specifier), $ (systemd:
# variable), quotes and a backslash.
PROBE_COMMAND = 'printf \'%s|%s|\\\\\\n\' "$PWD" "${OPSRUNNER_MEMORY_DIR:-unset}" >> '


def probe_command(out: object) -> str:
    return PROBE_COMMAND + shlex.quote(str(out))


@dataclass
class Run:
    rc: int
    stdout: str
    stderr: str

    def recap(self, host: str) -> dict[str, int]:
        match = re.search(rf"^{re.escape(host)}\s*:\s*(.*)$", self.stdout, re.MULTILINE)
        assert match, f"no recap for {host} (rc {self.rc}):\n{self.stdout}\n{self.stderr}"
        return {k: int(v) for k, v in re.findall(r"(\w+)=(\d+)", match.group(1))}

    def ok(self, host: str) -> dict[str, int]:
        assert self.rc == 0, f"ansible-playbook failed (rc {self.rc}):\n{self.stdout}\n{self.stderr}"
        recap = self.recap(host)
        assert recap["failed"] == 0 and recap["unreachable"] == 0, self.stdout
        return recap

    def report(self) -> list[str]:
        """The lines of the show action's report."""
        match = re.search(r"Report the installed jobs\].*?=> (\{.*?\n\})", self.stdout, re.DOTALL)
        assert match, f"no show report:\n{self.stdout}"
        return json.loads(match.group(1))["msg"]


def play(
    env: dict[str, str],
    inventory: Path,
    host: str,
    extra: dict,
    *,
    state: str = "present",
    check: bool = False,
) -> Run:
    argv = [str(BIN / "ansible-playbook"), "-i", str(inventory), str(PLAYBOOK)]
    argv += ["-e", json.dumps({**extra, "schedule_hosts": host, "schedule_state": state})]
    if check:
        argv += ["--check", "--diff"]
    proc = subprocess.run(
        argv,
        env=env,
        capture_output=True,
        text=True,
        timeout=ANSIBLE_TIMEOUT,
        stdin=subprocess.DEVNULL,
        check=False,
    )
    return Run(proc.returncode, proc.stdout, proc.stderr)


def cron_entries(path: Path) -> dict[str, list[str]]:
    """{entry name: [schedule, user, command]} from a cron file written by the role."""
    entries, name = {}, None
    for line in path.read_text().splitlines():
        if line.startswith("#Ansible: "):
            name = line.removeprefix("#Ansible: ")
        elif name and line.strip():
            width = 1 if line.startswith("@") else 5
            fields = line.split(None, width + 1)
            entries[name] = [" ".join(fields[:width]), fields[width], fields[width + 1]]
            name = None
    return entries


def cron_daemon_missing() -> str | None:
    daemons = yaml.safe_load((ROLE / "defaults" / "main.yml").read_text())["schedule_cron_daemons"]
    if not any(Path(d).exists() for d in daemons):
        return "the cron backend needs a cron daemon on the test host: apt-get install cron"
    return None


# --------------------------------------------------------------------------- cron backend (SSH test host)


@dataclass
class CronCase:
    env: dict[str, str]
    inventory: Path
    host: str
    root: Path
    cron_file: Path
    systemd_dir: Path
    workdir: Path
    vars: dict

    def play(self, state: str = "present", *, check: bool = False, **override: object) -> Run:
        return play(self.env, self.inventory, self.host, {**self.vars, **override}, state=state, check=check)


@pytest.fixture
def cron_case(ssh_hosts, ansible_env) -> Iterator[CronCase]:
    host = ssh_hosts.hosts[0]
    root = host.state_dir / f"schedule-{uuid.uuid4().hex[:8]}"
    for sub in ("cron.d", "systemd", "lock", "work"):
        (root / sub).mkdir(parents=True)
    case = CronCase(
        env=ansible_env,
        inventory=ssh_hosts.inventory,
        host=host.name,
        root=root,
        cron_file=root / "cron.d" / "aitbc-ops",
        systemd_dir=root / "systemd",
        workdir=root / "work",
        vars={
            "schedule_backend": "cron",
            "schedule_cron_file": str(root / "cron.d" / "aitbc-ops"),
            "schedule_systemd_dir": str(root / "systemd"),
            "schedule_lock_dir": str(root / "lock"),
            "schedule_workdir": str(root / "work"),
            "schedule_memory_dir": str(root / "memory"),
        },
    )
    try:
        yield case
    finally:
        shutil.rmtree(root, ignore_errors=True)


@pytest.fixture
def cron_ready(cron_case: CronCase) -> CronCase:
    reason = cron_daemon_missing()
    if reason:
        pytest.skip(reason)
    return cron_case


def test_cron_present_idempotent_check_safe_show_and_absent(cron_ready: CronCase) -> None:
    case = cron_ready
    # --check on a clean host writes nothing.
    assert case.play(check=True).ok(case.host)["changed"] > 0
    assert not case.cron_file.exists()

    assert case.play().ok(case.host)["changed"] > 0
    entries = cron_entries(case.cron_file)
    assert sorted(entries) == ["aitbc-ops-backup", "aitbc-ops-heartbeat", "aitbc-ops-log-review"]
    opsrunner = case.workdir / ".venv" / "bin" / "opsrunner"
    for job, schedule in DEFAULT_CRON.items():
        when, user, command = entries[f"aitbc-ops-{job}"]
        assert when == schedule
        assert user == "root"
        assert command == (
            f"cd {case.workdir} && OPSRUNNER_MEMORY_DIR={case.root / 'memory'} "
            f"flock -n {case.root / 'lock' / f'aitbc-ops-{job}.lock'} timeout 1h "
            f"/bin/sh -c '{opsrunner} {DEFAULT_COMMANDS[job]}'"
        )
    assert oct(case.cron_file.stat().st_mode & 0o777) == "0o644"  # cron ignores group/other-writable files

    assert case.play().ok(case.host)["changed"] == 0

    shown = case.play("show")
    assert shown.ok(case.host)["changed"] == 0
    lines = shown.report()
    assert len(lines) == 3, lines
    assert lines[0].startswith(f"heartbeat: cron {case.cron_file} '*/30 * * * *' (runs as root) runs: cd ")
    assert lines[1].startswith(f"log-review: cron {case.cron_file} '0 6 * * *' (runs as root) runs: cd ")
    assert lines[2].startswith(f"backup: cron {case.cron_file} '0 1 * * *' (runs as root) runs: cd ")

    before = (case.cron_file.read_bytes(), case.cron_file.stat().st_mtime_ns)
    assert case.play("absent", check=True).ok(case.host)["changed"] > 0
    assert (case.cron_file.read_bytes(), case.cron_file.stat().st_mtime_ns) == before

    assert case.play("absent").ok(case.host)["changed"] > 0
    assert not case.cron_file.exists()
    assert list(case.root.rglob("*aitbc-ops*")) == []
    assert case.play("absent").ok(case.host)["changed"] == 0
    assert "no aitbc-ops jobs installed" in case.play("show").report()[0]


def test_cron_enable_disable_and_drop_jobs(cron_ready: CronCase) -> None:
    case = cron_ready
    jobs = yaml.safe_load((ROLE / "defaults" / "main.yml").read_text())["schedule_jobs"]
    case.play().ok(case.host)
    assert cron_entries(case.cron_file)["aitbc-ops-backup"][0] == "0 1 * * *"

    # Disabled, then dropped from the list: each run removes what is no longer wanted.
    disabled = [{**job, "enabled": job["name"] != "backup"} for job in jobs]
    case.play(schedule_jobs=disabled).ok(case.host)
    assert "aitbc-ops-backup" not in cron_entries(case.cron_file)
    case.play(schedule_jobs=[{**jobs[0], "cron": "@hourly"}]).ok(case.host)
    assert cron_entries(case.cron_file) == {
        "aitbc-ops-heartbeat": ["@hourly", "root", cron_entries(case.cron_file)["aitbc-ops-heartbeat"][2]]
    }
    # Nothing enabled: the file itself goes.
    case.play(schedule_jobs=[{**jobs[0], "enabled": False}]).ok(case.host)
    assert not case.cron_file.exists()


def test_cron_line_runs_in_workdir_and_never_overlaps(cron_ready: CronCase) -> None:
    """Run the installed line as cron does (/bin/sh -c, % unescaped): it works, and a held lock skips it."""
    case = cron_ready
    out = case.root / "probe.out"
    job = {"name": "probe", "command": probe_command(out), "on_calendar": "hourly", "cron": "7 * * * *"}
    case.play(schedule_jobs=[job]).ok(case.host)
    _, _, line = cron_entries(case.cron_file)["aitbc-ops-probe"]
    assert "\\%s" in line  # escaped for cron
    run = [line.replace("\\%", "%")]
    subprocess.run(["/bin/sh", "-c", *run], check=True, timeout=30)
    assert out.read_text() == f"{case.workdir}|{case.root / 'memory'}|\\\n"

    with open(case.root / "lock" / "aitbc-ops-probe.lock", "a") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        skipped = subprocess.run(["/bin/sh", "-c", *run], timeout=30, check=False)
    assert skipped.returncode == 1  # flock -n: the previous run still holds the lock
    assert out.read_text().count("\n") == 1


def test_cron_backend_without_cron_daemon_fails_clearly(cron_case: CronCase) -> None:
    case = cron_case
    run = case.play(schedule_cron_daemons=[str(case.root / "no-such-cron")])
    assert run.rc != 0
    assert "cron backend needs a cron daemon: install the cron package" in run.stdout
    assert not case.cron_file.exists()


def test_bad_settings_fail_before_changing_anything(cron_case: CronCase) -> None:
    case = cron_case
    cases = [
        ({"schedule_backend": "launchd"}, "backend auto|systemd|cron (got launchd)"),
        ({"schedule_jobs": [{"name": "Bad Name", "command": "x"}]}, "schedule job Bad Name: needs name"),
    ]
    for override, message in cases:
        run = case.play(**override)
        assert run.rc != 0, override
        assert message in run.stdout, run.stdout
        assert not case.cron_file.exists()
    run = case.play("bogus")
    assert run.rc != 0 and "state must be present|absent|show" in run.stdout


# --------------------------------------------------------------------------- systemd unit templates


def test_unit_templates_pass_systemd_analyze(tmp_path: Path, ansible_env: dict[str, str]) -> None:
    analyze = shutil.which("systemd-analyze")
    if analyze is None:
        pytest.skip("systemd-analyze not found (Debian package systemd)")
    out = tmp_path / "units"
    out.mkdir()
    probe = {
        "name": "probe",
        "description": "100% probe",
        "command": probe_command("/tmp/x y"),
        "on_calendar": "Mon..Fri 02:30",
        "cron": "30 2 * * 1-5",
    }
    # The role's own defaults, vars and templates; every default job, enabled or not, plus the probe.
    pb = tmp_path / "render.yml"
    pb.write_text(
        yaml.safe_dump(
            [
                {
                    "name": "Render the schedule units",
                    "hosts": "localhost",
                    "gather_facts": False,
                    "vars_files": [str(ROLE / "defaults" / "main.yml"), str(ROLE / "vars" / "main.yml")],
                    "tasks": [
                        {
                            "name": "Render",
                            "ansible.builtin.template": {
                                "src": str(ROLE / "templates") + "/job.{{ item.1 }}.j2",
                                "dest": str(out) + "/{{ schedule_prefix }}-{{ item.0.name }}.{{ item.1 }}",
                                "mode": "0644",
                            },
                            "vars": {"job": "{{ item.0 }}"},
                            "loop": "{{ (schedule_jobs + [probe]) | product(['service', 'timer']) | list }}",
                        }
                    ],
                }
            ]
        )
    )
    extra = {
        "probe": probe,
        "schedule_workdir": "/srv/aitbc ops",
        "schedule_memory_dir": "/var/lib/mem $x%",
        "schedule_user": "daemon",
    }
    proc = subprocess.run(
        [str(BIN / "ansible-playbook"), "-i", "localhost,", "-c", "local", str(pb), "-e", json.dumps(extra)],
        env=ansible_env,
        capture_output=True,
        text=True,
        timeout=ANSIBLE_TIMEOUT,
        check=False,
    )
    assert proc.returncode == 0, proc.stdout + proc.stderr
    units = sorted(out.iterdir())
    assert len(units) == 8
    verify = subprocess.run(
        [analyze, "verify", "--man=no", *map(str, units)], capture_output=True, text=True, check=False
    )
    assert verify.returncode == 0 and verify.stderr.strip() == "", verify.stderr
    service = (out / "aitbc-ops-probe.service").read_text()
    # systemd: \\ and \" are C escapes inside quotes, %% a literal %, $$ a literal $.
    command = r"""printf '%%s|%%s|\\\\\\n' \"$$PWD\" \"$${OPSRUNNER_MEMORY_DIR:-unset}\" >> '/tmp/x y'"""
    expected = f'ExecStart=/bin/sh -c "{command}"'
    assert expected in service.splitlines(), service
    assert 'Environment="OPSRUNNER_MEMORY_DIR=/var/lib/mem $$x%%"' in service.splitlines(), service
    assert "WorkingDirectory=/srv/aitbc ops" in service.splitlines(), service
    assert "User=daemon" in service and "TimeoutStartSec=1h" in service
    calendars = [
        re.search(r"^OnCalendar=(.*)$", u.read_text(), re.M).group(1) for u in units if u.suffix == ".timer"
    ]
    cal = subprocess.run([analyze, "calendar", *calendars], capture_output=True, text=True, check=False)
    assert cal.returncode == 0, cal.stderr


# --------------------------------------------------------------------------- systemd backend (nspawn host)


@pytest.fixture(scope="module")
def schedule_systemd_host(systemd_host):
    """The session's systemd host (conftest: nspawn.py); skips where none can boot."""
    return systemd_host


def test_systemd_timers(schedule_systemd_host, ansible_env: dict[str, str]) -> None:
    host = schedule_systemd_host
    job = {
        "name": "probe",
        "command": probe_command("/root/probe.out"),
        "on_calendar": "*-*-* 03:00:00",
        "cron": "0 3 * * *",
    }
    base = yaml.safe_load((ROLE / "defaults" / "main.yml").read_text())["schedule_jobs"]
    extra = {
        "schedule_workdir": "/tmp",
        "schedule_memory_dir": "/var/lib/mem%",
        "schedule_jobs": [*base, job],
    }

    def run(state: str = "present", *, check: bool = False) -> Run:
        return play(ansible_env, host.inventory, host.name, extra, state=state, check=check)

    def sh(cmd: str) -> str:
        return host.run(cmd, timeout=30).stdout

    def timers() -> str:
        return sh("systemctl list-timers --all --no-pager --no-legend 'aitbc-ops-*'")

    def leftovers() -> str:
        return sh("ls /etc/systemd/system /etc/systemd/system/timers.target.wants | grep aitbc-ops || true")

    assert run(check=True).ok(host.name)["changed"] > 0
    assert leftovers() == ""

    assert run().ok(host.name)["changed"] > 0
    listed = timers()
    for name in ("heartbeat", "log-review", "backup", "probe"):
        assert f"aitbc-ops-{name}.timer" in listed, listed
        assert sh(f"systemctl is-enabled aitbc-ops-{name}.timer").strip() == "enabled"
    # The service runs its command in the workdir with the memory dir, escaping intact.
    started = host.run("systemctl start aitbc-ops-probe.service", timeout=60)
    assert started.returncode == 0, started.stderr
    assert sh("cat /root/probe.out") == "/tmp|/var/lib/mem%|\\\n"

    assert run().ok(host.name)["changed"] == 0

    # A changed calendar applies at once; a job dropped from the list loses its timer.
    extra["schedule_jobs"] = [*base, {**job, "on_calendar": "*-*-* 04:00:00"}]
    assert run().ok(host.name)["changed"] > 0
    assert "04:00:00" in sh("systemctl show --property=TimersCalendar aitbc-ops-probe.timer")
    extra["schedule_jobs"] = base
    assert run().ok(host.name)["changed"] > 0
    assert "aitbc-ops-probe" not in timers() + leftovers()
    extra["schedule_jobs"] = [*base, job]
    assert run().ok(host.name)["changed"] > 0

    shown = run("show")
    assert shown.ok(host.name)["changed"] == 0
    lines = shown.report()
    heartbeat = next(
        line for line in lines if line.startswith("heartbeat: systemd aitbc-ops-heartbeat.timer")
    )
    assert "OnCalendar=*:00/30" in heartbeat and "next=-" not in heartbeat, lines
    assert any(line.startswith("list-timers: ") and "aitbc-ops-probe.timer" in line for line in lines)

    assert run("absent", check=True).ok(host.name)["changed"] > 0
    assert "aitbc-ops-heartbeat.timer" in timers()

    assert run("absent").ok(host.name)["changed"] > 0
    assert "aitbc-ops" not in timers()
    assert leftovers() == ""
    assert sh("systemctl list-unit-files --no-legend 'aitbc-ops-*'").strip() == ""
    assert run("absent").ok(host.name)["changed"] == 0

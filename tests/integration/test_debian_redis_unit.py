"""Debian's own redis-server.service (from the package in the nspawn host's rootfs, `User=redis`,
`Restart=always`) operated through a one-file inventory of the user's own with one catalogue entry,
`{backend: systemd, unit: redis-server.service}`, and nothing of AITBC.

`opsrunner service status|stop|start|restart redis` are idempotent; a SIGKILL that systemd repairs shows in
the next status (NRestarts, the warning) and heartbeat; a start-limit hit is reset and retried by
`service start`, and one whose cause persists fails with the real cause in its message."""

from __future__ import annotations

import json
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
import yaml
from nspawn import SystemdHost
from stack import opsrunner

pytestmark = pytest.mark.integration

UNIT = "redis-server.service"
PORT = 6379
DROPIN_DIR = f"/etc/systemd/system/{UNIT}.d"
DROPIN = f"{DROPIN_DIR}/aitbc-test.conf"
REDIS = {
    "backend": "systemd",
    "unit": UNIT,
    "port": PORT,
    "probes": [{"type": "redis", "name": "ping", "port": PORT}],
}


def one_file_inventory(host: SystemdHost, path: Path) -> Path:
    """The nspawn host's connection with a catalogue of Debian's redis only. The derived values are written
    out so the file works with and without the catalogue role's defaults (placement)."""
    generated = yaml.safe_load(host.inventory.read_text())
    connection = generated["all"]["children"]["aitbc"]["hosts"][host.name]
    root = "/var/lib/redis"  # Debian redis' own folder; the heartbeat's disk probe watches it
    values = {
        **connection,
        "ops_site_name": "Cache",
        "aitbc_root": root,
        "aitbc_services": {"redis": REDIS},
    }
    path.write_text(yaml.safe_dump({"all": {"children": {"aitbc": {"hosts": {host.name: values}}}}}))
    return path


def unit_props(host: SystemdHost) -> dict[str, str]:
    props = "ActiveState,SubState,MainPID,Result,NRestarts,User"
    out = host.run(f"systemctl show {UNIT} -p {props}", check=True).stdout
    return dict(line.split("=", 1) for line in out.splitlines() if "=" in line)


def wait_for(predicate: Callable[[], bool], timeout: float = 15.0) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return True
        time.sleep(0.1)
    return predicate()


def main_pid(host: SystemdHost) -> int:
    return int(unit_props(host)["MainPID"])


def kill(host: SystemdHost) -> dict[str, str]:
    """SIGKILL the unit's processes and wait until systemd's Restart=always has it running again with a new
    main pid, or until it gave up (failed: the start limit); returns the unit's properties then."""
    before = main_pid(host)
    host.run(f"systemctl kill -s KILL {UNIT}", check=True)

    def settled() -> bool:
        props = unit_props(host)
        repaired = props["SubState"] == "running" and int(props["MainPID"]) not in (0, before)
        return repaired or props["ActiveState"] == "failed"

    assert wait_for(settled), unit_props(host)
    return unit_props(host)


def kill_and_wait_repaired(host: SystemdHost) -> int:
    """kill(), expecting systemd to repair it; the new main pid."""
    props = kill(host)
    assert props["ActiveState"] == "active", props
    return int(props["MainPID"])


@dataclass
class Ops:
    """`opsrunner ... -i INVENTORY` against the redis inventory, from its own working folder."""

    inventory: Path
    cwd: Path

    def run(self, *args: str) -> tuple[int, dict, str]:
        done = opsrunner("-i", str(self.inventory), *args, "--json", cwd=self.cwd)
        assert done.stdout.strip(), done.stderr
        return done.returncode, json.loads(done.stdout), done.stderr

    def service(self, action: str) -> tuple[int, dict, dict]:
        """(exit code, the service's state, the whole JSON result)."""
        rc, result, _err = self.run("service", action, "redis")
        services = result.get("services") or [None]
        return rc, services[0] or {}, result


def events(result: dict) -> str:
    """The run's recorded Ansible events (module results with their messages), as one text."""
    return "".join(p.read_text() for p in (Path(result["artifact_dir"]) / "job_events").glob("*.json"))


def changed(result: dict) -> int:
    return sum(stats["changed"] for stats in result["hosts"].values())


@pytest.fixture(scope="module")
def ops(systemd_host: SystemdHost, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Ops]:
    """The inventory; Debian's unit starts stopped and is left as found: stopped, not failed, no drop-in."""
    work = tmp_path_factory.mktemp("debian-redis")
    found = unit_props(systemd_host)
    assert found["User"] == "redis", found  # the package's own unit, not one of ours
    assert found["ActiveState"] in ("inactive", "failed"), found  # _customize_rootfs disabled it
    yield Ops(one_file_inventory(systemd_host, work / "cache.yml"), work)
    systemd_host.run(
        f"rm -rf {DROPIN_DIR}; systemctl daemon-reload; systemctl stop {UNIT}; systemctl reset-failed {UNIT}"
    )
    assert unit_props(systemd_host)["ActiveState"] == "inactive"


@pytest.fixture
def dropin(systemd_host: SystemdHost) -> Iterator[Callable[[str], None]]:
    """Install a drop-in for Debian's unit; removed afterwards, the unit stopped and reset."""

    def install(text: str) -> None:
        systemd_host.run(
            f"mkdir -p {DROPIN_DIR} && cat > {DROPIN} <<'EOF'\n{text}EOF\nsystemctl daemon-reload", check=True
        )

    yield install
    systemd_host.run(
        f"rm -rf {DROPIN_DIR}; systemctl daemon-reload; systemctl stop {UNIT}; systemctl reset-failed {UNIT}"
    )


def ping(host: SystemdHost) -> str:
    return host.run(f"redis-cli -p {PORT} ping").stdout.strip()


def test_status_stop_start_restart_are_idempotent(ops: Ops, systemd_host: SystemdHost) -> None:
    rc, svc, result = ops.service("start")
    assert rc == 0 and changed(result) == 1, result
    assert svc["backend"] == "systemd" and svc["active"] is True, svc
    assert svc["pid"] == main_pid(systemd_host) > 1 and ping(systemd_host) == "PONG"
    # Debian's unit runs redis as its own user.
    owner = systemd_host.run(f"ps -o user= -p {svc['pid']}").stdout.strip()
    assert owner == "redis", owner

    rc, svc, result = ops.service("status")
    assert rc == 0 and changed(result) == 0, result
    assert (
        svc["active"] is True and svc["detail"] == "active/running" and svc["pid"] == main_pid(systemd_host)
    )
    assert svc["restarts"] == 0 and svc["result"] == "success" and svc["active_since"], svc

    rc, svc, result = ops.service("stop")
    assert rc == 0 and changed(result) == 1 and svc["active"] is False and svc["pid"] is None, result
    assert unit_props(systemd_host)["ActiveState"] == "inactive"
    rc, svc, result = ops.service("stop")
    assert rc == 0 and changed(result) == 0 and svc["active"] is False, result

    rc, svc, result = ops.service("start")
    assert rc == 0 and changed(result) == 1 and svc["active"] is True, result
    first = svc["pid"]
    rc, svc, result = ops.service("start")
    assert rc == 0 and changed(result) == 0 and svc["pid"] == first, result

    rc, svc, result = ops.service("restart")
    assert rc == 0 and changed(result) == 1, result
    assert svc["pid"] not in (None, first) and svc["pid"] == main_pid(systemd_host), (first, svc)
    assert ping(systemd_host) == "PONG"

    # The text form: one row, running with its pid.
    done = opsrunner("service", "status", "redis", "-i", str(ops.inventory), cwd=ops.cwd)
    assert done.returncode == 0, done.stdout + done.stderr
    row = next(line.split() for line in done.stdout.splitlines() if " redis " in f" {line} ")
    assert row[:5] == [systemd_host.name, "redis", "systemd", "running", str(svc["pid"])], done.stdout


def test_a_crash_systemd_repaired_shows_in_the_next_status(ops: Ops, systemd_host: SystemdHost) -> None:
    systemd_host.run(f"systemctl restart {UNIT} && systemctl reset-failed {UNIT}", check=True)
    rc, svc, _result = ops.service("status")
    assert rc == 0 and svc["restarts"] == 0, svc  # a manual restart zeroes NRestarts

    new_pid = kill_and_wait_repaired(systemd_host)
    rc, svc, result = ops.service("status")
    assert rc == 0 and svc["active"] is True and svc["pid"] == new_pid, result
    assert svc["restarts"] == 1 and svc["active_since"], svc
    warning = f"{UNIT} was restarted by systemd 1 time(s) (last result: signal)"
    assert result["warnings"] == [f"{systemd_host.name}: {warning}"], result
    text = opsrunner("service", "status", "redis", "-i", str(ops.inventory), cwd=ops.cwd)
    assert text.returncode == 0 and f"warning: {systemd_host.name}: {warning}" in text.stdout, text.stdout
    # `start` on the repaired unit changes nothing and still tells.
    rc, svc, result = ops.service("start")
    assert rc == 0 and changed(result) == 0 and svc["restarts"] == 1, result


def test_a_start_limit_hit_is_recovered_by_service_start(
    ops: Ops, systemd_host: SystemdHost, dropin: Callable[[str], None]
) -> None:
    dropin("[Unit]\nStartLimitIntervalSec=120\nStartLimitBurst=2\n[Service]\nRestartSec=100ms\n")
    systemd_host.run(f"systemctl restart {UNIT} && systemctl reset-failed {UNIT}", check=True)
    # reset-failed zeroed the start counter: two repairs pass, the third start in the interval is refused.
    kills = 0
    while unit_props(systemd_host)["ActiveState"] != "failed" and kills < 5:
        kill(systemd_host)
        kills += 1
    assert kills == 3 and unit_props(systemd_host)["ActiveState"] == "failed", (
        kills,
        unit_props(systemd_host),
    )
    journal = f"journalctl -u {UNIT} --no-pager -n 20 | grep -q 'Start request repeated too quickly'"
    assert systemd_host.run(journal).returncode == 0

    rc, svc, result = ops.service("status")
    assert rc == 0 and svc["active"] is False and svc["pid"] is None, result

    rc, svc, result = ops.service("start")
    assert rc == 0 and changed(result) == 1 and svc["active"] is True, result
    assert svc["pid"] == main_pid(systemd_host) and ping(systemd_host) == "PONG"
    # The module's message says why it took a reset-failed; opsrunner keeps it in the run's events only.
    assert "redis started (start limit was hit: reset-failed and retried)" in events(result), result


def test_a_start_limit_hit_whose_cause_persists_fails_with_the_cause(
    ops: Ops, systemd_host: SystemdHost, dropin: Callable[[str], None]
) -> None:
    # A config file that does not exist: redis exits at once, Restart=always loops into the start limit.
    dropin(
        "[Unit]\nStartLimitIntervalSec=120\nStartLimitBurst=3\n[Service]\nRestartSec=100ms\n"
        "ExecStart=\nExecStart=/usr/bin/redis-server /etc/redis/missing.conf --supervised systemd\n"
    )
    systemd_host.run(f"systemctl reset-failed {UNIT}; systemctl start {UNIT}")
    journal = f"journalctl -u {UNIT} --no-pager -n 20 | grep -q 'Start request repeated too quickly'"
    assert wait_for(lambda: systemd_host.run(journal).returncode == 0), unit_props(systemd_host)

    rc, svc, result = ops.service("start")
    assert rc != 0, result
    failures = result["failures"]
    assert len(failures) == 1, result
    msg = failures[0]["message"]
    assert "\n" not in msg and "start request repeated too quickly (start-limit-hit)" in msg, msg
    assert "reset-failed and retried" in msg and "status=1/FAILURE" in msg and "fatal signal" not in msg, msg
    # The module's whole message ends with redis' own line; opsrunner's failure line is cut at 300 chars.
    assert "Fatal error, can't open config file '/etc/redis/missing.conf'" in events(result), result
    # The retry restarted the crash loop; the start limit ends it again.
    assert wait_for(lambda: unit_props(systemd_host)["ActiveState"] == "failed"), unit_props(systemd_host)


# The heartbeat sees a crash systemd repaired through the catalogue's `redis running` probe (type service:
# NRestarts between two heartbeats).
def test_heartbeat_records_a_crash_systemd_repaired(
    ops: Ops, systemd_host: SystemdHost, tmp_path: Path
) -> None:
    memory = tmp_path / "memory"  # not ./ai-memory: every reader and writer must follow --memory-dir
    default_memory = ops.cwd / "ai-memory"  # the module's other tests (no --memory-dir) write there

    def written_by_default() -> dict[Path, int]:
        found = default_memory.rglob("*") if default_memory.exists() else []
        return {p: p.stat().st_size for p in found if p.is_file()}

    before = written_by_default()
    systemd_host.run(f"systemctl restart {UNIT} && systemctl reset-failed {UNIT}", check=True)
    assert wait_for(lambda: ping(systemd_host) == "PONG")

    rc, beat, err = ops.run("--memory-dir", str(memory), "heartbeat")
    assert rc == 0 and beat["healthy"] is True, (beat["checks"], err)
    assert ("redis", "ok") in {(c["service"], c["status"]) for c in beat["checks"]}, beat

    kill_and_wait_repaired(systemd_host)
    rc, beat, err = ops.run("--memory-dir", str(memory), "heartbeat")
    assert rc == 1 and beat["healthy"] is False, (beat["checks"], err)
    rc, listed, err = ops.run("--memory-dir", str(memory), "incidents", "list")
    redis = [i for i in listed if i["service"] == "redis"]
    assert rc == 0 and len(redis) == 1 and redis[0]["host"] == systemd_host.name, listed
    timeline = json.dumps(redis[0]).lower()
    assert "crash" in timeline and "systemd" in timeline, redis[0]
    assert written_by_default() == before

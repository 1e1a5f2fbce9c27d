"""`opsrunner diagnose HOST [SERVICE]` on the demo stack on a real SSH test host and on a real systemd host
(systemd-nspawn, without lsof, netstat or ss), and the failure archive filled by real incident resolutions
(the heartbeat's restarts and `opsrunner incidents resolve`)."""

from __future__ import annotations

import json
import os
import signal
import subprocess
from pathlib import Path

import pytest
import yaml
from nspawn import SystemdHost
from stack import BIN, REPO, opsrunner

from opsrunner.diagnose import load_bundle
from opsrunner.failures import read_archive
from opsrunner.incidents import Incident, IncidentStore
from opsrunner.memory import MemoryStore, utcnow

pytestmark = pytest.mark.integration

UNIT = "aitbc-coordinator-api.service"
COORDINATOR_PORT = 18011


def diagnose(*args: str, cwd: Path, timeout: float = 300) -> subprocess.CompletedProcess[str]:
    """`opsrunner diagnose ARGS`."""
    env = {**os.environ, "ANSIBLE_CONFIG": str(REPO / "ansible.cfg")}
    return subprocess.run(
        [str(BIN / "opsrunner"), "diagnose", *args],
        cwd=cwd,
        env=env,
        capture_output=True,
        text=True,
        timeout=timeout,
    )


def diagnose_json(*args: str, cwd: Path) -> tuple[int, dict]:
    done = diagnose(*args, "--json", cwd=cwd)
    assert done.stdout.strip(), done.stderr
    return done.returncode, json.loads(done.stdout)


def pid_of(host, service: str) -> int:
    return int((host.state_dir / "run" / f"{service}.pid").read_text())


# ----------------------------------------------------------------------------- diagnose over SSH


def test_diagnose_a_service_on_an_ssh_host_attaches_to_its_open_incident(stack, tmp_path: Path) -> None:
    store = MemoryStore(tmp_path / "ai-memory")
    store.ensure_layout()
    incidents = IncidentStore(store)

    def opened(host: str, service: str, check: str) -> Incident:
        incident = Incident(incidents.new_id(), host, service, check, f"{host} {check} failing")
        incidents.save(incident)  # takes the id before the next one is chosen
        return incident

    mine = opened("t1", "coordinator-api", "coordinator-api /health")
    other_host = opened("t2", "coordinator-api", "coordinator-api /health")
    other_service = opened("t1", "redis", "redis ping")

    rc, result = diagnose_json("t1", "coordinator-api", "-i", str(stack.inventory), "-n", "7", cwd=tmp_path)
    assert rc == 0, result
    [bundle] = result["bundles"]
    assert (bundle["host"], bundle["service"], bundle["incidents"]) == ("t1", "coordinator-api", [mine.id])
    diag = bundle["diagnostics"]
    assert bundle["failed_sections"] == [] and diag["sections"] == [
        "load", "cpu", "memory", "disk", "sockets", "processes", "logs", "restarts",
    ]  # fmt: skip
    assert diag["load"]["cpus"] >= 1 and diag["memory"]["total_bytes"] > 0
    assert any(m["mount"] == "/" for m in diag["disk"]["mounts"])

    t1 = stack.host("t1")
    pid = pid_of(t1, "coordinator-api")
    owners = {s["port"]: s for s in diag["sockets"]["listening"] if s["proto"] == "tcp"}
    assert (owners[COORDINATOR_PORT]["pid"], owners[COORDINATOR_PORT]["command"]) == (pid, "python3")
    assert owners[COORDINATOR_PORT]["service"] == "coordinator-api"
    assert (owners[16379]["pid"], owners[16379]["command"]) == (pid_of(t1, "redis"), "redis-server")

    svc = diag["processes"]["services"]["coordinator-api"]
    assert (svc["found_by"], svc["pids"], svc["port_listening"]) == ("pidfile", [pid], True)
    [proc] = svc["processes"]
    assert proc["rss_bytes"] > 1024 * 1024 and proc["open_files"] >= 4 and proc["threads"] >= 1
    log = diag["logs"]["services"]["coordinator-api"]
    assert log["path"] == str(t1.state_dir / "log" / "coordinator-api.log")
    assert 0 < len(log["lines"]) <= 7
    assert "coordinator-api" in diag["restarts"]["services"]
    assert bundle["recorded_restarts"] == {"coordinator-api": []}

    # the bundle in memory, linked from the daily entry and the incident
    path = store.path(bundle["path"])
    assert bundle["path"].startswith("knowledge/diagnostics/t1/") and path.is_file()
    assert load_bundle(path) == bundle
    record = incidents.get(mine.id)
    assert record.timeline[-1].text == f"diagnostics taken: [{bundle['path']}](../{bundle['path']})"
    assert f"pid {pid} python3" in record.diagnostics
    assert incidents.get(other_host.id).timeline == [] and incidents.get(other_service.id).timeline == []
    [entry] = store.read_daily(utcnow().date())
    assert entry.event == "diagnose" and entry.incidents == [mine.id]
    assert entry.details == [f"t1: diagnostics in {bundle['path']}, attached to {mine.id}"]


def test_diagnose_every_service_prints_a_readable_report(stack, tmp_path: Path) -> None:
    done = diagnose("t2", "-i", str(stack.inventory), "--lines", "3", cwd=tmp_path)
    assert done.returncode == 0, done.stdout + done.stderr
    out = done.stdout
    assert out.startswith("== t2 · all services ==\n")
    t2 = stack.host("t2")
    for service in ("redis", "coordinator-api", "blockchain-node", "blockchain-rpc", "wallet-daemon"):
        pid = pid_of(t2, service)
        assert f"  {service}: 1 process(es) by pidfile" in out, service
        assert f"    pid {pid} " in out and f"{service} ({t2.state_dir}/log/{service}.log): 3 line(s)" in out
    assert f"127.0.0.1:{COORDINATOR_PORT} python3[{pid_of(t2, 'coordinator-api')}]" in out
    assert "rss " in out and " fd(s), up " in out and "    | " in out
    assert "restarts recorded by the ops agent (last 24 h):" in out
    assert "bundle: " in out and "diagnose.yml: ok (exit 0)" in out


def test_unknown_host_or_service_is_one_line_and_exit_2(stack, tmp_path: Path) -> None:
    for args, message in (
        (("t9",), "opsrunner: error: unknown host: t9 (not in "),
        (("t1", "no-such-service"), "opsrunner: error: unknown service: no-such-service (known: "),
    ):
        done = diagnose(*args, "-i", str(stack.inventory), cwd=tmp_path)
        assert done.returncode == 2, done.stdout + done.stderr
        assert done.stderr.strip().splitlines()[-1].startswith(message), done.stderr
        assert not list((tmp_path / "ai-memory" / "knowledge").glob("diagnostics/*"))


# ----------------------------------------------------------------------------- the failure archive


def heartbeat(inventory: Path, cwd: Path, *extra: str) -> int:
    done = opsrunner("heartbeat", "-i", str(inventory), "--limit", "t2", "--json", *extra, cwd=cwd)
    assert done.stdout.strip(), done.stderr
    return done.returncode


def test_a_known_failure_repeats_one_archive_entry_linked_twice(stack, tmp_path: Path) -> None:
    """Kill the coordinator on t2 twice: each heartbeat opens an incident, restarts it and resolves it
    (threshold 1). Then once more, resolved by hand with the same cause. One entry, every incident linked."""
    t2, once = stack.host("t2"), ("-e", "heartbeat_failure_threshold=1")
    for _ in range(2):
        os.kill(pid_of(t2, "coordinator-api"), signal.SIGKILL)
        assert heartbeat(stack.inventory, tmp_path, *once) == 0  # restarted and healthy again
    store = MemoryStore(tmp_path / "ai-memory")
    first, second = IncidentStore(store).all()
    assert (first.status, second.status) == ("resolved", "resolved")
    assert first.cause == second.cause == "service down"

    [entry] = read_archive(store).entries()
    assert [o.incident for o in entry.occurrences] == [first.id, second.id]
    assert (entry.failure, entry.cause) == ("coordinator-api /health failing", "service down")
    assert entry.resolution == "restarted coordinator-api by the heartbeat"
    assert first.archive == second.archive == entry.id

    os.kill(pid_of(t2, "coordinator-api"), signal.SIGKILL)
    assert heartbeat(stack.inventory, tmp_path, *once, "--no-remediate") == 1
    [third] = [i for i in IncidentStore(store).all() if i.active]
    start = opsrunner("service", "start", "coordinator-api", "-i", str(stack.inventory), "--limit", "t2",
                      cwd=tmp_path)  # fmt: skip
    assert start.returncode == 0, start.stdout + start.stderr
    why = ("--cause", "Service down", "--resolution", "started it by hand")
    done = opsrunner("incidents", "resolve", third.id, *why, cwd=tmp_path)
    assert done.returncode == 0, done.stderr

    [entry] = read_archive(store).entries()
    assert [o.incident for o in entry.occurrences] == [first.id, second.id, third.id]
    assert entry.occurrences[2].note == "started it by hand"
    text = store.path("failures", "failure-archive.md").read_text()
    assert text.count("## F-") == 1 and f"](../incidents/{third.id}.md)" in text
    shown = opsrunner("incidents", "show", third.id, cwd=tmp_path).stdout
    assert f"- **Archive:** {entry.id} in [failure-archive.md](../failures/failure-archive.md)" in shown


# ----------------------------------------------------------------------------- diagnose on systemd


@pytest.fixture(scope="module")
def systemd_inventory(systemd_host: SystemdHost, ansible_env, tmp_path_factory) -> Path:
    """The catalogue as systemd units (role aitbc.ops.systemd_units), coordinator-api run by its unit."""
    work = tmp_path_factory.mktemp("diag-systemd")
    book = work / "units.yml"
    play = [{"name": "AITBC units", "hosts": "aitbc", "gather_facts": False,
             "roles": ["aitbc.ops.systemd_units"]}]  # fmt: skip
    book.write_text(yaml.safe_dump(play))
    argv = [str(BIN / "ansible-playbook"), "-i", str(systemd_host.inventory), str(book)]
    done = subprocess.run(argv, env=ansible_env, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stdout + done.stderr
    systemd_host.run(f"systemctl start {UNIT}", check=True)
    data = yaml.safe_load(systemd_host.inventory.read_text())
    host_vars = data["all"]["children"]["aitbc"]["hosts"][systemd_host.name]
    host_vars["aitbc_service_overrides"] = {"coordinator-api": {"backend": "systemd", "unit": UNIT}}
    (work / "inv").mkdir()
    inventory = work / "inv" / "hosts.yml"
    inventory.write_text(yaml.safe_dump(data))
    (work / "inv" / "group_vars").symlink_to(REPO / "inventory" / "group_vars")
    return inventory


def test_diagnose_on_the_systemd_host_without_lsof_netstat_or_ss(
    systemd_host: SystemdHost, systemd_inventory: Path, tmp_path: Path
) -> None:
    tools = systemd_host.run("for t in lsof netstat ss; do command -v $t; done; true")
    assert tools.returncode == 0 and tools.stdout.strip() == "", f"the host has {tools.stdout.split()}"
    main_pid = int(systemd_host.run(f"systemctl show -p MainPID --value {UNIT}", check=True).stdout)
    assert main_pid > 1

    name = systemd_host.name
    rc, result = diagnose_json(name, "coordinator-api", "-i", str(systemd_inventory), cwd=tmp_path)
    assert rc == 0, result
    [bundle] = result["bundles"]
    diag = bundle["diagnostics"]
    assert bundle["failed_sections"] == [], diag
    svc = diag["processes"]["services"]["coordinator-api"]
    assert (svc["found_by"], svc["pids"], svc["port_listening"]) == ("unit", [main_pid], True)
    [proc] = svc["processes"]
    assert proc["rss_bytes"] > 1024 * 1024 and proc["open_files"] >= 3
    [sock] = [s for s in diag["sockets"]["listening"] if s["port"] == COORDINATOR_PORT]
    assert (sock["pid"], sock["command"], sock["service"]) == (main_pid, "python3", "coordinator-api")
    restarts = diag["restarts"]["services"]["coordinator-api"]
    assert restarts["source"] == "systemd" and isinstance(restarts["nrestarts"], int), restarts
    log = diag["logs"]["services"]["coordinator-api"]
    assert log["path"] == "/opt/aitbc/log/coordinator-api.log" and log["lines"], log
    journal = log["journal"]
    assert journal["unit"] == UNIT and any(UNIT in line for line in journal["lines"]), journal
    report = diagnose(name, "coordinator-api", "-i", str(systemd_inventory), cwd=tmp_path).stdout
    assert f"pid {main_pid} python3" in report
    assert "coordinator-api: " in report and "since the unit started (systemd NRestarts)" in report
    assert f"coordinator-api journal ({UNIT}):" in report

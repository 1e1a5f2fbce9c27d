"""Checks of the SSH test-host machinery itself, against real sshd hosts and real Ansible."""

from __future__ import annotations

import json
import re
import subprocess
import sys
from pathlib import Path

import pytest
import testhosts
from conftest import testhosts_unavailable
from testhosts import SSH_COMMON_ARGS, HostPool, create_hosts, pick_subnet

pytestmark = pytest.mark.integration

BIN = Path(sys.executable).parent
# Header lines of ansible's ad-hoc (minimal) output: "t1 | CHANGED | rc=0 >>" or "t1p | SUCCESS => {".
HEADER = re.compile(r"^(?P<host>\S+) \| (?P<status>[A-Z]+!?)(?: \| rc=(?P<rc>\d+))? (?:>>|=>)")


def needs_hosts() -> None:
    reason = testhosts_unavailable()
    if reason:
        pytest.skip(reason)


def ansible(
    env: dict[str, str], inventory: Path, pattern: str, module: str, args: str | None = None
) -> subprocess.CompletedProcess[str]:
    argv = [str(BIN / "ansible"), "-i", str(inventory), pattern, "-m", module]
    if args is not None:
        argv += ["-a", args]
    return subprocess.run(argv, env=env, capture_output=True, text=True, timeout=120)


def parse_adhoc(stdout: str) -> dict[str, tuple[str, str]]:
    """host -> (status, body) from ad-hoc output."""
    results: dict[str, tuple[str, list[str]]] = {}
    current: list[str] = []
    for line in stdout.splitlines():
        match = HEADER.match(line)
        if match:
            current = [line[match.end() :].strip()]
            results[match["host"]] = (match["status"], current)
        else:
            current.append(line)
    return {host: (status, "\n".join(body).strip()) for host, (status, body) in results.items()}


def ssh(pool: HostPool, name: str, command: str) -> subprocess.CompletedProcess[str]:
    host = pool.host(name)
    argv = [
        "ssh",
        "-i",
        str(pool.client_key),
        "-p",
        str(host.port),
        *SSH_COMMON_ARGS.split(),
        "-o",
        "BatchMode=yes",
        "-o",
        "ControlPath=none",
        "-o",
        "LogLevel=ERROR",
        f"root@{host.address}",
        command,
    ]
    return subprocess.run(argv, capture_output=True, text=True, timeout=30, stdin=subprocess.DEVNULL)


def start_daemon(pool: HostPool, name: str, tag: str) -> int:
    """Start a detached process over SSH, as a service would daemonize, and return its PID."""
    root = pool.host(name).state_dir
    # No `cd && cmd &`: that backgrounds a subshell which keeps the SSH channel open.
    command = f"cd {root} || exit 1; setsid sleep 1000{tag} </dev/null >/dev/null 2>&1 & echo $!"
    proc = ssh(pool, name, command)
    assert proc.returncode == 0, proc.stderr
    return int(proc.stdout.strip())


# --------------------------------------------------------------------------- pure


def test_pick_subnet_skips_routed_networks() -> None:
    used = ["default", "10.213.0.0/24", "10.213.1.7", "fd00::/64", "192.0.2.0/24", "broadcast"]
    assert str(pick_subnet(used)) == "10.213.2.0/24"
    with pytest.raises(RuntimeError):
        pick_subnet(["10.0.0.0/8"])


# --------------------------------------------------------------------------- the session hosts


def test_inventory_files(ssh_hosts: HostPool, repo_root: Path) -> None:
    assert ssh_hosts.names == ["t1", "t2", "t3"]
    assert ssh_hosts.inventory.is_file()
    assert ssh_hosts.paramiko_inventory is not None and ssh_hosts.paramiko_inventory.is_file()
    group_vars = ssh_hosts.inventory.parent / "group_vars"
    assert group_vars.resolve() == (repo_root / "inventory" / "group_vars").resolve()
    state = json.loads(ssh_hosts.state_file.read_text())
    assert [h["name"] for h in state["hosts"]] == ssh_hosts.names
    for host in ssh_hosts.hosts:
        assert host.state_dir.is_dir()
        assert host.sshd_pid is not None and host.sshd_pid in ssh_hosts.pids(host.name)
        if ssh_hosts.mode == "netns":
            assert host.veth is not None and len(host.veth) <= 15
    if ssh_hosts.bridge:
        assert len(ssh_hosts.bridge) <= 15


def test_each_host_has_its_own_hostname(ssh_hosts: HostPool, ansible_env: dict[str, str]) -> None:
    proc = ansible(ansible_env, ssh_hosts.inventory, "aitbc", "ansible.builtin.command", "hostname")
    assert proc.returncode == 0, proc.stdout + proc.stderr
    results = parse_adhoc(proc.stdout)
    assert results == {name: ("CHANGED", name) for name in ("t1", "t2", "t3")}


def test_catalogue_applies_with_host_state_dir(ssh_hosts: HostPool, ansible_env: dict[str, str]) -> None:
    proc = ansible(ansible_env, ssh_hosts.inventory, "t2", "ansible.builtin.debug", "var=aitbc_run_dir")
    assert proc.returncode == 0, proc.stdout + proc.stderr
    status, body = parse_adhoc(proc.stdout)["t2"]
    assert status == "SUCCESS"
    assert json.loads(body)["aitbc_run_dir"] == str(ssh_hosts.host("t2").state_dir / "run")


def test_paramiko_alias_answers_ping(ssh_hosts: HostPool, ansible_env: dict[str, str]) -> None:
    known_hosts = Path.home() / ".ssh" / "known_hosts"
    before = known_hosts.read_bytes() if known_hosts.exists() else None
    assert ssh_hosts.paramiko_inventory is not None
    proc = ansible(ansible_env, ssh_hosts.paramiko_inventory, "t1p", "ansible.builtin.ping")
    assert proc.returncode == 0, proc.stdout + proc.stderr
    status, body = parse_adhoc(proc.stdout)["t1p"]
    assert status == "SUCCESS" and json.loads(body)["ping"] == "pong"
    # Host key checking is off for the alias, so paramiko must not record test host keys either.
    assert (known_hosts.read_bytes() if known_hosts.exists() else None) == before


def test_run_executes_inside_the_host(ssh_hosts: HostPool) -> None:
    proc = ssh_hosts.run("t2", "hostname")
    assert (proc.returncode, proc.stdout.strip()) == (0, "t2")
    if ssh_hosts.mode == "netns":
        addresses = ssh_hosts.run("t2", ["ip", "-br", "addr", "show", "eth0"]).stdout
        assert ssh_hosts.host("t2").address in addresses


def test_stop_sshd_makes_host_unreachable_until_started(
    ssh_hosts: HostPool, ansible_env: dict[str, str]
) -> None:
    def ping() -> str:
        proc = ansible(ansible_env, ssh_hosts.inventory, "t3", "ansible.builtin.ping")
        return parse_adhoc(proc.stdout)["t3"][0]

    assert ping() == "SUCCESS"  # also leaves a ControlPersist master that stop_sshd must break
    daemon = start_daemon(ssh_hosts, "t3", "3")
    try:
        ssh_hosts.stop_sshd("t3")
        assert ping() == "UNREACHABLE!"
        assert daemon in ssh_hosts.pids("t3"), "stopping sshd must not stop services on the host"
    finally:
        ssh_hosts.start_sshd("t3")
        ssh_hosts.run("t3", f"kill {daemon}")
    assert ping() == "SUCCESS"


# --------------------------------------------------------------------------- teardown of a private pool


@pytest.mark.parametrize("mode", ["netns", "loopback"])
def test_teardown_leaves_nothing(mode: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    needs_hosts()
    if mode == "netns" and testhosts._probe_netns():
        pytest.skip("network namespaces are refused here")
    monkeypatch.setenv(testhosts.MODE_ENV, mode)
    pool = create_hosts(1, tmp_path, paramiko_host=False)
    assert pool.mode == mode
    host = pool.host("t1")
    assert ssh(pool, "t1", "hostname").stdout.strip() == "t1"
    daemon = start_daemon(pool, "t1", "9")
    sshd_pid = host.sshd_pid
    assert sshd_pid is not None and {daemon, sshd_pid} <= set(pool.pids("t1"))

    pool.close()

    assert pool.leftovers() == []
    assert not testhosts._alive(daemon) and not testhosts._alive(sshd_pid)
    if mode == "netns":
        assert (
            host.netns not in subprocess.run(["ip", "netns", "list"], capture_output=True, text=True).stdout
        )
        links = subprocess.run(["ip", "-br", "link"], capture_output=True, text=True).stdout
        assert host.veth is not None and pool.bridge is not None
        assert host.veth not in links and pool.bridge not in links
    pool.close()  # idempotent


def test_cli_up_and_down(tmp_path: Path) -> None:
    needs_hosts()
    script = Path(testhosts.__file__)
    up = subprocess.run(
        [sys.executable, str(script), "up", "1", str(tmp_path), "--no-paramiko"],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert up.returncode == 0, up.stderr
    assert up.stdout.strip() == str(tmp_path / "inventory" / "hosts.yml")
    pool = HostPool.from_state(tmp_path)
    try:
        assert ssh(pool, "t1", "hostname").stdout.strip() == "t1"
    finally:
        down = subprocess.run(
            [sys.executable, str(script), "down", str(tmp_path)], capture_output=True, text=True, timeout=60
        )
    assert down.returncode == 0, down.stderr
    assert pool.leftovers() == []
    pool.detach()  # already torn down by `down`; nothing for atexit to do

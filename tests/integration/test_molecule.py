"""The molecule scenario molecule/heartbeat on this machine and on the SSH test hosts.

`molecule test -s heartbeat` (default driver, unmanaged): cleanup, destroy, syntax, prepare (demo stack up),
converge (the heartbeat role), idempotence (a second converge changes nothing), verify (every probe healthy,
no service restarted), cleanup (demo stack down), destroy. The inventory comes from MOLECULE_INVENTORY.
"""

from __future__ import annotations

import importlib.util
import os
import re
import shutil
import signal
import socket
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest
import yaml

pytestmark = pytest.mark.integration

BIN = Path(sys.executable).parent
REPO = Path(__file__).resolve().parents[2]
SCENARIO = REPO / "molecule" / "heartbeat"
LOCAL_INVENTORY = SCENARIO / "inventory" / "localhost.yml"
LOCAL_PORTS = sorted(
    yaml.safe_load(LOCAL_INVENTORY.read_text())["all"]["children"]["aitbc"]["hosts"]["localhost"][
        "aitbc_ports"
    ].values()
)
MOLECULE_TIMEOUT = 900
ANSI = re.compile(r"\x1b\[[0-9;]*[A-Za-z]")


def molecule_unavailable() -> str | None:
    if importlib.util.find_spec("molecule") is None:
        return "molecule is not installed (pip install -e '.[test]')"
    if not (BIN / "molecule").exists():
        return f"molecule is importable but has no script in {BIN}"
    return None


@pytest.fixture(scope="module", autouse=True)
def _needs_molecule() -> None:
    reason = molecule_unavailable()
    if reason:
        pytest.skip(reason)


def run_molecule(
    inventory: Path, work: Path, extra_env: dict[str, str] | None = None, scenario: str = "heartbeat"
) -> str:
    """`molecule test -s SCENARIO` against `inventory`; returns its output without colours."""
    env = {
        **os.environ,
        # molecule runs ansible-config and ansible-playbook from PATH.
        "PATH": f"{BIN}{os.pathsep}{os.environ.get('PATH', '')}",
        "MOLECULE_PROJECT_DIRECTORY": str(REPO),
        # The scenarios stay in molecule/ (the layout of the design card), not in extensions/molecule.
        "MOLECULE_GLOB": "molecule/*/molecule.yml",
        "MOLECULE_EPHEMERAL_DIRECTORY": str(work / "ephemeral"),
        "MOLECULE_INVENTORY": str(inventory),
        "NO_COLOR": "1",
        "ANSIBLE_NOCOLOR": "1",
        "COLUMNS": "200",  # fewer wrapped lines in molecule's boxes
        **(extra_env or {}),
    }
    env.pop("ANSIBLE_CONFIG", None)  # molecule writes its own
    # Its own process group, so a timeout stops molecule and the ansible-playbook it runs (and nothing else).
    proc = subprocess.Popen(
        [str(BIN / "molecule"), "test", "-s", scenario],
        cwd=REPO,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        start_new_session=True,
    )
    try:
        stdout, _ = proc.communicate(timeout=MOLECULE_TIMEOUT)
    except subprocess.TimeoutExpired:
        os.killpg(proc.pid, signal.SIGKILL)
        stdout, _ = proc.communicate()
        pytest.fail(
            f"molecule test did not finish within {MOLECULE_TIMEOUT} s:\n{ANSI.sub('', stdout)[-8000:]}"
        )
    output = ANSI.sub("", stdout)
    (work / "molecule.log").write_text(output)
    assert proc.returncode == 0, output[-8000:]
    return output


def assert_passed(output: str, hosts: list[str], scenario: str = "heartbeat") -> None:
    """Every step passed, and the second converge (idempotence) changed nothing on any host."""
    for step in ("prepare", "converge", "idempotence", "verify", "cleanup"):
        # "[heartbeat > step] Executed: Successful" (no terminal) or "heartbeat ➜ step: Executed: Successful"
        assert re.search(rf"{scenario}\W+{step}\W+Executed: Successful", output), f"{step} did not pass"
    idempotence = re.search(r"idempotence\W+Executing(.*?)idempotence\W+Executed", output, re.S)
    assert idempotence, output[-8000:]
    for host in hosts:
        recap = rf"{re.escape(host)}\s+: ok=\d+\s+changed=0\s+unreachable=0\s+failed=0"
        assert re.search(recap, idempotence.group(1)), f"{host}: {idempotence.group(1)}"


def live_pidfiles(root: Path) -> list[str]:
    """Pidfiles under root/run whose process still runs."""
    live = []
    for pidfile in sorted((root / "run").glob("*.pid")):
        try:
            pid = int(pidfile.read_text().split()[0])
        except (OSError, ValueError, IndexError):
            continue
        if Path(f"/proc/{pid}").exists():
            live.append(f"{pidfile.name}={pid}")
    return live


def write_inventory(data: dict, target: Path) -> Path:
    """target/hosts.yml with the repository's group_vars beside it, for runs outside molecule."""
    target.mkdir(parents=True, exist_ok=True)
    inventory = target / "hosts.yml"
    inventory.write_text(yaml.safe_dump(data, sort_keys=False))
    (target / "group_vars").symlink_to(REPO / "inventory" / "group_vars")
    return inventory


def demo_down(inventory: Path, extra_env: dict[str, str] | None = None) -> None:
    """The demo stack down with the repository's playbook (a finalizer; molecule's cleanup does it first)."""
    env = {
        **os.environ,
        "ANSIBLE_CONFIG": str(REPO / "ansible.cfg"),
        "ANSIBLE_CALLBACKS_ENABLED": "ansible.builtin.minimal",  # no ai-memory entry for this
        "ANSIBLE_NOCOLOR": "1",
        **(extra_env or {}),
    }
    subprocess.run(
        [str(BIN / "ansible-playbook"), "-i", str(inventory), str(REPO / "playbooks" / "demo.yml")]
        + ["-e", "demo_action=down"],
        cwd=REPO,
        env=env,
        capture_output=True,
        timeout=300,
    )


def port_in_use(port: int) -> bool:
    with socket.socket() as sock:
        sock.settimeout(1.0)
        return sock.connect_ex(("127.0.0.1", port)) == 0


@pytest.fixture
def local_root(tmp_path: Path) -> Iterator[Path]:
    """The localhost stack's aitbc_root; brought down afterwards whatever happened."""
    if shutil.which("redis-server") is None:
        pytest.skip("the demo stack needs redis-server")
    busy = [port for port in LOCAL_PORTS if port_in_use(port)]
    if busy:
        pytest.fail(f"ports {busy} of {LOCAL_INVENTORY} are already in use (another molecule run?)")
    root = tmp_path / "aitbc"
    yield root
    if live_pidfiles(root):
        # Molecule links group_vars beside its own inventory; outside it, the copy needs them beside it.
        inventory = write_inventory(yaml.safe_load(LOCAL_INVENTORY.read_text()), tmp_path / "finalizer")
        demo_down(inventory, {"AITBC_MOLECULE_ROOT": str(root)})


@pytest.mark.skipif(
    not os.environ.get("AITBC_SLOW_TESTS"),
    reason="the same scenario runs on the SSH test hosts; set AITBC_SLOW_TESTS=1 to run it on localhost too "
    "(keeps `make test` near its 15-minute budget)",
)
def test_heartbeat_scenario_on_localhost(local_root: Path, tmp_path: Path) -> None:
    output = run_molecule(LOCAL_INVENTORY, tmp_path, {"AITBC_MOLECULE_ROOT": str(local_root)})
    assert_passed(output, ["localhost"])
    # The stack ran under the given root, and cleanup brought it down: no live pidfile, no port open.
    assert (local_root / "demo" / "aitbc_demo.py").exists()
    assert live_pidfiles(local_root) == []
    assert [port for port in LOCAL_PORTS if port_in_use(port)] == []


@pytest.fixture
def ssh_inventory(ssh_hosts, tmp_path: Path) -> Iterator[tuple[Path, list[Path]]]:
    """The test-host inventory with a stack root of its own per host (state_dir/molecule-heartbeat).

    In netns mode each host has its own loopback, so the default ports repeat; in loopback mode the hosts
    share one, so each gets its own ports.
    """
    data = yaml.safe_load(Path(ssh_hosts.inventory).read_text())
    hosts = data["all"]["children"]["aitbc"]["hosts"]
    roots = []
    for index, (name, host_vars) in enumerate(hosts.items(), start=1):
        root = ssh_hosts.host(name).state_dir / "molecule-heartbeat"
        host_vars["aitbc_root"] = str(root)
        roots.append(root)
        if ssh_hosts.mode != "netns":
            base = 100 * index
            host_vars["aitbc_ports"] = {
                "coordinator_api": 28011 + base,
                "blockchain_rpc": 28012 + base,
                "wallet_daemon": 28013 + base,
                "redis": 26379 + base,
            }
    inventory = write_inventory(data, tmp_path / "inventory")
    yield inventory, roots
    if any(live_pidfiles(root) for root in roots):
        demo_down(inventory)


def test_heartbeat_scenario_on_ssh_hosts(
    ssh_hosts, ssh_inventory: tuple[Path, list[Path]], tmp_path: Path
) -> None:
    inventory, roots = ssh_inventory
    output = run_molecule(inventory, tmp_path)
    assert_passed(output, [host.name for host in ssh_hosts.hosts])
    for root in roots:
        assert (root / "demo" / "aitbc_demo.py").exists()
        assert live_pidfiles(root) == []


def test_deploy_scenario_on_ssh_hosts(
    ssh_hosts, ssh_inventory: tuple[Path, list[Path]], tmp_path: Path
) -> None:
    """molecule/deploy: release 2 of the demo coordinator to every host, one at a time; a second converge
    changes nothing; verify reads release 2 as current (1 previous) and the coordinator serving it."""
    inventory, roots = ssh_inventory
    output = run_molecule(inventory, tmp_path, scenario="deploy")
    assert_passed(output, [host.name for host in ssh_hosts.hosts], scenario="deploy")
    for root in roots:
        assert live_pidfiles(root) == []
        assert not (root / "apps" / "coordinator-api").exists()  # destroy removed the releases

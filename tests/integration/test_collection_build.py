"""The built collection tarball installs into a clean virtualenv (ansible-core plus the collection's own
requirements.txt, nothing of this checkout), where a playbook using FQCNs runs against an SSH test host and
the memory callback records it with the opsrunner copy that ships in the collection.

The clean venv installs offline from the wheelhouse `make setup` fills (.work/wheelhouse): tests talk to no
package index."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from opsrunner.memory import MemoryStore, utcnow

REPO = Path(__file__).resolve().parents[2]
BIN = Path(sys.executable).parent
WHEELHOUSE = REPO / ".work" / "wheelhouse"

PLAYBOOK = """
- name: Use the installed collection
  hosts: all
  gather_facts: false
  tasks:
    - name: Probe sshd and memory
      aitbc.ops.health:
        probes:
          - {type: tcp, name: sshd, host: "{{ ansible_host }}", port: "{{ ansible_port | default(22) }}"}
          - {type: memory, min_available_percent: 1}
    - name: Status of a service that is not running
      aitbc.ops.service:
        name: nothing
        backend: process
        command: /bin/sleep 100
        pidfile: /tmp/aitbc-ops-build-test-nothing.pid
"""


def run(args: list[str], cwd: Path, env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    return subprocess.run(args, cwd=cwd, env=env, capture_output=True, text=True, timeout=300)


def clean_venv(path: Path, requirements: Path) -> Path:
    """A new virtualenv with only ansible-core and the collection's requirements; its bin folder."""
    if not any(WHEELHOUSE.glob("ansible_core-*.whl")):
        pytest.skip(f"no ansible-core wheel in {WHEELHOUSE} (make setup fills it)")
    subprocess.run([sys.executable, "-m", "venv", str(path)], check=True, capture_output=True)
    pip = [str(path / "bin" / "python"), "-m", "pip", "install", "-q", "--no-index"]
    done = run([*pip, "--find-links", str(WHEELHOUSE), "ansible-core", "-r", str(requirements)], path, {})
    assert done.returncode == 0, done.stderr[-3000:]
    return path / "bin"


def test_built_tarball_installs_into_a_clean_venv_and_runs(ssh_hosts, tmp_path: Path) -> None:
    built = run(
        [str(BIN / "ansible-galaxy"), "collection", "build", "--output-path", str(tmp_path)], REPO, {}
    )
    assert built.returncode == 0, built.stderr
    [tarball] = tmp_path.glob("aitbc-ops-*.tar.gz")
    venv = tmp_path / "venv"
    root = venv / "collections" / "ansible_collections" / "aitbc" / "ops"
    bare = {"PATH": "/usr/bin:/bin", "HOME": str(tmp_path)}
    installed = run(
        [str(BIN / "ansible-galaxy"), "collection", "install", "-p", str(venv / "collections"), str(tarball)],
        tmp_path,
        {"PATH": str(BIN)},
    )
    assert installed.returncode == 0, installed.stderr
    assert (root / "plugins" / "modules" / "health.py").is_file()
    assert not (root / "collections").exists(), "the checkout's self-symlink must not ship"
    clean = clean_venv(venv, root / "requirements.txt")
    assert run([str(clean / "python"), "-c", "import opsrunner"], tmp_path, bare).returncode != 0

    (tmp_path / "ansible.cfg").write_text(
        "[defaults]\n"
        f"collections_path = {venv / 'collections'}\n"
        "interpreter_python = /usr/bin/python3\n"
        "callbacks_enabled = aitbc.ops.memory\n"
        "host_key_checking = False\n"
        # HOME is the test's folder (no ~/.ansible of this machine leaks in): keep the control socket
        # path short enough for a unix socket.
        "[ssh_connection]\n"
        "control_path_dir = /tmp/.aitbc-ops-cp\n"
    )
    (tmp_path / "site.yml").write_text(PLAYBOOK)
    hosts = yaml.safe_load(Path(ssh_hosts.inventory).read_text())
    hosts["all"]["children"]["aitbc"]["hosts"] = {"t1": hosts["all"]["children"]["aitbc"]["hosts"]["t1"]}
    (tmp_path / "hosts.yml").write_text(yaml.safe_dump(hosts))
    env = {**bare, "PATH": f"{clean}:/usr/bin:/bin", "ANSIBLE_CONFIG": str(tmp_path / "ansible.cfg")}
    done = run([str(clean / "ansible-playbook"), "-i", "hosts.yml", "site.yml"], tmp_path, env)
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-2000:]
    assert "ok=2" in done.stdout
    [entry] = MemoryStore(tmp_path / "ai-memory").read_daily(utcnow().date())
    assert (entry.title, entry.outcome, entry.hosts) == ("site.yml", "ok", ["t1"])

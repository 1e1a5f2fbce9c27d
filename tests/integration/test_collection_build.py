"""The built collection tarball installs elsewhere and its modules and callback work from there."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import yaml

from opsrunner.memory import MemoryStore, utcnow

REPO = Path(__file__).resolve().parents[2]
BIN = Path(sys.executable).parent

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


def test_built_tarball_installs_and_runs(ssh_hosts, tmp_path: Path) -> None:
    built = run(
        [str(BIN / "ansible-galaxy"), "collection", "build", "--output-path", str(tmp_path)], REPO, {}
    )
    assert built.returncode == 0, built.stderr
    [tarball] = tmp_path.glob("aitbc-ops-*.tar.gz")
    installed = run(
        [str(BIN / "ansible-galaxy"), "collection", "install", "-p", str(tmp_path / "colls"), str(tarball)],
        tmp_path,
        {"PATH": str(BIN)},
    )
    assert installed.returncode == 0, installed.stderr
    root = tmp_path / "colls" / "ansible_collections" / "aitbc" / "ops"
    assert (root / "plugins" / "modules" / "health.py").is_file()
    assert not (root / "collections").exists(), "the checkout's self-symlink must not ship"

    (tmp_path / "ansible.cfg").write_text(
        "[defaults]\n"
        f"collections_path = {tmp_path / 'colls'}\n"
        "interpreter_python = /usr/bin/python3\n"
        "callbacks_enabled = aitbc.ops.memory\n"
        "host_key_checking = False\n"
    )
    (tmp_path / "site.yml").write_text(PLAYBOOK)
    hosts = yaml.safe_load(Path(ssh_hosts.inventory).read_text())
    hosts["all"]["children"]["aitbc"]["hosts"] = {"t1": hosts["all"]["children"]["aitbc"]["hosts"]["t1"]}
    (tmp_path / "hosts.yml").write_text(yaml.safe_dump(hosts))
    env = {
        "PATH": f"{BIN}:/usr/bin:/bin",
        "HOME": str(Path.home()),
        "ANSIBLE_CONFIG": str(tmp_path / "ansible.cfg"),
    }
    done = run([str(BIN / "ansible-playbook"), "-i", "hosts.yml", "site.yml"], tmp_path, env)
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-2000:]
    assert "ok=2" in done.stdout
    [entry] = MemoryStore(tmp_path / "ai-memory").read_daily(utcnow().date())
    assert (entry.title, entry.outcome, entry.hosts) == ("site.yml", "ok", ["t1"])

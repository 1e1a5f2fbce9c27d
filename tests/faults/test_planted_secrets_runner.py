"""Fault: secrets with names and places the test chooses, in how opsrunner starts ansible-runner (issue 13,
defects 9, 11, 12). Planted: environment variables with ordinary names (GITHUB_PAT, MY_DEPLOY_CRED), a
vault-like extra var given with `-e @file` whose value holds `"` and `\\`, and a URL with credentials in an
ordinary variable. Real `opsrunner run` and `opsrunner heartbeat` on a copy of the local demo inventory:
no planted value in any file under the memory dir or the work dir (artifacts), in stdout/stderr, or in
/proc/*/cmdline while the run goes (sampled from a thread); the run's processes never get the ordinary-named
variables. A run whose secrets cannot be discovered does not start (exit 2); a run killed with -9 leaves
leftovers the next run sweeps."""

from __future__ import annotations

import contextlib
import os
import random
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
import yaml

from opsrunner.memory import MemoryStore, utcnow
from opsrunner.runner import run_pids

pytestmark = pytest.mark.integration

REPO = Path(__file__).resolve().parents[2]
BIN = Path(sys.executable).parent
ENV_PLANTED = {"GITHUB_PAT": "ghp_PlantedPat0Qx7Lm2", "MY_DEPLOY_CRED": "planted-cred-Vb8Rt4"}
VAULT_VALUE = 'planted-"vault\\pw-Hy3'
URL_PASSWORD = "planted-urlpw-Kc5"
EXTRA_VARS = {
    "vault_db_password": VAULT_VALUE,
    "mirror_url": f"https://mirror:{URL_PASSWORD}@example.org/pkgs",
}
PLANTED = [*ENV_PLANTED.values(), VAULT_VALUE, URL_PASSWORD, "vault\\pw-Hy3", "vault\\\\pw-Hy3"]

PLAYBOOK = [
    {
        "name": "Use the planted values the way playbooks do",
        "hosts": "all",
        "gather_facts": False,
        "tasks": [
            {
                "name": "Show them",
                "ansible.builtin.debug": {
                    "msg": "db={{ vault_db_password }} mirror={{ mirror_url }} "
                    "pat={{ lookup('ansible.builtin.env', 'GITHUB_PAT') }}"
                },
            },
            {"name": "Echo them through a local process", "ansible.builtin.command": {
                "cmd": "cat", "stdin": "{{ vault_db_password }} {{ mirror_url }}"}},
            {"name": "Stay a while (the /proc sampler looks)", "ansible.builtin.pause": {"seconds": 3}},
        ],
    }
]  # fmt: skip


def local_demo_inventory(folder: Path) -> Path:
    """inventory/local.yml as shipped, its state and demo secrets under ``folder`` instead of the checkout."""
    folder.mkdir(parents=True)
    data = yaml.safe_load((REPO / "inventory" / "local.yml").read_text())
    host = data["all"]["children"]["aitbc"]["hosts"]["localhost"]
    host["aitbc_root"] = str(folder / "state")
    host["ansible_python_interpreter"] = sys.executable
    (folder / "local.yml").write_text(yaml.safe_dump(data))
    (folder / "group_vars").symlink_to(REPO / "inventory" / "group_vars")
    return folder / "local.yml"


class ProcSampler:
    """Reads every process's cmdline, and the environment of the run's processes, until stopped."""

    def __init__(self) -> None:
        self.hits: list[str] = []
        self.run_processes = 0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._loop, daemon=True)

    def __enter__(self) -> ProcSampler:
        self._thread.start()
        return self

    def __exit__(self, *_: object) -> None:
        self._stop.set()
        self._thread.join()

    def _loop(self) -> None:
        while not self._stop.is_set():
            for entry in Path("/proc").iterdir():
                if entry.name.isdigit():
                    self._sample(entry)
            time.sleep(0.05)

    def _sample(self, proc: Path) -> None:
        try:
            cmdline = (proc / "cmdline").read_bytes()
            environ = (proc / "environ").read_bytes()
        except OSError:
            return
        for value in PLANTED:
            if value.encode() in cmdline:
                self.hits.append(f"{value} in /proc/{proc.name}/cmdline")
        if b"OPSRUNNER_RUN_ID=" in environ:  # a process of the run (ansible-playbook and what it starts)
            self.run_processes += 1
            for name, value in ENV_PLANTED.items():
                if value.encode() in environ:
                    self.hits.append(f"{name} in the environment of run process {proc.name}")


def assert_nothing_planted(text: str, *roots: Path) -> None:
    for value in PLANTED:
        assert value not in text, f"{value} in the output"
    files = [path for root in roots for path in root.rglob("*") if path.is_file()]
    assert files
    for path in files:
        data = path.read_bytes()
        for value in PLANTED:
            assert value.encode() not in data, f"{value} in {path}"


@pytest.fixture
def planted(tmp_path: Path) -> Iterator[tuple[Path, dict[str, str]]]:
    inventory = local_demo_inventory(tmp_path / "inv")
    env = {**ENV_PLANTED, "OPSRUNNER_MEMORY_DIR": str(tmp_path / "memory")}
    yield inventory, env


def test_planted_secrets_reach_no_file_output_or_cmdline(tmp_path: Path, opsrunner, planted) -> None:
    inventory, env = planted
    playbook = tmp_path / "planted.yml"
    playbook.write_text(yaml.safe_dump(PLAYBOOK, sort_keys=False))
    extra = tmp_path / "extra.yml"
    extra.write_text(yaml.safe_dump(EXTRA_VARS))

    with ProcSampler() as sampler:
        done = opsrunner("run", str(playbook), "-i", str(inventory), "-e", f"@{extra}", "-v", env=env)
        beat = opsrunner("heartbeat", "--no-remediate", "-i", str(inventory), "--json", env=env)

    assert done.rc == 0, done.stdout + done.stderr
    assert "db=********" in done.stdout  # it ran, and printed the masked value
    assert beat.rc in (0, 1, 3), beat.stdout + beat.stderr  # ran for real (no usage error)
    assert sampler.run_processes > 0
    assert sampler.hits == []
    assert_nothing_planted(
        done.stdout + done.stderr + beat.stdout + beat.stderr, tmp_path / "memory", tmp_path / ".work"
    )
    work = tmp_path / ".work" / "opsrunner"
    for path in (work / "artifacts").rglob("*"):
        assert path.stat().st_mode & 0o077 == 0, path
    assert not list((work / "private").iterdir())  # the extra vars file went with the run


def test_a_run_whose_secrets_cannot_be_discovered_leaves_nothing(tmp_path: Path, opsrunner, planted) -> None:
    inventory, env = planted
    playbook = tmp_path / "site.yml"
    playbook.write_text('- import_playbook: "{{ which_playbook }}.yml"\n')

    done = opsrunner("run", str(playbook), "-i", str(inventory), "-e", "which_playbook=ping", env=env)

    assert done.rc == 2, done.stdout + done.stderr
    assert f"cannot discover the secrets of {playbook}" in done.stderr
    assert "refusing to run" in done.stderr
    assert not (tmp_path / "memory").exists() or not list((tmp_path / "memory").rglob("*.md"))
    artifacts = tmp_path / ".work" / "opsrunner" / "artifacts"
    assert not artifacts.exists() or not [p for p in artifacts.rglob("*") if p.is_file()]


def test_a_collection_playbook_import_is_discovered_and_runs(tmp_path: Path, opsrunner, planted) -> None:
    inventory, env = planted
    playbook = tmp_path / "site.yml"
    playbook.write_text("- import_playbook: aitbc.ops.ping\n")
    done = opsrunner("run", str(playbook), "-i", str(inventory), "--json", env=env)
    assert done.rc == 0, done.stdout + done.stderr
    assert done.json()["outcome"] == "ok"


def test_the_next_run_sweeps_what_a_killed_run_left(tmp_path: Path, opsrunner, planted) -> None:
    inventory, env = planted
    playbook = tmp_path / "slow.yml"
    playbook.write_text(
        yaml.safe_dump([{**PLAYBOOK[0], "tasks": [{"ansible.builtin.pause": {"seconds": 60}}]}])
    )
    extra = tmp_path / "extra.yml"
    extra.write_text(yaml.safe_dump(EXTRA_VARS))
    private = tmp_path / ".work" / "opsrunner" / "private"
    full_env = {**os.environ, "ANSIBLE_CONFIG": str(REPO / "ansible.cfg"), **env}
    killed = subprocess.Popen(
        [str(BIN / "opsrunner"), "run", str(playbook), "-i", str(inventory), "-e", f"@{extra}"],
        cwd=tmp_path, env=full_env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
    )  # fmt: skip
    run_id = ""
    try:
        deadline = time.monotonic() + 60
        while not list(private.glob("*/env/extravars")) and time.monotonic() < deadline:
            time.sleep(0.1)
        [left] = list(private.glob("*/env/extravars"))
        run_id = left.parent.parent.name
        time.sleep(2)  # into the play
        killed.send_signal(signal.SIGKILL)
        killed.wait()
    finally:
        killed.kill()
        deadline = time.monotonic() + 10
        while run_id and run_pids(run_id) and time.monotonic() < deadline:
            for pid in run_pids(run_id):
                os.kill(pid, signal.SIGKILL)
            time.sleep(0.2)
    assert left.is_file()  # what kill -9 leaves behind
    partial = tmp_path / ".work" / "opsrunner" / "artifacts" / run_id / "job_events" / "x-partial.json"
    partial.parent.mkdir(parents=True, exist_ok=True)
    partial.write_text('{"event_data": {"res": "unmerged"}}')  # as the callback leaves one mid-event

    done = opsrunner("run", "ping", "-i", str(inventory), env=env)

    assert done.rc == 0, done.stdout + done.stderr
    assert not (private / run_id).exists()
    assert not list((tmp_path / ".work").rglob("*-partial.json"))
    assert_nothing_planted(done.stdout + done.stderr, tmp_path / ".work")


@pytest.mark.parametrize("seed", [1, 2, 3, 4])
def test_a_run_killed_at_a_random_point_leaves_nothing_unmasked_once_swept(
    tmp_path: Path, opsrunner, planted, seed: int
) -> None:
    """kill -9 of opsrunner at a random point of a run that prints its secrets (before, during or after the
    play), then its own processes: after the next run's sweep no file holds a planted value, and the memory
    folder's daily file still parses."""
    inventory, env = planted
    playbook = tmp_path / "planted.yml"
    playbook.write_text(yaml.safe_dump(PLAYBOOK, sort_keys=False))
    extra = tmp_path / "extra.yml"
    extra.write_text(yaml.safe_dump(EXTRA_VARS))
    full_env = {**os.environ, "ANSIBLE_CONFIG": str(REPO / "ansible.cfg"), **env}
    delay = random.Random(seed).uniform(0.2, 5.0)  # a run of this playbook takes about 5 s
    killed = subprocess.Popen(
        [str(BIN / "opsrunner"), "run", str(playbook), "-i", str(inventory), "-e", f"@{extra}"],
        cwd=tmp_path, env=full_env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
    )  # fmt: skip
    time.sleep(delay)
    killed.send_signal(signal.SIGKILL)
    killed.wait()
    for run_dir in (tmp_path / ".work" / "opsrunner" / "artifacts").glob("*"):
        deadline = time.monotonic() + 10
        while run_pids(run_dir.name) and time.monotonic() < deadline:
            for pid in run_pids(run_dir.name):
                with contextlib.suppress(ProcessLookupError):
                    os.kill(pid, signal.SIGKILL)
            time.sleep(0.2)

    done = opsrunner("run", "ping", "-i", str(inventory), env=env)

    assert done.rc == 0, done.stdout + done.stderr
    assert_nothing_planted(done.stdout + done.stderr, tmp_path / ".work", tmp_path / "memory")
    assert MemoryStore(tmp_path / "memory").read_daily(utcnow().date())  # whole, and it parses

"""opsrunner run and the memory callback against real SSH test hosts and localhost."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from opsrunner.memory import MemoryStore, utcnow

pytestmark = pytest.mark.integration

HERE = Path(__file__).resolve().parent
PLAYBOOKS = HERE / "playbooks"
BIN = Path(sys.executable).parent
PLANTED = ("V4ULT-PLANTED-111", "ENV-PLANTED-222", "NOLOG-PLANTED-333", "PLAIN-PLANTED-444")


def mixed_inventory(ssh_hosts, target: Path, extra_vars: dict | None = None) -> Path:
    """The SSH test hosts plus localhost (local connection), as one inventory directory."""
    target.mkdir(parents=True, exist_ok=True)
    data = yaml.safe_load(Path(ssh_hosts.inventory).read_text())
    group = data["all"]["children"]["aitbc"]["hosts"]
    group["localhost"] = {"ansible_connection": "local", "aitbc_root": str(target / "local-state")}
    data["all"].setdefault("vars", {}).update(extra_vars or {})
    (target / "hosts.yml").write_text(yaml.safe_dump(data))
    return target


def today_entries(memory_dir: Path):
    return MemoryStore(memory_dir).read_daily(utcnow().date())


def comparable(entry) -> tuple:
    return (
        entry.event,
        entry.title,
        entry.outcome,
        entry.hosts,
        entry.actions,
        entry.details,
        entry.incidents,
    )


def test_runner_and_callback_write_the_same_entry(ssh_hosts, tmp_path, opsrunner, ansible_playbook) -> None:
    inventory = mixed_inventory(ssh_hosts, tmp_path / "inv")
    names = sorted(["localhost", *(h.name for h in ssh_hosts.hosts)])
    args = ("-e", "fail_on=t3")

    via_runner = opsrunner(
        "--memory-dir",
        str(tmp_path / "m1"),
        "run",
        str(PLAYBOOKS / "sample.yml"),
        "-i",
        str(inventory),
        *args,
        "--json",
    )
    assert via_runner.rc == 1, via_runner.stderr
    result = via_runner.json()
    assert result["outcome"] == "failed"
    assert sorted(result["hosts"]) == names
    assert result["hosts"]["t1"] == {
        "ok": 2,
        "changed": 1,
        "failed": 0,
        "unreachable": 0,
        "skipped": 2,
        "rescued": 0,
        "ignored": 0,
    }
    assert result["hosts"]["t3"]["failed"] == 1
    assert [f["host"] for f in result["failures"]] == ["t3"]

    via_callback = ansible_playbook(
        "-i",
        str(inventory),
        str(PLAYBOOKS / "sample.yml"),
        *args,
        env={"OPSRUNNER_MEMORY_DIR": str(tmp_path / "m2")},
    )
    assert via_callback.rc == 2, via_callback.stdout[-2000:]

    [runner_entry] = today_entries(tmp_path / "m1")
    [callback_entry] = today_entries(tmp_path / "m2")
    assert runner_entry.hosts == names
    assert runner_entry.outcome == "failed"
    assert runner_entry.details == [
        "t3 · Fail on the last SSH host only (ansible.builtin.fail) · planned failure on t3"
    ]
    assert comparable(runner_entry) == comparable(callback_entry)
    assert (runner_entry.source, callback_entry.source) == ("opsrunner", "ansible-playbook")


def test_paramiko_host_is_recorded(ssh_hosts, tmp_path, opsrunner) -> None:
    done = opsrunner("run", "ping", "-i", str(ssh_hosts.paramiko_inventory), "--json")
    assert done.rc == 0, done.stdout + done.stderr
    assert list(done.json()["hosts"]) == ["t1p"]


def write_vault(inventory: Path, tmp_path: Path) -> Path:
    password = tmp_path / "vault-pass"
    password.write_text("test-vault-password\n")
    vault_file = inventory / "group_vars" / "all" / "vault.yml"
    vault_file.parent.mkdir(parents=True)
    vault_file.write_text("vault_wallet_secret: V4ULT-PLANTED-111\n")
    subprocess.run(
        [
            str(BIN / "ansible-vault"),
            "encrypt",
            str(vault_file),
            "--vault-password-file",
            str(password),
        ],
        check=True,
        capture_output=True,
    )
    assert "V4ULT" not in vault_file.read_text()
    return password


def assert_nothing_planted(*roots: Path, text: str = "") -> None:
    for secret in PLANTED:
        assert secret not in text, f"{secret} leaked to stdout"
    for root in roots:
        for path in root.rglob("*"):
            if path.is_file():
                content = path.read_bytes()
                for secret in PLANTED:
                    assert secret.encode() not in content, f"{secret} leaked into {path}"


def test_planted_secrets_reach_no_file(ssh_hosts, tmp_path, opsrunner, ansible_playbook) -> None:
    inventory = tmp_path / "inv"
    inventory.mkdir()
    data = yaml.safe_load(Path(ssh_hosts.inventory).read_text())
    (inventory / "hosts.yml").write_text(yaml.safe_dump(data))
    password = write_vault(inventory, tmp_path)
    env = {"AITBC_DEPLOY_TOKEN": "ENV-PLANTED-222", "ANSIBLE_VAULT_PASSWORD_FILE": str(password)}

    done = opsrunner(
        "run", str(PLAYBOOKS / "secrets.yml"), "-i", str(inventory), "-e", "fail_on=t2", "--json", env=env
    )
    assert done.rc == 1, done.stderr
    assert "********" in done.stdout  # the failure message is there, masked
    plain = ansible_playbook(
        "-i",
        str(inventory),
        str(PLAYBOOKS / "secrets.yml"),
        "-e",
        "fail_on=t2",
        env={**env, "OPSRUNNER_MEMORY_DIR": str(tmp_path / "ai-memory")},
    )
    assert plain.rc == 2
    assert_nothing_planted(tmp_path / "ai-memory", tmp_path / ".work", text=done.stdout)
    entries = today_entries(tmp_path / "ai-memory")
    assert len(entries) == 2 and all("rejected ******** and ********" in e.details[0] for e in entries)


def one_line_error(done, code: int, pattern: str) -> None:
    assert done.rc == code, (done.rc, done.stdout, done.stderr)
    lines = done.stderr.strip().splitlines()
    assert len(lines) == 1 and re.search(pattern, lines[0]), done.stderr
    assert "Traceback" not in done.stdout + done.stderr


def test_bad_input_gives_one_line_and_exit_2(tmp_path, opsrunner) -> None:
    one_line_error(opsrunner("run", "ping", "-i", str(tmp_path / "missing.yml")), 2, "inventory not found")
    one_line_error(opsrunner("run", "no-such-playbook"), 2, "unknown playbook: no-such-playbook")
    one_line_error(opsrunner("run", str(PLAYBOOKS / "malformed.yml")), 2, r"malformed playbook .*line \d+")
    broken = tmp_path / "broken.yml"
    broken.write_text("all:\n  hosts: [unclosed\n")
    one_line_error(opsrunner("run", "ping", "-i", str(broken)), 2, "malformed inventory")
    one_line_error(opsrunner("run", "ping", "--no-such-flag"), 2, "No such option")
    one_line_error(opsrunner("memory", "show", "--date", "yesterday"), 2, "bad date")


def test_unreachable_host_exits_3(tmp_path, opsrunner) -> None:
    inventory = tmp_path / "dead.yml"
    # Nothing listens on port 1 of loopback: the connection is refused at once.
    inventory.write_text(
        yaml.safe_dump(
            {
                "all": {
                    "hosts": {
                        "dead": {"ansible_host": "127.0.0.1", "ansible_port": 1, "ansible_user": "root"}
                    }
                }
            }
        )
    )
    done = opsrunner("run", "ping", "-i", str(inventory), "--json")
    assert done.rc == 3, done.stdout + done.stderr
    result = done.json()
    assert result["outcome"] == "unreachable"
    assert result["failures"][0]["unreachable"] is True
    assert "Traceback" not in done.stderr
    [entry] = today_entries(tmp_path / "ai-memory")
    assert entry.outcome == "unreachable" and entry.details[0].startswith("dead unreachable:")


def test_ctrl_c_cancels_cleanly(tmp_path, opsrunner) -> None:
    """SIGINT mid-run: exit 130, a whole 'canceled' entry, and no process of the run left behind."""
    import os
    import signal
    import time

    slow = tmp_path / "slow.yml"
    slow.write_text(
        "- name: Slow\n  hosts: all\n  gather_facts: false\n  tasks:\n"
        "    - name: Wait\n      ansible.builtin.command: sleep 60\n"
    )
    proc = subprocess.Popen(
        [str(BIN / "opsrunner"), "run", str(slow)],
        cwd=tmp_path,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        deadline = time.monotonic() + 60
        while not list(tmp_path.glob(".work/opsrunner/artifacts/*/job_events/*.json")):
            assert time.monotonic() < deadline, "the run never started"
            time.sleep(0.2)
        time.sleep(1.5)  # the sleep task is running now
        proc.send_signal(signal.SIGINT)
        out, err = proc.communicate(timeout=60)
    finally:
        if proc.poll() is None:
            proc.kill()
    assert proc.returncode == 130, out + err
    [entry] = today_entries(tmp_path / "ai-memory")
    assert (entry.outcome, entry.hosts) == ("canceled", ["localhost"])
    marker = f"OPSRUNNER_RUN_ID={entry.run_id}".encode()
    leftovers = []
    for proc_dir in Path("/proc").iterdir():
        if proc_dir.name.isdigit():
            try:
                if marker in (proc_dir / "environ").read_bytes().split(b"\0"):
                    leftovers.append(proc_dir.name)
            except OSError:
                continue
    assert not leftovers, f"processes of the canceled run still alive: {leftovers}"
    assert not any((tmp_path / ".work" / "opsrunner" / "private").iterdir())
    assert os.path.exists(tmp_path / ".work" / "opsrunner" / "artifacts" / entry.run_id / "stdout")


def test_artifacts_are_rotated_and_pruned(tmp_path, opsrunner) -> None:
    import os

    env = {"OPSRUNNER_KEEP_ARTIFACTS": "2"}
    for _ in range(3):
        assert opsrunner("run", "ping", env=env).rc == 0
    artifacts = tmp_path / ".work" / "opsrunner" / "artifacts"
    assert len(list(artifacts.iterdir())) == 2
    oldest = min(artifacts.iterdir(), key=lambda p: p.name)
    os.utime(oldest, (1, 1))  # far older than any max age
    assert opsrunner("run", "ping", env={"OPSRUNNER_ARTIFACT_MAX_AGE_DAYS": "1"}).rc == 0
    assert not oldest.exists()
    assert len(today_entries(tmp_path / "ai-memory")) == 4, "memory is never pruned"

"""Planted secrets across every command of the CLI (each runs once, every other one with --json).

Secrets sit where operators keep them: an ansible-vault file (service secrets, the backup key, an alert
URL with a password) and a secret-named environment variable. Every opsrunner command runs against the
demo stack on an SSH test host; neither its output nor any file it leaves (memory
store, runner artifacts, status page, backup store) may hold a planted value."""

from __future__ import annotations

import subprocess
from pathlib import Path

import yaml
from adhoc import BIN
from stack import inventory_with, opsrunner

from opsrunner.cli import cli

PLANTED = {
    "vault_hmac_secret": "planted-hmac-Qe4Wm8Tz",
    "vault_coordinator_api_keys": "planted-apikeys-Hx2Lp9Vd",
    "vault_coordinator_api_key": "planted-apikeys-Hx2Lp9Vd",
    "aitbc_backup_key": "planted-backupkey-Ns7Rc3Ye",
}
ALERT_PASSWORD = "planted-smtp-pw-Jb5Ku1Xo"
ENV_TOKEN = "planted-env-token-Dq6Vz0Ma"
PASSWORD = "planted-vault-password-Ty3"


def planted_inventory(pool, folder: Path) -> tuple[Path, dict[str, str]]:
    inv = inventory_with(pool, folder) / "hosts.yml"
    (folder / "host_vars").mkdir()
    secrets = {**PLANTED, "aitbc_alert_urls": [f"mailto://ops:{ALERT_PASSWORD}@127.0.0.1:9?to=a@example.org"]}
    vault = folder / "host_vars" / "t1.yml"
    vault.write_text(yaml.safe_dump(secrets))
    password = folder.parent / "vault-password"
    password.write_text(PASSWORD + "\n")
    subprocess.run(
        [str(BIN / "ansible-vault"), "encrypt", "--vault-password-file", str(password), str(vault)],
        check=True,
        capture_output=True,
    )
    return inv, {"ANSIBLE_VAULT_PASSWORD_FILE": str(password), "AITBC_SERVICE_TOKEN": ENV_TOKEN}


def commands(inv: Path, work: Path) -> list[list[str]]:
    target = ["-i", str(inv), "--limit", "t1"]
    release = work / "coordinator-9.tar.gz"
    demo = Path(__file__).resolve().parents[2] / "demo" / "aitbc_demo.py"
    subprocess.run(["python3", str(demo), "release", "--version", "9", "--out", str(release)], check=True)
    found = [
        ["demo", "status", *target],
        ["run", "ping", *target],
        ["run", "config", "--check", "--diff", "-v", *target],
        ["run", "config", *target],
        ["heartbeat", "--no-remediate", *target],
        ["service", "status", "wallet-daemon", *target],
        ["backup", *target],
        ["backups", "list", *target],
        ["verify", *target],
        ["env", "sync", "-i", str(inv)],
        ["logs", "review", *target],
        ["deploy", "9", "--from", str(release), "--check", *target],
        ["releases", *target],
        ["incidents", "list"],
        ["memory", "show"],
        ["schedule", "show", "-i", str(inv)],
    ]
    if "report" in cli.commands:
        found.append(["report", *target, "--out", str(work / "status")])
    if "diagnose" in cli.commands:
        found.append(["diagnose", "t1", "coordinator-api", "-i", str(inv)])
    return found


def test_no_planted_secret_reaches_any_output_or_file(stack, tmp_path):
    inv, env = planted_inventory(stack, tmp_path / "inv")
    work = tmp_path / "work"
    work.mkdir()
    env["OPSRUNNER_BACKUP_STORE"] = str(work / "store")
    values = [*PLANTED.values(), ALERT_PASSWORD, ENV_TOKEN, PASSWORD]
    ran = []
    for index, argv in enumerate(commands(inv, work)):
        extra = ["--json"] if index % 2 else []  # every command once; half of them as JSON
        done = opsrunner(*argv, *extra, cwd=work, env=env)
        ran.append((" ".join(argv + extra), done.returncode))
        for value in values:
            assert value not in done.stdout + done.stderr, f"{value} in the output of {argv + extra}"
    assert all(rc in (0, 1) for _cmd, rc in ran), ran  # ran for real (no usage errors)
    files = [p for p in work.rglob("*") if p.is_file()]
    assert len(files) > 20
    for path in files:
        data = path.read_bytes()
        for value in values:
            assert value.encode() not in data, f"{value} in {path}"
    # The secrets did reach the host where they belong.
    env_file = stack.host("t1").state_dir / "config" / "coordinator-api.env"
    assert PLANTED["vault_hmac_secret"] in env_file.read_text()

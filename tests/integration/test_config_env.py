"""Environment knowledge and config apply on the demo stack on SSH test hosts, with secrets in a real
ansible-vault file: env sync is idempotent and secret-free; --check --diff masks secrets; a config change
restarts only the service it concerns; no secret value reaches memory, artifacts or output."""

from __future__ import annotations

import subprocess
from pathlib import Path

import yaml
from adhoc import BIN
from stack import inventory_with, opsrunner

from opsrunner.memory import MemoryStore

HMAC = "planted-hmac-secret-Vq8Zt1"
HMAC_ROTATED = "rotated-hmac-secret-Lk3Pd9"
API_KEYS = "planted-api-key-Rm2Xs7"
PASSWORD = "vault-pass-for-tests"


def vault_inventory(pool, folder: Path, hmac: str) -> tuple[Path, dict[str, str]]:
    """The test inventory plus host_vars/t1.yml encrypted with ansible-vault; env for the vault password."""
    inv = inventory_with(pool, folder) / "hosts.yml"
    secrets = {
        "vault_hmac_secret": hmac,
        "vault_coordinator_api_keys": API_KEYS,
        "vault_coordinator_api_key": API_KEYS,
    }
    (folder / "host_vars").mkdir(exist_ok=True)
    plain = folder / "host_vars" / "t1.yml"
    plain.write_text(yaml.safe_dump(secrets))
    password = folder / "vault-password"
    password.write_text(PASSWORD + "\n")
    subprocess.run(
        [str(BIN / "ansible-vault"), "encrypt", "--vault-password-file", str(password), str(plain)],
        check=True,
        capture_output=True,
    )
    assert plain.read_text().startswith("$ANSIBLE_VAULT;1.1;AES256")
    return inv, {"ANSIBLE_VAULT_PASSWORD_FILE": str(password)}


def pids(host) -> dict[str, str]:
    run = host.state_dir / "run"
    return {p.stem: p.read_text().split()[0] for p in sorted(run.glob("*.pid"))}


def assert_secret_free(root: Path, *texts: str) -> None:
    for value in (HMAC, HMAC_ROTATED, API_KEYS, PASSWORD):
        for text in texts:
            assert value not in text
        for path in root.rglob("*"):
            if path.is_file() and path.name != "vault-password":
                assert value.encode() not in path.read_bytes(), path


def test_env_sync_is_idempotent_and_secret_free(stack, tmp_path):
    inv, env = vault_inventory(stack, tmp_path / "inv", HMAC)
    first = opsrunner("env", "sync", "-i", str(inv), cwd=tmp_path, env=env)
    assert first.returncode == 0 and "changed" in first.stdout, first.stdout + first.stderr
    doc = tmp_path / "ai-memory" / "knowledge" / "environment.md"
    text = doc.read_text()
    for expected in (
        "| t1 |",
        "| t2 |",
        "coordinator-api",
        "18011",
        "/health/ready",
        "HMAC_SECRET (secret, vault)",
        "gossip_broadcast_url",
        "## Schedules\n\nOn localhost: ",  # read back from the schedule host, not the role's defaults
    ):
        assert expected in text, expected
    mtime = doc.stat().st_mtime_ns
    second = opsrunner("env", "sync", "-i", str(inv), cwd=tmp_path, env=env)
    assert second.returncode == 0 and "unchanged" in second.stdout
    assert doc.stat().st_mtime_ns == mtime
    checked = opsrunner("env", "sync", "--check", "-i", str(inv), cwd=tmp_path, env=env)
    assert checked.returncode == 0 and "unchanged" in checked.stdout
    assert_secret_free(tmp_path, first.stdout, second.stdout)


def test_config_change_restarts_only_the_affected_service_and_masks_secrets(stack, tmp_path):
    t1 = stack.host("t1")
    inv, env = vault_inventory(stack, tmp_path / "inv", HMAC)
    applied = opsrunner("run", "config", "-i", str(inv), "--limit", "t1", cwd=tmp_path, env=env)
    assert applied.returncode == 0, applied.stdout + applied.stderr
    env_file = t1.state_dir / "config" / "coordinator-api.env"
    assert f"HMAC_SECRET={HMAC}" in env_file.read_text()
    assert oct(env_file.stat().st_mode & 0o777) == "0o600"
    before = pids(t1)

    inv, env = vault_inventory(stack, tmp_path / "inv2", HMAC_ROTATED)
    preview = opsrunner(
        "run", "config", "--check", "--diff", "-v", "-i", str(inv), "--limit", "t1", cwd=tmp_path, env=env
    )
    assert preview.returncode == 0, preview.stdout
    assert "-HMAC_SECRET=********\n" in preview.stdout and "+HMAC_SECRET=******** (changed)" in preview.stdout
    assert f"HMAC_SECRET={HMAC}" in env_file.read_text()  # check mode wrote nothing
    assert pids(t1) == before

    rotated = opsrunner("run", "config", "-i", str(inv), "--limit", "t1", cwd=tmp_path, env=env)
    assert rotated.returncode == 0, rotated.stdout
    after = pids(t1)
    assert after["coordinator-api"] != before["coordinator-api"]
    assert {k: v for k, v in after.items() if k != "coordinator-api"} == {
        k: v for k, v in before.items() if k != "coordinator-api"
    }
    assert f"HMAC_SECRET={HMAC_ROTATED}" in env_file.read_text()
    decision = MemoryStore(tmp_path / "ai-memory").decisions()[-1]
    assert decision.kind == "config" and "HMAC_SECRET" in decision.impact
    assert decision.details == [str(env_file)]
    assert_secret_free(tmp_path, applied.stdout, preview.stdout, rotated.stdout)
    # Again with nothing changed: no restart, no decision.
    again = opsrunner("run", "config", "-i", str(inv), "--limit", "t1", cwd=tmp_path, env=env)
    assert again.returncode == 0 and pids(t1) == after
    assert len(MemoryStore(tmp_path / "ai-memory").decisions()) == 2

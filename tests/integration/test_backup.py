"""Backups on the demo stack running on real SSH test hosts: consistency under write load, verification
failures that open incidents, no plaintext key material off the host, retention, the guarded restore with
its health gate and rollback, a full disk, and the devnet reset runbook."""

from __future__ import annotations

import datetime as dt
import hashlib
import json
import sqlite3
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest
from adhoc import BIN, REPO, run_module
from stack import inventory_with, opsrunner, opsrunner_json

from opsrunner.incidents import IncidentStore
from opsrunner.memory import MemoryStore

COLLECTIONS = REPO / "collections"
if str(COLLECTIONS) not in sys.path:
    sys.path.insert(0, str(COLLECTIONS))

from ansible_collections.aitbc.ops.plugins.module_utils.backup.base import SET_NAME_RE  # noqa: E402
from ansible_collections.aitbc.ops.plugins.module_utils.backup.sets import create_set  # noqa: E402
from ansible_collections.aitbc.ops.plugins.module_utils.backup.verify import (  # noqa: E402
    record_verification,
    verify_set,
)

KEY = "integration-backup-key-7Qw2"  # stands in for the vaulted aitbc_backup_key
PLANTED = "PLANTED-WALLET-SECRET-d41d8cd98f00"


def host(pool, name: str):
    return next(h for h in pool.hosts if h.name == name)


def inventory(pool, tmp_path: Path, **group_vars) -> Path:
    defaults = {"aitbc_backup_key": KEY, "aitbc_backup_root": str(tmp_path / "backups")}
    return inventory_with(pool, tmp_path / "inventory", {**defaults, **group_vars}) / "hosts.yml"


def store_env(tmp_path: Path) -> dict[str, str]:
    return {"OPSRUNNER_BACKUP_STORE": str(tmp_path / "store")}


def digest(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def sets_of(root: Path, name: str) -> list[Path]:
    folder = root / name
    return sorted(p for p in folder.iterdir() if SET_NAME_RE.match(p.name)) if folder.is_dir() else []


class Writer(threading.Thread):
    """Commits one row at a time to a SQLite database until stopped."""

    def __init__(self, path: Path) -> None:
        super().__init__(daemon=True)
        self.path, self.stop, self.committed, self.commits = path, threading.Event(), 0, 0

    def run(self) -> None:
        conn = sqlite3.connect(self.path, timeout=30)
        while not self.stop.is_set():
            cur = conn.execute("INSERT INTO ledger (memo) VALUES (?)", ("w" * 300,))
            conn.commit()
            self.committed, self.commits = cur.lastrowid, self.commits + 1
        conn.close()


def test_sqlite_backup_over_ssh_under_write_load_restores_every_committed_row(
    ssh_hosts, ansible_env, tmp_path
):
    t1 = host(ssh_hosts, "t1")
    db = t1.state_dir / "load" / "ledger.db"
    db.parent.mkdir(parents=True, exist_ok=True)
    db.unlink(missing_ok=True)
    conn = sqlite3.connect(db)
    conn.execute("PRAGMA journal_mode=WAL")
    conn.execute("CREATE TABLE ledger (id INTEGER PRIMARY KEY, memo TEXT)")
    conn.executemany("INSERT INTO ledger (memo) VALUES (?)", [("x" * 300,)] * 60000)
    conn.commit()
    conn.close()
    root = tmp_path / "backups"
    writer = Writer(db)
    writer.start()
    try:
        while writer.commits < 20:
            time.sleep(0.01)
        before, commits_at_start = writer.committed, writer.commits
        args = {
            "root": str(root),
            "host": "t1",
            "sources": [{"kind": "sqlite", "path": str(db), "service": "l"}],
        }
        run = run_module(
            "aitbc.ops.backup", ansible_env, args, inventory=str(ssh_hosts.inventory), pattern="t1"
        )
        commits_during = writer.commits - commits_at_start
    finally:
        writer.stop.set()
        writer.join()
    status, result = run.result("t1")
    assert status == "CHANGED", run.stdout + run.stderr
    assert commits_during > 10, "the writer must keep committing while the backup runs"
    set_path = result["backup"]["path"]

    # Restore over the live file (writers stopped) through the real module, then check the data.
    refused = run_module(
        "aitbc.ops.restore", ansible_env, {"set": set_path}, inventory=str(ssh_hosts.inventory), pattern="t1"
    )
    assert refused.result("t1")[0] == "FAILED!" and "confirm" in refused.result("t1")[1]["msg"]
    done = run_module(
        "aitbc.ops.restore",
        ansible_env,
        {"set": set_path, "confirm": True},
        inventory=str(ssh_hosts.inventory),
        pattern="t1",
    )
    assert done.result("t1")[0] == "CHANGED", done.stdout
    conn = sqlite3.connect(db)
    assert conn.execute("PRAGMA integrity_check").fetchone()[0] == "ok"
    highest, count = conn.execute("SELECT max(id), count(*) FROM ledger").fetchone()
    conn.close()
    assert highest >= before and count == highest  # every row committed before the backup began, no gaps


def test_backup_verifies_copies_off_host_and_never_ships_plaintext_keys(stack, tmp_path):
    t1 = host(stack, "t1")
    keystore = t1.state_dir / "data" / "wallet" / "keystore"
    (keystore / "planted.key.json").write_text(json.dumps({"private_key": PLANTED}))
    (keystore / "planted.key.json").chmod(0o600)  # key material as it should be (the heartbeat checks it)
    inv = inventory(stack, tmp_path)
    rc, result = opsrunner_json(
        "backup", "-i", str(inv), "--limit", "t1", cwd=tmp_path, env=store_env(tmp_path)
    )
    assert rc == 0, result
    name = result["sets"]["t1"]["set"]
    copy = tmp_path / "store" / "t1" / name
    files = sorted(p.name for p in copy.iterdir())
    assert "wallet-daemon.keystore.tar.gz.vault" in files and "manifest.json" in files
    for path in (tmp_path / "store").rglob("*"):
        if path.is_file():
            data = path.read_bytes()
            assert PLANTED.encode() not in data and PLANTED.encode().hex().encode() not in data, path
    # The key material is in there, for whoever holds the key: the stock ansible-vault opens it.
    password = tmp_path / "vault-pass"
    password.write_text(KEY + "\n")
    opened = subprocess.run(
        [
            str(BIN / "ansible-vault"),
            "decrypt",
            "--vault-password-file",
            str(password),
            "--output",
            "-",
            str(copy / "wallet-daemon.keystore.tar.gz.vault"),
        ],
        capture_output=True,
        check=True,
    )
    unpacked = subprocess.run(["tar", "xzO"], input=opened.stdout, capture_output=True, check=True)
    assert PLANTED.encode() in unpacked.stdout
    manifest = json.loads((copy / "manifest.json").read_text())
    assert manifest["verification"]["ok"] and manifest["verification"]["drill"]
    # The key and the planted secret never reach memory, artifacts or the CLI output.
    written = [p for d in ("ai-memory", ".work") for p in (tmp_path / d).rglob("*") if p.is_file()]
    assert written
    for path in written:
        text = path.read_bytes()
        assert KEY.encode() not in text, path

    # Without a key the set stays on the host, and the off-host copy is refused with a clear message.
    plain = inventory(stack, tmp_path / "plain", aitbc_backup_key="")
    done = opsrunner(
        "backup", "-i", str(plain), "--limit", "t1", cwd=tmp_path, env=store_env(tmp_path / "plain")
    )
    assert done.returncode == 1
    assert "refusing to copy wallet-daemon.keystore.tar.gz off t1" in done.stdout
    assert not (tmp_path / "plain" / "store" / "t1").exists() or not any(
        (tmp_path / "plain" / "store" / "t1").iterdir()
    )
    assert len(sets_of(tmp_path / "plain" / "backups", "t1")) == 1


def test_damaged_sets_fail_verification_and_open_one_incident(stack, tmp_path):
    inv = inventory(stack, tmp_path)
    env = store_env(tmp_path)
    assert opsrunner("backup", "-i", str(inv), "--limit", "t2", cwd=tmp_path, env=env).returncode == 0
    (set_path,) = sets_of(tmp_path / "backups", "t2")
    chain = set_path / "blockchain-node.chain.db"
    data = bytearray(chain.read_bytes())
    data[len(data) // 2] ^= 0x01
    chain.write_bytes(bytes(data))

    rc, result = opsrunner_json("verify", "-i", str(inv), "--limit", "t2", cwd=tmp_path)
    assert rc == 1
    (row,) = result["verified"]
    assert not row["ok"]
    assert any("blockchain-node.chain.db: sha256: sha256 mismatch" in f for f in row["failed"]), row
    store = MemoryStore(tmp_path / "ai-memory")
    (incident,) = [i for i in IncidentStore(store).all() if i.active]
    assert (incident.host, incident.service, incident.check) == ("t2", "backup", "backup verify")
    assert "blockchain-node.chain.db" in incident.timeline[0].text
    assert "backup verification failing" in incident.debugging_notes
    listing = opsrunner_json("backups", "list", "-i", str(inv), "--limit", "t2", cwd=tmp_path)[1]
    assert [s["verified"] for s in listing["sets"]] == [False]
    assert opsrunner("verify", set_path.name, "-i", str(inv), "--limit", "t2", cwd=tmp_path).returncode == 1
    assert [i.id for i in IncidentStore(store).all()] == [incident.id]  # deduplicated: noted, not reopened
    assert "still failing" in IncidentStore(store).get(incident.id).timeline[-1].text

    # A truncated keystore archive, even with a manifest that agrees with it, fails the drill.
    assert opsrunner("backup", "-i", str(inv), "--limit", "t2", cwd=tmp_path, env=env).returncode == 0
    newest = sets_of(tmp_path / "backups", "t2")[-1]
    archive = newest / "wallet-daemon.keystore.tar.gz.vault"
    archive.write_bytes(archive.read_bytes()[:-100])
    manifest = json.loads((newest / "manifest.json").read_text())
    for entry in manifest["files"]:
        if entry["file"] == archive.name:
            entry.update(size=archive.stat().st_size, sha256=digest(archive))
    (newest / "manifest.json").write_text(json.dumps(manifest))
    rc, result = opsrunner_json("verify", newest.name, "-i", str(inv), "--limit", "t2", cwd=tmp_path)
    assert rc == 1
    assert any(
        f.startswith("wallet-daemon.keystore.tar.gz.vault: drill:") for f in result["verified"][0]["failed"]
    )
    # (the good set taken in between resolved the first incident; this failure opens the next)
    first, second = IncidentStore(store).all()
    assert (first.id, first.status, second.status) == (incident.id, "resolved", "open")
    assert "wallet-daemon.keystore.tar.gz.vault" in second.timeline[0].text

    # A good set verified again resolves it.
    assert opsrunner("backup", "-i", str(inv), "--limit", "t2", cwd=tmp_path, env=env).returncode == 0
    assert not [i for i in IncidentStore(store).all() if i.active]


def test_retention_over_ssh_keeps_newest_verified_and_deletes_only_expired(ssh_hosts, ansible_env, tmp_path):
    t1 = host(ssh_hosts, "t1")
    db = t1.state_dir / "retention.db"
    sqlite3.connect(db).execute("CREATE TABLE IF NOT EXISTS t (x)").connection.close()
    root = t1.state_dir / "retention-backups"
    now = dt.datetime.now(dt.UTC).replace(microsecond=0)
    noon = now.replace(hour=12, minute=0, second=0)
    times = {
        "d90": noon - dt.timedelta(days=90),
        "d45": noon - dt.timedelta(days=45),
        "d20-early": noon - dt.timedelta(days=20, hours=4),
        "d20-late": noon - dt.timedelta(days=20) + dt.timedelta(hours=4),
        "d3": noon - dt.timedelta(days=3),
        "d1": noon - dt.timedelta(days=1),
        "now": now - dt.timedelta(minutes=1),
    }
    by_age = {}
    for label, created_at in times.items():
        created = create_set(str(root), "t1", [{"kind": "sqlite", "path": str(db)}], now=created_at)
        by_age[label] = created["set"]
        ok = label == "d90"  # only the oldest ever passed verification; the later ones failed theirs
        record_verification(created["path"], {**verify_set(created["path"]), "ok": ok})
    args = {"root": str(root), "host": "t1", "keep_last": 3, "keep_days": 30}
    planned = run_module(
        "aitbc.ops.backup_prune",
        ansible_env,
        args,
        "--check",
        "--diff",
        inventory=str(ssh_hosts.inventory),
        pattern="t1",
    )
    status, result = planned.result("t1")
    assert status == "CHANGED" and result["deleted"] == [by_age["d45"], by_age["d20-early"]]
    # --diff shows the sets before and after: the two to be deleted are the lines taken away.
    removed = [line for line in planned.stdout.splitlines() if line.startswith("-") and '"' in line]
    assert [name for name in by_age.values() if any(name in line for line in removed)] == [
        by_age["d45"],
        by_age["d20-early"],
    ]
    assert len(sets_of(root, "t1")) == len(times)  # check mode deleted nothing
    run = run_module(
        "aitbc.ops.backup_prune", ansible_env, args, inventory=str(ssh_hosts.inventory), pattern="t1"
    )
    assert run.result("t1")[0] == "CHANGED"
    kept = [p.name for p in sets_of(root, "t1")]
    assert kept == [by_age[k] for k in ("d90", "d20-late", "d3", "d1", "now")]
    assert (
        dict((k["set"], k["reason"]) for k in run.result("t1")[1]["kept"])[by_age["d90"]]
        == "newest verified set"
    )


def wallet_rows(t3) -> int:
    conn = sqlite3.connect(t3.state_dir / "data" / "wallet" / "wallet_ledger.db")
    try:
        return conn.execute("SELECT count(*) FROM ledger").fetchone()[0]
    finally:
        conn.close()


def test_restore_needs_confirmation_then_restores_behind_the_health_gate(stack, tmp_path):
    t3 = host(stack, "t3")
    inv = inventory(stack, tmp_path)
    env = store_env(tmp_path)
    rc, taken = opsrunner_json("backup", "-i", str(inv), "--limit", "t3", cwd=tmp_path, env=env)
    assert rc == 0
    original = wallet_rows(t3)
    conn = sqlite3.connect(t3.state_dir / "data" / "wallet" / "wallet_ledger.db")
    conn.executemany(
        "INSERT INTO ledger (account, amount, memo) VALUES ('x', 1, 'after the backup')", [()] * 3
    )
    conn.commit()
    conn.close()
    ledger = t3.state_dir / "data" / "wallet" / "wallet_ledger.db"
    before = digest(ledger)

    refused = opsrunner("restore", taken["sets"]["t3"]["set"], "-i", str(inv), "--limit", "t3", cwd=tmp_path)
    assert refused.returncode == 2 and "without --confirm" in refused.stderr
    assert digest(ledger) == before and wallet_rows(t3) == original + 3

    # A side restore needs no confirmation: the set's data under --dest, at its path relative to /;
    # nothing live is stopped, backed up or replaced.
    side = tmp_path / "side"
    side_args = ("restore", taken["sets"]["t3"]["set"], "--dest", str(side), "--service", "wallet-daemon")
    limits = ("-i", str(inv), "--limit", "t3")
    rc, inspected = opsrunner_json(*side_args, *limits, cwd=tmp_path)
    assert rc == 0, inspected
    assert inspected["dest"] == str(side) and inspected["restored"] == {
        "t3": ["wallet-daemon.wallet_ledger.db", "wallet-daemon.keystore.tar.gz.vault"]
    }
    [copy] = side.rglob("wallet_ledger.db")
    assert str(copy).endswith(str(ledger.relative_to(t3.state_dir)))
    conn = sqlite3.connect(copy)
    assert conn.execute("SELECT count(*) FROM ledger").fetchone()[0] == original
    conn.close()
    assert side.stat().st_mode & 0o777 == 0o700
    assert digest(ledger) == before and wallet_rows(t3) == original + 3
    assert len(sets_of(tmp_path / "backups", "t3")) == 1  # no pre-restore backup
    again = opsrunner(*side_args, *limits, cwd=tmp_path)  # would replace the side copy: needs --confirm
    assert again.returncode == 1 and "refusing to replace" in again.stdout + again.stderr
    inside = opsrunner("restore", "newest", "--dest", str(ledger.parent), *limits, cwd=tmp_path)
    assert inside.returncode == 1 and "is or holds the live target" in inside.stdout + inside.stderr
    assert digest(ledger) == before

    rc, result = opsrunner_json(
        "restore",
        taken["sets"]["t3"]["set"],
        "--confirm",
        "--service",
        "wallet-daemon",
        "-i",
        str(inv),
        "--limit",
        "t3",
        cwd=tmp_path,
    )
    assert rc == 0, result
    assert result["restored"] == {
        "t3": ["wallet-daemon.wallet_ledger.db", "wallet-daemon.keystore.tar.gz.vault"]
    }
    assert wallet_rows(t3) == original
    status = opsrunner_json(
        "service", "status", "wallet-daemon", "-i", str(inv), "--limit", "t3", cwd=tmp_path
    )[1]
    assert status["exit_code"] == 0
    decisions = MemoryStore(tmp_path / "ai-memory").decisions()
    assert [d.kind for d in decisions] == ["restore"] and decisions[0].outcome == "restored"
    # The state from before the restore was backed up first.
    labels = [
        json.loads((p / "manifest.json").read_text())["label"] for p in sets_of(tmp_path / "backups", "t3")
    ]
    assert labels == ["scheduled", "pre-restore"]


def test_restore_that_fails_its_health_gate_rolls_back(stack, tmp_path):
    t3 = host(stack, "t3")
    jobs = t3.state_dir / "data" / "coordinator" / "coordinator.db"
    inv0 = inventory(stack, tmp_path / "a")
    rc, taken = opsrunner_json(
        "backup",
        "--service",
        "coordinator-api",
        "-i",
        str(inv0),
        "--limit",
        "t3",
        cwd=tmp_path,
        env=store_env(tmp_path),
    )
    assert rc == 0, taken
    conn = sqlite3.connect(jobs)
    count = conn.execute("SELECT count(*) FROM jobs").fetchone()[0]
    conn.executemany("INSERT INTO jobs (payload, created_at) VALUES ('{}', 'now')", [()] * 2)
    conn.commit()
    conn.close()
    # The gate for this run only passes with the new jobs present: restoring the older set must fail it.
    gate = {
        "coordinator-api": {"probes": [{"type": "http", "path": "/v1/jobs", "json": [f"count > {count}"]}]}
    }
    inv = inventory_with(
        stack,
        tmp_path / "b",
        {
            "aitbc_backup_key": KEY,
            "aitbc_backup_root": str(tmp_path / "a" / "backups"),
            "aitbc_service_overrides": gate,
            "restore_gate_timeout": 4,
        },
    )
    done = opsrunner(
        "restore",
        taken["sets"]["t3"]["set"],
        "--confirm",
        "-i",
        str(inv / "hosts.yml"),
        "--limit",
        "t3",
        cwd=tmp_path,
    )
    assert done.returncode == 1, done.stdout
    assert "rolled back to" in done.stdout
    conn = sqlite3.connect(jobs)
    assert conn.execute("SELECT count(*) FROM jobs").fetchone()[0] == count + 2
    conn.close()
    (decision,) = MemoryStore(tmp_path / "ai-memory").decisions()
    assert decision.outcome == "rolled-back" and "Rolled back" in decision.decision


def test_full_backup_disk_gives_a_clear_error_and_no_set(ansible_env, tmp_path):
    full = tmp_path / "full"
    full.mkdir()
    mounted = subprocess.run(
        ["mount", "-t", "tmpfs", "-o", "size=256k", "tmpfs", str(full)], capture_output=True
    )
    if mounted.returncode != 0:
        pytest.skip(f"cannot mount a tmpfs here: {mounted.stderr.decode().strip()}")
    try:
        db = tmp_path / "big.db"
        conn = sqlite3.connect(db)
        conn.execute("CREATE TABLE t (x)")
        conn.executemany("INSERT INTO t VALUES (?)", [("y" * 1000,)] * 2000)  # about 2 MiB
        conn.commit()
        conn.close()
        before = digest(db)
        args = {"root": str(full), "host": "h", "sources": [{"kind": "sqlite", "path": str(db)}]}
        run = run_module("aitbc.ops.backup", ansible_env, args)
        status, result = run.result()
        assert status == "FAILED!"
        assert result["msg"].startswith("backup failed, no set written: no space left on device"), result[
            "msg"
        ]
        info = run_module("aitbc.ops.backup_info", ansible_env, {"root": str(full), "host": "h"}).result()[1]
        assert info["sets"] == [] and info["leftovers"] == [] and info["newest_verified"] is None
        assert digest(db) == before
    finally:
        subprocess.run(["umount", str(full)], check=False)


def chain_head(t) -> tuple[str, int]:
    conn = sqlite3.connect(f"file:{t.state_dir / 'data' / 'chain' / 'chain.db'}?mode=ro", uri=True)
    try:
        genesis = conn.execute("SELECT hash FROM blocks WHERE height = 0").fetchone()[0]
        return genesis, conn.execute("SELECT max(height) FROM blocks").fetchone()[0]
    finally:
        conn.close()


def test_devnet_reset_regenerates_genesis_and_keeps_the_old_chain(stack, tmp_path):
    t2 = host(stack, "t2")
    inv = inventory(stack, tmp_path)
    old_genesis, old_height = chain_head(t2)
    refused = opsrunner("run", "devnet_reset", "-i", str(inv), "--limit", "t2", cwd=tmp_path)
    assert refused.returncode == 1 and "without confirmation" in refused.stdout
    assert chain_head(t2)[0] == old_genesis

    done = opsrunner(
        "run",
        "devnet_reset",
        "-i",
        str(inv),
        "--limit",
        "t2",
        "-e",
        "devnet_reset_confirm=true",
        cwd=tmp_path,
    )
    assert done.returncode == 0, done.stdout + done.stderr
    new_genesis, height = chain_head(t2)
    assert new_genesis != old_genesis and height < old_height
    deadline = time.monotonic() + 15
    while chain_head(t2)[1] <= height and time.monotonic() < deadline:
        time.sleep(0.5)
    assert chain_head(t2)[1] > height, "the node produces blocks again"
    (saved,) = sets_of(tmp_path / "backups", "t2")
    manifest = json.loads((saved / "manifest.json").read_text())
    assert manifest["label"] == "devnet-reset" and manifest["keep"] is True  # retention never deletes it
    conn = sqlite3.connect(f"file:{saved / 'blockchain-node.chain.db'}?mode=ro&immutable=1", uri=True)
    assert conn.execute("SELECT hash FROM blocks WHERE height = 0").fetchone()[0] == old_genesis
    conn.close()
    (decision,) = MemoryStore(tmp_path / "ai-memory").decisions()
    assert decision.kind == "devnet-reset" and str(saved) in decision.impact


def test_heartbeat_fails_on_stale_backups_and_recovers(stack, tmp_path):
    inv = inventory(stack, tmp_path, heartbeat_backup_max_age_hours=1, heartbeat_failure_threshold=1)
    rc, beat = opsrunner_json("heartbeat", "-i", str(inv), "--limit", "t1", "--no-remediate", cwd=tmp_path)
    assert rc == 1
    (host_row,) = [c for c in beat["checks"] if c["service"] == "host"]
    assert host_row["status"] == "FAIL" and "backup freshness: no verified backup set" in host_row["detail"]
    assert (
        opsrunner("backup", "-i", str(inv), "--limit", "t1", cwd=tmp_path, env=store_env(tmp_path)).returncode
        == 0
    )
    rc, beat = opsrunner_json("heartbeat", "-i", str(inv), "--limit", "t1", "--no-remediate", cwd=tmp_path)
    assert rc == 0, beat["checks"]
    incidents = IncidentStore(MemoryStore(tmp_path / "ai-memory")).all()
    assert [(i.check, i.status) for i in incidents] == [("backup freshness", "resolved")]

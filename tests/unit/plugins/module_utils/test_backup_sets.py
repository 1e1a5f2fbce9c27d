"""The backup core (plugins/module_utils/backup/) on real files: SQLite under write load, tar archives
with ansible-vault encryption, a real redis-server, retention and the atomic restore."""

from __future__ import annotations

import datetime as dt
import json
import os
import shutil
import socket
import sqlite3
import subprocess
import threading
import time
from pathlib import Path

import pytest
from ansible_collections.aitbc.ops.plugins.module_utils._diff import DifferenceTracker
from ansible_collections.aitbc.ops.plugins.module_utils._files import sha256_file
from ansible_collections.aitbc.ops.plugins.module_utils._text import iso
from ansible_collections.aitbc.ops.plugins.module_utils.backup.base import (
    COLLECTION_VERSION,
    TIME_FORMAT,
    BackupError,
)
from ansible_collections.aitbc.ops.plugins.module_utils.backup.kinds.redis import RedisClient, check_rdb
from ansible_collections.aitbc.ops.plugins.module_utils.backup.restore import (
    existing_targets,
    restore_diff,
    restore_set,
)
from ansible_collections.aitbc.ops.plugins.module_utils.backup.retention import prune, retention_plan
from ansible_collections.aitbc.ops.plugins.module_utils.backup.sets import (
    backup_result,
    create_set,
    resolve_set,
    set_summary,
)
from ansible_collections.aitbc.ops.plugins.module_utils.backup.verify import (
    failure_summary,
    record_verification,
    verification_outcome,
    verify_set,
)

KEY = "correct horse battery staple"
PLANTED = b"PLANTED-PRIVATE-KEY-6f1d9a0b2c"


def make_db(path: Path, rows: int = 100, wal: bool = True) -> None:
    conn = sqlite3.connect(path)
    if wal:
        conn.execute("PRAGMA journal_mode=WAL")
    conn.execute("CREATE TABLE IF NOT EXISTS blocks (height INTEGER PRIMARY KEY, payload TEXT)")
    conn.executemany("INSERT INTO blocks (payload) VALUES (?)", [("x" * 100,)] * rows)
    conn.commit()
    conn.close()


class Writer(threading.Thread):
    """Commits one row at a time until stopped; remembers the highest committed height."""

    def __init__(self, path: Path) -> None:
        super().__init__(daemon=True)
        self.path = path
        self.stop = threading.Event()
        self.committed = 0
        self.commits = 0

    def run(self) -> None:
        conn = sqlite3.connect(self.path, timeout=30)
        while not self.stop.is_set():
            cur = conn.execute("INSERT INTO blocks (payload) VALUES (?)", ("y" * 200,))
            conn.commit()
            self.committed = cur.lastrowid
            self.commits += 1
        conn.close()


@pytest.fixture
def keystore(tmp_path: Path) -> Path:
    folder = tmp_path / "data" / "keystore"
    folder.mkdir(parents=True)
    (folder / "wallet-1.json").write_bytes(b'{"key": "' + PLANTED + b'"}')
    (folder / "sub").mkdir()
    (folder / "sub" / "wallet-2.json").write_text('{"key": "other"}')
    folder.chmod(0o700)
    return folder


@pytest.mark.parametrize("wal", [True, False], ids=["wal", "rollback-journal"])
def test_sqlite_backup_is_consistent_under_write_load(tmp_path: Path, wal: bool) -> None:
    db = tmp_path / "chain.db"
    make_db(db, rows=20000, wal=wal)
    writer = Writer(db)
    writer.start()
    try:
        while writer.commits < 50:
            time.sleep(0.01)
        before = writer.committed
        manifest = create_set(
            str(tmp_path / "backups"), "h1", [{"kind": "sqlite", "path": str(db), "service": "node"}]
        )
        commits_during = writer.commits
    finally:
        writer.stop.set()
        writer.join()
    assert commits_during > 50
    result = verify_set(manifest["path"], queries={"chain.db": "SELECT max(height) FROM blocks"})
    assert result["ok"], result["checks"]
    copy = Path(manifest["path"]) / "node.chain.db"
    conn = sqlite3.connect(copy)
    highest = conn.execute("SELECT max(height) FROM blocks").fetchone()[0]
    conn.close()
    assert highest >= before  # every row committed before the backup started is in the copy
    entry = manifest["files"][0]
    assert entry["sha256"] == sha256_file(copy) and entry["size"] == copy.stat().st_size
    assert oct(copy.stat().st_mode & 0o777) == "0o600"
    assert oct((tmp_path / "backups" / "h1").stat().st_mode & 0o777) == "0o700"
    sums = (Path(manifest["path"]) / "SHA256SUMS").read_text()
    done = subprocess.run(
        ["sha256sum", "-c", "--quiet", "SHA256SUMS"], cwd=manifest["path"], capture_output=True, check=False
    )
    assert done.returncode == 0, sums


def test_encrypted_archive_holds_no_plaintext_and_drills(tmp_path: Path, keystore: Path) -> None:
    root = tmp_path / "backups"
    manifest = create_set(
        str(root), "h1", [{"kind": "files", "path": str(keystore), "service": "wallet"}], key=KEY
    )
    entry = manifest["files"][0]
    assert entry["file"] == "wallet.keystore.tar.gz.vault" and entry["encrypted"] and entry["sensitive"]
    for path in Path(manifest["path"]).iterdir():
        assert PLANTED not in path.read_bytes()
    result = verify_set(manifest["path"], key=KEY)
    assert result["ok"], result["checks"]
    assert any("2 file(s)" in c["detail"] for c in result["checks"] if c["check"] == "drill")
    wrong = verify_set(manifest["path"], key="wrong")
    assert not wrong["ok"] and "cannot decrypt" in failure_summary(wrong)


def test_plain_archive_without_key_is_reported_sensitive(tmp_path: Path, keystore: Path) -> None:
    manifest = create_set(
        str(tmp_path / "b"), "h1", [{"kind": "files", "path": str(keystore), "service": "w"}]
    )
    row = set_summary(manifest["path"])
    assert row["plaintext_sensitive"] == ["w.keystore.tar.gz"]
    assert verify_set(manifest["path"])["ok"]


def test_flipped_byte_fails_verification_naming_file(tmp_path: Path) -> None:
    db = tmp_path / "coordinator.db"
    make_db(db, rows=500)
    manifest = create_set(str(tmp_path / "b"), "h1", [{"kind": "sqlite", "path": str(db), "service": "api"}])
    copy = Path(manifest["path"]) / "api.coordinator.db"
    data = bytearray(copy.read_bytes())
    data[len(data) // 2] ^= 0xFF
    copy.write_bytes(bytes(data))
    result = verify_set(manifest["path"])
    assert not result["ok"]
    summary = failure_summary(result)
    assert "api.coordinator.db: sha256 failed: sha256 mismatch" in summary
    record_verification(manifest["path"], result)
    assert set_summary(manifest["path"])["verified"] is False
    with pytest.raises(BackupError, match="refusing to restore"):
        restore_set(manifest["path"], [])


def test_truncated_archive_fails_drill_even_with_matching_manifest(tmp_path: Path, keystore: Path) -> None:
    manifest = create_set(
        str(tmp_path / "b"), "h1", [{"kind": "files", "path": str(keystore), "service": "w"}], key=KEY
    )
    archive = Path(manifest["path"]) / manifest["files"][0]["file"]
    archive.write_bytes(archive.read_bytes()[:-200])
    # Re-seal the manifest as an attacker or a buggy copy would: checksums pass, the drill must not.
    data = json.loads((Path(manifest["path"]) / "manifest.json").read_text())
    data["files"][0].update(size=archive.stat().st_size, sha256=sha256_file(archive))
    (Path(manifest["path"]) / "manifest.json").write_text(json.dumps(data))
    result = verify_set(manifest["path"], key=KEY)
    assert not result["ok"]
    failed = [c for c in result["checks"] if not c["ok"]]
    assert failed and failed[0]["check"] == "drill" and "decrypt" in failed[0]["detail"]


def test_missing_source_leaves_no_set(tmp_path: Path) -> None:
    db = tmp_path / "a.db"
    make_db(db)
    root = tmp_path / "b"
    with pytest.raises(BackupError, match="not found"):
        create_set(
            str(root),
            "h1",
            [{"kind": "sqlite", "path": str(db)}, {"kind": "sqlite", "path": str(tmp_path / "nope.db")}],
        )
    assert list((root / "h1").iterdir()) == []


def test_retention_keeps_newest_verified_and_dailies(tmp_path: Path) -> None:
    now = dt.datetime(2026, 11, 24, 12, 0, tzinfo=dt.UTC)

    def row(days_ago: float, verified: bool | None) -> dict:
        created = now - dt.timedelta(days=days_ago)
        return {"set": created.strftime(TIME_FORMAT), "created": iso(created), "verified": verified}

    sets = [
        row(60, True),
        row(40, None),
        row(10.5, None),
        row(10.2, None),
        row(2, False),
        row(1, False),
        row(0.1, False),
    ]
    keep, delete = retention_plan(sets, keep_last=2, keep_days=30, now=now)
    kept = set(keep)
    assert sets[0]["set"] in kept and keep[sets[0]["set"]] == "newest verified set"  # 60 days old, kept
    assert sets[1]["set"] not in kept  # 40 days, unverified: expired
    assert sets[2]["set"] not in kept and sets[3]["set"] in kept  # newest of its day wins
    assert {s["set"] for s in sets[4:]} <= kept
    assert {r["set"] for r in delete} == {sets[1]["set"], sets[2]["set"]}


def test_prune_on_disk_and_check_mode(tmp_path: Path) -> None:
    db = tmp_path / "a.db"
    make_db(db, rows=10)
    root = str(tmp_path / "b")
    base = dt.datetime(2026, 1, 1, tzinfo=dt.UTC)
    names = []
    for day in range(5):
        manifest = create_set(
            root, "h1", [{"kind": "sqlite", "path": str(db)}], now=base + dt.timedelta(days=day)
        )
        names.append(manifest["set"])
    record_verification(resolve_set(root, "h1", names[0]), verify_set(resolve_set(root, "h1", names[0])))
    (Path(root) / "h1" / ".partial-20260101T000000Z-1").mkdir()
    os.utime(Path(root) / "h1" / ".partial-20260101T000000Z-1", (0, 0))
    later = base + dt.timedelta(days=400)
    planned = prune(root, "h1", keep_last=2, keep_days=0, check_mode=True, now=later)
    assert planned["deleted"] == names[1:3] and planned["changed"]
    assert len(os.listdir(Path(root) / "h1")) == 6
    done = prune(root, "h1", keep_last=2, keep_days=0, now=later)
    assert done["deleted_leftovers"] == [".partial-20260101T000000Z-1"]
    assert sorted(os.listdir(Path(root) / "h1")) == [names[0], names[3], names[4]]


def test_a_set_taken_with_keep_survives_retention(tmp_path: Path) -> None:
    # The devnet reset's backup (playbooks/devnet_reset.yml, keep: true): its decision record points at it.
    db = tmp_path / "chain.db"
    make_db(db, rows=10)
    root = str(tmp_path / "b")
    params = {"root": root, "host": "h1", "sources": [{"kind": "sqlite", "path": str(db)}]}
    planned = backup_result({**params, "label": "devnet-reset", "keep": True}, check_mode=True)
    assert planned["msg"] == "would back up 1 source(s) (check mode)" and not os.path.exists(root)
    kept = backup_result({**params, "label": "devnet-reset", "keep": True})
    assert kept["backup"]["keep"] is True and set_summary(kept["backup"]["path"])["keep"] is True
    assert kept["msg"].startswith(
        f"backup set {kept['backup']['set']} written to {kept['backup']['path']}: 1 file(s)"
    )
    assert "label devnet-reset; kept: retention never deletes it" in kept["msg"] and "\n" not in kept["msg"]
    later = [backup_result(params)["backup"]["set"] for _take in range(3)]
    assert set_summary(resolve_set(root, "h1", later[0]))["keep"] is False
    far = dt.datetime.now(dt.UTC) + dt.timedelta(days=400)
    done = prune(root, "h1", keep_last=1, keep_days=0, now=far)
    assert {"set": kept["backup"]["set"], "reason": "marked keep (devnet-reset)"} in done["kept"]
    assert sorted(os.listdir(Path(root) / "h1")) == sorted([kept["backup"]["set"], later[-1]])


def test_verification_result_lists_each_failure_apart_with_a_one_line_msg(tmp_path: Path) -> None:
    sources = []
    for name in ("a.db", "b.db"):
        make_db(tmp_path / name, rows=50)
        sources.append({"kind": "sqlite", "path": str(tmp_path / name), "service": name[0]})
    manifest = create_set(str(tmp_path / "b"), "h1", sources)
    for entry in manifest["files"]:
        copy = Path(manifest["path"]) / entry["file"]
        data = bytearray(copy.read_bytes())
        data[len(data) // 2] ^= 0xFF
        copy.write_bytes(bytes(data))
    outcome = verification_outcome([verify_set(manifest["path"])], changed=False)
    assert not outcome["ok"]
    failed = outcome["failed_checks"]
    assert len(failed) == 4  # per file: sha256, and the drill it was refused
    assert all(line.count(" failed: ") == 1 and "; " not in line for line in failed), failed
    assert {line.split(":")[0] for line in failed} == {
        f"{manifest['set']}/{e['file']}" for e in manifest["files"]
    }
    msg = outcome["msg"]
    assert "\n" not in msg and msg.startswith(
        f"backup verification failed: 4 check(s) in {manifest['set']}; first: "
    )
    assert msg.endswith("(and 3 more, see failed_checks)")
    good = verification_outcome([{"set": "S1", "ok": True, "checks": []}], changed=True)
    assert (good["msg"], good["failed_checks"], good["changed"]) == ("1 set(s) verified: S1", [], True)


def db_and_keystore_set(tmp_path: Path, keystore: Path) -> tuple[Path, dict]:
    """A 10-row chain.db and the keystore, backed up (encrypted) into one set: the restore tests' start."""
    db = tmp_path / "data" / "chain.db"
    make_db(db, rows=10)
    sources = [
        {"kind": "sqlite", "path": str(db), "service": "node"},
        {"kind": "files", "path": str(keystore), "service": "w"},
    ]
    return db, create_set(str(tmp_path / "b"), "h1", sources, key=KEY)


def test_restore_replaces_atomically_and_sets_stale_wal_aside(tmp_path: Path, keystore: Path) -> None:
    db, manifest = db_and_keystore_set(tmp_path, keystore)
    make_db(db, rows=90)  # diverge: 100 rows now, a -wal beside it
    (keystore / "wallet-1.json").write_text("tampered")
    (keystore / "new.json").write_text("{}")
    Path(str(db) + "-wal").write_bytes(b"stale wal that must not be replayed")
    restore_set(manifest["path"], [], key=KEY)
    conn = sqlite3.connect(db)
    assert conn.execute("SELECT count(*) FROM blocks").fetchone()[0] == 10
    assert conn.execute("PRAGMA integrity_check").fetchone()[0] == "ok"
    conn.close()
    assert (keystore / "wallet-1.json").read_bytes().find(PLANTED) > 0
    assert not (keystore / "new.json").exists()
    assert oct(keystore.stat().st_mode & 0o777) == "0o700"
    leftovers = [p.name for p in db.parent.iterdir() if "aitbc-restore" in p.name]
    assert leftovers == ["chain.db.aitbc-restore-aside"]  # the stale -wal, kept beside its database
    with pytest.raises(BackupError, match="not in set"):
        restore_set(manifest["path"], ["no-such-service"], key=KEY)


def test_stale_wal_and_shm_are_kept_aside_and_listed(tmp_path: Path) -> None:
    db = tmp_path / "data" / "chain.db"
    db.parent.mkdir()
    make_db(db, rows=10)
    manifest = create_set(str(tmp_path / "b"), "h1", [{"kind": "sqlite", "path": str(db), "service": "node"}])
    for suffix, data in (("-wal", b"stale wal"), ("-shm", b"stale shm")):
        Path(f"{db}{suffix}").write_bytes(data)
    first = restore_set(manifest["path"], [])
    assert [Path(p).name for p in first.set_aside] == ["chain.db-wal", "chain.db-shm"]
    folder = Path(first.set_aside[0]).parent
    assert folder.parent == db.parent / "chain.db.aitbc-restore-aside"
    assert folder.stat().st_mode & 0o777 == 0o700
    assert Path(first.set_aside[0]).read_bytes() == b"stale wal"
    assert not Path(f"{db}-wal").exists() and not Path(f"{db}-shm").exists()
    Path(f"{db}-wal").write_bytes(b"second")
    second = restore_set(manifest["path"], [])  # same second: a folder of its own, nothing overwritten
    assert Path(second.set_aside[0]).parent != folder and Path(second.set_aside[0]).read_bytes() == b"second"
    assert restore_set(manifest["path"], []).set_aside == []


def test_manifest_records_the_collection_version(tmp_path: Path) -> None:
    db = tmp_path / "a.db"
    make_db(db, rows=1)
    manifest = create_set(str(tmp_path / "b"), "h1", [{"kind": "sqlite", "path": str(db)}])
    assert manifest["tools"]["aitbc_ops"] == COLLECTION_VERSION
    assert json.loads((Path(manifest["path"]) / "manifest.json").read_text())["tools"]["aitbc_ops"]


def test_side_restore_puts_each_item_under_dest_at_its_path_and_leaves_live_data(
    tmp_path: Path, keystore: Path
) -> None:
    db = tmp_path / "data" / "chain.db"
    make_db(db, rows=10)
    sources = [
        {"kind": "sqlite", "path": str(db), "service": "node"},
        {"kind": "files", "path": str(keystore), "service": "w"},
    ]
    manifest = create_set(str(tmp_path / "b"), "h1", sources, key=KEY)
    make_db(db, rows=5)  # live data moves on
    live_db, live_wal = sha256_file(str(db)), Path(f"{db}-wal")
    live_wal.write_bytes(b"live wal")
    dest = tmp_path / "side" / "check"

    predicted = restore_diff(manifest["path"], [], key=KEY, dest=str(dest))
    side_db, side_keys = f"{dest}{db}", f"{dest}{keystore}"
    assert predicted.names() == [side_db, side_keys]
    assert predicted.diff()["before"][side_db] == {"exists": False}

    tracker = DifferenceTracker()
    done = restore_set(manifest["path"], [], key=KEY, tracker=tracker, dest=str(dest))
    assert [p["target"] for p in done.plan] == [side_db, side_keys]
    assert [p["source"] for p in done.plan] == [str(db), str(keystore)]
    assert tracker.diff() == predicted.diff()
    assert dest.stat().st_mode & 0o777 == 0o700
    conn = sqlite3.connect(side_db)
    assert conn.execute("SELECT count(*) FROM blocks").fetchone()[0] == 10
    conn.close()
    assert (Path(side_keys) / "wallet-1.json").read_bytes().find(PLANTED) > 0
    # Live data untouched: the database, its -wal, no aside folder.
    assert sha256_file(str(db)) == live_db and live_wal.read_bytes() == b"live wal"
    assert not [p for p in db.parent.iterdir() if "aitbc-restore" in p.name]
    assert existing_targets(done.plan) == [side_db, side_keys]  # a second run needs confirm (the module)


@pytest.mark.parametrize(
    "dest, message",
    [
        ("{data}", "is or holds the live target"),
        ("{tmp}", "is or holds the live target"),
        ("/", "is or holds the live target"),
        ("{data}/chain.db", "is or holds the live target"),
        ("{keys}/inner", "lies inside the live target"),
        ("relative/dir", "must be an absolute path"),
        ("{data}/chain.db-not-a-dir", "exists and is not a folder"),
    ],
)
def test_side_restore_refuses_a_dest_touching_live_data(
    tmp_path: Path, keystore: Path, dest: str, message: str
) -> None:
    db = tmp_path / "data" / "chain.db"
    make_db(db, rows=1)
    (tmp_path / "data" / "chain.db-not-a-dir").write_text("x")
    sources = [
        {"kind": "sqlite", "path": str(db), "service": "node"},
        {"kind": "files", "path": str(keystore), "service": "w"},
    ]
    manifest = create_set(str(tmp_path / "b"), "h1", sources, key=KEY)
    before = sha256_file(str(db))
    dest = dest.format(data=db.parent, tmp=tmp_path, keys=keystore)
    with pytest.raises(BackupError, match=message):
        restore_set(manifest["path"], [], key=KEY, dest=dest)
    assert sha256_file(str(db)) == before


def test_drill_scratch_dir_is_created_private_or_refused_in_one_line(tmp_path: Path) -> None:
    db = tmp_path / "a.db"
    make_db(db, rows=1)
    manifest = create_set(str(tmp_path / "b"), "h1", [{"kind": "sqlite", "path": str(db)}])
    scratch = tmp_path / "scratch"
    result = verify_set(manifest["path"], scratch_root=str(scratch))
    assert result["ok"] and scratch.stat().st_mode & 0o777 == 0o700 and not list(scratch.iterdir())
    with pytest.raises(BackupError, match=r"^scratch_dir .*/no/such: its parent folder .*/no does not exist"):
        verify_set(manifest["path"], scratch_root=str(tmp_path / "no" / "such"))
    (tmp_path / "file").write_text("x")
    with pytest.raises(BackupError, match="exists but is not a folder"):
        verify_set(manifest["path"], scratch_root=str(tmp_path / "file"))
    assert verify_set(manifest["path"], scratch_root=str(tmp_path / "no" / "such"), drill=False)["ok"]


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@pytest.fixture
def redis_server(tmp_path: Path):
    binary = shutil.which("redis-server")
    if not binary:
        pytest.skip("redis-server not installed (make setup installs it)")
    port = _free_port()
    folder = tmp_path / "redis"
    folder.mkdir()
    proc = subprocess.Popen(
        [
            binary,
            "--port",
            str(port),
            "--bind",
            "127.0.0.1",
            "--dir",
            str(folder),
            "--save",
            "",
            "--appendonly",
            "no",
        ],
        stdout=subprocess.DEVNULL,
    )
    try:
        deadline = time.monotonic() + 10
        while True:
            try:
                client = RedisClient("127.0.0.1", port)
                break
            except OSError:
                if time.monotonic() > deadline:
                    raise
                time.sleep(0.05)
        yield port, folder, client
        client.close()
    finally:
        proc.terminate()
        proc.wait(timeout=10)


def test_redis_bgsave_copy_and_rdb_check(tmp_path: Path, redis_server) -> None:
    port, folder, client = redis_server
    for i in range(200):
        client.call("SET", f"key:{i}", "v" * 50)
    manifest = create_set(str(tmp_path / "b"), "h1", [{"kind": "redis", "port": port, "service": "redis"}])
    entry = manifest["files"][0]
    assert entry["source"] == str(folder / "dump.rdb") and entry["redis_version"]
    result = verify_set(manifest["path"])
    assert result["ok"], result["checks"]
    copy = Path(manifest["path"]) / entry["file"]
    copy.write_bytes(copy.read_bytes()[:-20])
    ok, detail = check_rdb(str(copy))
    assert not ok and detail


def test_restore_diff_predicts_each_target_and_the_restore_records_it(tmp_path: Path, keystore: Path) -> None:
    db, manifest = db_and_keystore_set(tmp_path, keystore)
    entry = next(e for e in manifest["files"] if e["kind"] == "sqlite")
    make_db(db, rows=5)
    (keystore / "new.json").write_text("{}")
    before_db = {"exists": True, "type": "file", "size": db.stat().st_size, "sha256": sha256_file(db)}

    predicted = restore_diff(manifest["path"], [], key=KEY)
    assert predicted.changed and predicted.names() == [str(db), str(keystore)]
    diff = predicted.diff()
    assert diff["before"][str(db)] == before_db
    assert diff["after"][str(db)] == {
        "exists": True,
        "type": "file",
        "size": entry["size"],
        "sha256": entry["sha256"],
    }
    assert diff["before"][str(keystore)]["files"] == 3
    assert diff["after"][str(keystore)]["files"] == 2

    tracker = DifferenceTracker()
    restore_set(manifest["path"], [], key=KEY, tracker=tracker)
    assert tracker.diff() == diff  # what the restore did is what check mode predicted
    again = restore_diff(manifest["path"], ["node"], key=KEY)
    assert not again.changed and again.diff() == {"before": {}, "after": {}}


def test_restore_diff_of_a_missing_target_and_of_an_archive_without_its_key(
    tmp_path: Path, keystore: Path
) -> None:
    manifest = create_set(
        str(tmp_path / "b"), "h1", [{"kind": "files", "path": str(keystore), "service": "w"}], key=KEY
    )
    shutil.rmtree(keystore)
    diff = restore_diff(manifest["path"], ["w"]).diff()
    assert diff == {
        "before": {str(keystore): {"exists": False}},
        "after": {str(keystore): {"exists": True, "from": "w.keystore.tar.gz.vault"}},
    }


def test_prune_diff_lists_the_sets_before_and_after(tmp_path: Path) -> None:
    db = tmp_path / "a.db"
    make_db(db, rows=10)
    root = str(tmp_path / "b")
    base = dt.datetime(2026, 1, 1, tzinfo=dt.UTC)
    names = [
        create_set(root, "h1", [{"kind": "sqlite", "path": str(db)}], now=base + dt.timedelta(days=day))[
            "set"
        ]
        for day in range(4)
    ]
    (Path(root) / "h1" / ".partial-20260101T000000Z-1").mkdir()
    os.utime(Path(root) / "h1" / ".partial-20260101T000000Z-1", (0, 0))
    later = base + dt.timedelta(days=400)
    planned = DifferenceTracker()
    prune(root, "h1", keep_last=2, keep_days=0, check_mode=True, now=later, tracker=planned)
    expected = {
        "before": {"sets": names, "leftovers": [".partial-20260101T000000Z-1"]},
        "after": {"sets": names[2:], "leftovers": []},
    }
    assert planned.diff() == expected
    assert len(os.listdir(Path(root) / "h1")) == 5  # check mode deleted nothing
    done = DifferenceTracker()
    prune(root, "h1", keep_last=2, keep_days=0, now=later, tracker=done)
    assert done.diff() == expected
    quiet = DifferenceTracker()
    prune(root, "h1", keep_last=2, keep_days=0, now=later, tracker=quiet)
    assert not quiet.changed

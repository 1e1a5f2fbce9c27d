"""Fault: a corrupted backup set. One bit flips in a verified set on the host (in the middle of the SQLite
copy, or of the encrypted keystore archive). `opsrunner verify` fails and names the file, one incident
opens, and `opsrunner restore` of the set is refused before anything live is stopped or replaced.

A third case flips a bit in the keystore archive and rewrites the manifest and SHA256SUMS to agree, as a
tamperer (or a bug that re-hashed a damaged file) would: the checksums pass, and the restore drill, which
decrypts and unpacks the archive, is what refuses it.
"""

from __future__ import annotations

import json
import sqlite3
from pathlib import Path

import pytest
from faultlib import Site, flip_bit, sha256, web_site

from opsrunner.incidents import IncidentStore
from opsrunner.memory import MemoryStore

pytestmark = pytest.mark.integration

KEY = "fault-test-backup-key-3Rk9"  # stands in for the vaulted aitbc_backup_key
LEDGER = "web.ledger.db"
KEYSTORE = "web.keystore.tar.gz.vault"


def keyed_site(tmp_path: Path) -> Site:
    """One host whose `web` service keeps a SQLite ledger and a keystore folder (encrypted in sets)."""
    data = tmp_path / "app1" / "data"
    (data / "keystore").mkdir(parents=True)
    (data / "keystore" / "wallet.key.json").write_text(json.dumps({"address": "0xabc", "kdf": "scrypt"}))
    conn = sqlite3.connect(data / "ledger.db")
    conn.execute("CREATE TABLE ledger (id INTEGER PRIMARY KEY, memo TEXT NOT NULL)")
    conn.executemany("INSERT INTO ledger (memo) VALUES (?)", [("x" * 200,)] * 2000)
    conn.commit()
    conn.close()
    return web_site(
        tmp_path,
        ["app1"],
        extra={"aitbc_backup_store": str(tmp_path / "store"), "aitbc_backup_key": KEY},
        service={
            "databases": ["{{ aitbc_root }}/data/ledger.db"],
            "backup": [{"kind": "files", "path": "{{ aitbc_root }}/data/keystore"}],
        },
    )


def verified_set(site: Site) -> Path:
    taken = site.run("backup", "--json")
    assert taken.returncode == 0, taken.stdout + taken.stderr
    path = Path(json.loads(taken.stdout)["sets"]["app1"]["path"])
    manifest = json.loads((path / "manifest.json").read_text())
    assert manifest["verification"]["ok"] and manifest["verification"]["drill"], manifest
    assert sorted(f["file"] for f in manifest["files"]) == [KEYSTORE, LEDGER]
    return path


def rewrite_manifest(path: Path, name: str) -> None:
    """Make the manifest and SHA256SUMS agree with the file as it is now."""
    manifest = json.loads((path / "manifest.json").read_text())
    for entry in manifest["files"]:
        if entry["file"] == name:
            entry.update(sha256=sha256(path / name), size=(path / name).stat().st_size)
    (path / "manifest.json").write_text(json.dumps(manifest))
    (path / "SHA256SUMS").write_text("".join(f"{e['sha256']}  {e['file']}\n" for e in manifest["files"]))


def middle_digit(path: Path) -> int:
    """An offset near the middle holding an ASCII digit: flipping its low bit keeps the vault text hex."""
    data = path.read_bytes()
    return next(i for i in range(len(data) // 2, len(data)) if 0x30 <= data[i] <= 0x39)


def live_state(tmp_path: Path) -> tuple[str, str]:
    data = tmp_path / "app1" / "data"
    return sha256(data / "ledger.db"), sha256(data / "keystore" / "wallet.key.json")


@pytest.mark.parametrize(
    ("name", "agreeing_manifest", "expected"),
    [
        (LEDGER, False, f"{LEDGER}: sha256: sha256 mismatch"),
        (KEYSTORE, False, f"{KEYSTORE}: sha256: sha256 mismatch"),
        (KEYSTORE, True, f"{KEYSTORE}: drill: {KEYSTORE}: cannot decrypt"),
    ],
    ids=["sqlite", "keystore", "keystore-manifest-agrees"],
)
def test_a_flipped_bit_fails_verification_opens_one_incident_and_is_never_restored(
    tmp_path: Path, name: str, agreeing_manifest: bool, expected: str
) -> None:
    site = keyed_site(tmp_path)
    try:
        assert site.run("service", "start", "web").returncode == 0
        path = verified_set(site)
        damaged = path / name
        if agreeing_manifest:
            flip_bit(damaged, middle_digit(damaged))
            rewrite_manifest(path, name)
        else:
            flip_bit(damaged)

        done = site.run("verify", path.name, "--json")
        assert done.returncode == 1, done.stdout + done.stderr
        (row,) = json.loads(done.stdout)["verified"]
        assert not row["ok"] and any(f.startswith(expected) for f in row["failed"]), row
        assert not any(f.startswith(other) for f in row["failed"] for other in {LEDGER, KEYSTORE} - {name})
        store = IncidentStore(MemoryStore(site.memory))
        (incident,) = store.all()
        assert (incident.host, incident.service, incident.check, incident.status) == (
            "app1",
            "backup",
            "backup verify",
            "open",
        )
        assert name in incident.timeline[0].text

        before, pid = live_state(tmp_path), site.pid("app1")
        refused = site.run("restore", path.name, "--confirm", "--json")
        assert refused.returncode == 1, refused.stdout + refused.stderr
        outcome = json.loads(refused.stdout)
        assert outcome["restored"] == {}
        (failure,) = outcome["failures"]
        assert failure["task"] == "Verify the set before using it"
        assert "backup verification failed" in failure["message"] and name in failure["message"]
        assert live_state(tmp_path) == before, "live data changed by a refused restore"
        assert site.pid("app1") == pid, "the service was stopped or restarted by a refused restore"
        assert [i.id for i in store.all()] == [incident.id]  # noted on the same incident, not a second
        assert name in store.get(incident.id).timeline[-1].text
    finally:
        site.stop_all()


def test_a_refused_restore_records_nothing_as_restored(tmp_path: Path) -> None:
    """The restore role plans with the module in check mode: that plan is neither a restore in the run's
    details (nor the daily memory) nor a change in the host's stats."""
    site = keyed_site(tmp_path)
    try:
        path = verified_set(site)
        flip_bit(path / LEDGER)
        refused = site.run("restore", path.name, "--confirm", "--json")
        assert refused.returncode == 1, refused.stdout + refused.stderr
        outcome = json.loads(refused.stdout)
        assert outcome["restored"] == {}
        assert outcome["hosts"]["app1"]["changed"] == 0, outcome["hosts"]
        daily = "".join(p.read_text() for p in (site.memory / "daily").glob("*.md"))
        claim = "app1: restored "
        assert not any(claim in d for d in outcome["details"]), outcome["details"]
        assert claim not in daily, daily
    finally:
        site.stop_all()

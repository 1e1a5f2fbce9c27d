"""Fault: a backup taken while a writer commits without pause. `opsrunner backup` of a SQLite database in
WAL mode, under continuous committed writes by a process of the test's own; the writer is stopped, the set
restored into place with `opsrunner restore --confirm`. The restored database passes integrity_check and
holds every row committed before the set began.

What is guaranteed, exactly: the set's copy is SQLite's online backup in one step (one read transaction),
so it is the database as of one commit, the snapshot, taken after the set's recorded `created` time. The
product records `created` to the second, rounded down, and nothing later than the snapshot, so the test
checks: (1) every row whose commit returned before `created` is restored; (2) the restored rows are ids
1..N with no gap, each exactly as committed (one commit's state, not a mixture); (3) rows committed after
the snapshot are absent, which the writer going on during the run makes non-empty.
"""

from __future__ import annotations

import datetime as dt
import json
import signal
import sqlite3
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path

import pytest
from faultlib import web_site

pytestmark = pytest.mark.integration

PREFILL = 60_000  # rows of 300 bytes: about 20 MB, so the copy takes a while under the writer
MEMO = "m" * 280

# The writer: one row per transaction; after each COMMIT returns, "<id> <seq> <unix time>" goes to the side
# file. SIGTERM only sets a flag, so the last committed row is always recorded before it exits.
WRITER = """
import signal, sqlite3, sys, time
db, side = sys.argv[1], sys.argv[2]
stopping = []
signal.signal(signal.SIGTERM, lambda *_: stopping.append(1))
conn = sqlite3.connect(db, timeout=30, isolation_level=None)
seq = 0
with open(side, "a", buffering=1) as out:
    while not stopping:
        seq += 1
        conn.execute("BEGIN IMMEDIATE")
        row = conn.execute("INSERT INTO ledger (memo) VALUES (?)", (f"commit {seq}",)).lastrowid
        conn.execute("COMMIT")
        out.write(f"{row} {seq} {time.time():.6f}\\n")
conn.close()
"""


@dataclass
class Commit:
    row: int
    seq: int
    at: float


def commits(side: Path) -> list[Commit]:
    out = []
    for line in side.read_text().splitlines():
        row, seq, at = line.split()
        out.append(Commit(int(row), int(seq), float(at)))
    return out


def make_database(db: Path) -> None:
    db.parent.mkdir(parents=True, exist_ok=True)
    conn = sqlite3.connect(db)
    conn.execute("PRAGMA journal_mode=WAL")
    conn.execute("CREATE TABLE ledger (id INTEGER PRIMARY KEY, memo TEXT NOT NULL)")
    conn.executemany("INSERT INTO ledger (memo) VALUES (?)", [(MEMO,)] * PREFILL)
    conn.commit()
    conn.close()


def stop(writer: subprocess.Popen[bytes]) -> None:
    if writer.poll() is None:
        writer.send_signal(signal.SIGTERM)
        try:
            writer.wait(timeout=30)
        except subprocess.TimeoutExpired:
            writer.kill()
            writer.wait()


def test_a_backup_under_continuous_writes_restores_every_row_committed_before_it(tmp_path: Path) -> None:
    db = tmp_path / "app1" / "data" / "ledger.db"
    make_database(db)
    site = web_site(
        tmp_path,
        ["app1"],
        extra={"aitbc_backup_store": str(tmp_path / "store")},
        service={"databases": ["{{ aitbc_root }}/data/ledger.db"]},
    )
    side = tmp_path / "committed.txt"
    script = tmp_path / "writer.py"
    script.write_text(WRITER)
    writer = subprocess.Popen([sys.executable, str(script), str(db), str(side)])
    try:
        assert site.run("service", "start", "web").returncode == 0
        while not side.exists() or len(side.read_text().splitlines()) < 50:
            assert writer.poll() is None, "the writer died"
            time.sleep(0.05)
        called = time.time()
        taken = site.run("backup", "--json")
        returned = time.time()
        assert writer.poll() is None, "the writer died"
        stop(writer)
        assert writer.returncode == 0
        assert taken.returncode == 0, taken.stdout + taken.stderr
        path = Path(json.loads(taken.stdout)["sets"]["app1"]["path"])
        manifest = json.loads((path / "manifest.json").read_text())
        assert manifest["verification"]["ok"] and manifest["verification"]["drill"], manifest
        (entry,) = manifest["files"]
        assert entry["sqlite"]["journal_mode"] == "wal"
        created = dt.datetime.strptime(manifest["created"], "%Y-%m-%dT%H:%M:%SZ").replace(tzinfo=dt.UTC)

        done = commits(side)
        assert [c.seq for c in done] == list(range(1, len(done) + 1)), "the side file skipped a commit"
        during = [c for c in done if called <= c.at <= returned]
        assert len(during) > 10, "the writer must keep committing while the backup runs"

        refused = site.run("restore", path.name)
        assert refused.returncode == 2 and "without --confirm" in refused.stderr
        restored = site.run("restore", path.name, "--confirm", "--json")
        assert restored.returncode == 0, restored.stdout + restored.stderr
        outcome = json.loads(restored.stdout)
        assert outcome["restored"] == {"app1": [entry["file"]]}
        # Recorded once: the role's plan of the restore (check mode) is not a restore.
        claim = f"app1: restored {entry['file']} from {path}"
        recorded = [d for d in outcome["details"] if d.startswith("app1: restored ")]
        assert recorded == [claim], outcome["details"]
        daily = "".join(p.read_text() for p in (site.memory / "daily").glob("*.md"))
        assert daily.count("app1: restored ") == 1, daily

        conn = sqlite3.connect(f"file:{db}?mode=ro", uri=True)
        try:
            assert conn.execute("PRAGMA integrity_check").fetchone()[0] == "ok"
            rows = dict(conn.execute("SELECT id, memo FROM ledger ORDER BY id"))
        finally:
            conn.close()
        highest = max(rows)
        assert sorted(rows) == list(range(1, highest + 1)), "a gap: not one commit's state"
        assert all(rows[i] == MEMO for i in range(1, PREFILL + 1))
        by_row = {c.row: c for c in done}
        for row in range(PREFILL + 1, highest + 1):
            assert rows[row] == f"commit {by_row[row].seq}", f"row {row} differs from its commit"
        before = [c for c in done if c.at < created.timestamp()]
        assert before, "the writer committed before the set began"
        assert all(c.row in rows for c in before), "a row committed before the backup began was lost"
        after = [c for c in done if c.row > highest]
        assert after, "the writer went on after the snapshot, so the copy is a snapshot, not the end state"
        print(
            f"committed {len(done)} rows ({len(during)} during the backup run); restored up to "
            f"{highest - PREFILL}, {len(after)} committed after the snapshot"
        )
    finally:
        stop(writer)
        site.stop_all()

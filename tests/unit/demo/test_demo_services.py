"""The demo stand-ins (demo/aitbc_demo.py) run as real subprocesses on free ports, checked over real HTTP."""

from __future__ import annotations

import hashlib
import json
import os
import re
import shutil
import signal
import socket
import sqlite3
import stat
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Callable, Iterator
from contextlib import closing
from dataclasses import dataclass
from pathlib import Path

import pytest

DEMO = Path(__file__).resolve().parents[3] / "demo" / "aitbc_demo.py"
# Hosts run the file with /usr/bin/python3; -I (isolated) proves it needs nothing beyond the stdlib.
PYTHON = "/usr/bin/python3" if Path("/usr/bin/python3").exists() else sys.executable


@dataclass
class Reply:
    status: int
    body: str

    def json(self) -> dict:
        return json.loads(self.body)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def http(port: int, path: str, method: str = "GET", data: bytes | None = None) -> Reply:
    req = urllib.request.Request(f"http://127.0.0.1:{port}{path}", data=data, method=method)
    try:
        with urllib.request.urlopen(req, timeout=3) as resp:
            return Reply(resp.status, resp.read().decode())
    except urllib.error.HTTPError as err:
        return Reply(err.code, err.read().decode())


def run_demo(*args: str, cwd: Path | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [PYTHON, "-I", str(DEMO), *args], capture_output=True, text=True, timeout=10, cwd=cwd
    )


def wait_until(check: Callable[[], bool], what: str, timeout: float = 5.0) -> None:
    deadline = time.monotonic() + timeout
    while not check():
        if time.monotonic() > deadline:
            pytest.fail(f"timed out after {timeout} s waiting for {what}")
        time.sleep(0.05)


@dataclass
class Child:
    """A demo process started by a test, with the file its stdout/stderr go to (as on a host)."""

    proc: subprocess.Popen[bytes]
    log: Path
    port: int = 0  # set by Spawner.serve

    def log_text(self) -> str:
        return self.log.read_text()

    def terminate(self) -> int:
        os.kill(self.proc.pid, signal.SIGTERM)
        return self.proc.wait(timeout=5)


class Spawner:
    """Starts demo subprocesses and guarantees each one is killed (by PID) when the test ends."""

    def __init__(self, tmp: Path) -> None:
        self.tmp = tmp
        self.children: list[Child] = []

    def start(self, *args: str) -> Child:
        log = self.tmp / f"{args[0]}-{len(self.children)}.log"
        with log.open("wb") as out:  # the child keeps its own copy of the descriptor
            proc = subprocess.Popen([PYTHON, "-I", str(DEMO), *args], stdout=out, stderr=subprocess.STDOUT)
        child = Child(proc, log)
        self.children.append(child)
        wait_until(lambda: proc.poll() is not None or "started" in child.log_text(), f"{args[0]} start")
        assert proc.poll() is None, f"{args[0]} exited {proc.returncode}: {child.log_text()}"
        return child

    def serve(self, service: str, *args: str) -> Child:
        port = free_port()
        child = self.start(service, "--port", str(port), *args)
        child.port = port
        return child

    def kill_all(self) -> None:
        for child in self.children:
            if child.proc.poll() is None:
                os.kill(child.proc.pid, signal.SIGKILL)
                child.proc.wait(timeout=5)


@pytest.fixture
def spawner(tmp_path: Path) -> Iterator[Spawner]:
    sp = Spawner(tmp_path)
    try:
        yield sp
    finally:
        sp.kill_all()


def query(db: Path, sql: str, *params: object) -> list[tuple]:
    # closing(): sqlite3's own context manager only commits, and an unclosed connection keeps -wal/-shm.
    with closing(sqlite3.connect(db)) as conn, conn:
        return conn.execute(sql, params).fetchall()


def chain_rows(db: Path) -> list[tuple]:
    return query(db, "SELECT height, hash, parent_hash, timestamp, tx_count FROM blocks ORDER BY height")


# ---------------------------------------------------------------------------------------------- cli


def test_version_flag_and_constant() -> None:
    result = run_demo("--version")
    assert (result.returncode, result.stdout) == (0, "aitbc-demo 1\n")
    assert re.search(r'^VERSION = "1"$', DEMO.read_text(), re.M)


@pytest.mark.parametrize(
    "args",
    [
        [],
        ["bogus"],
        ["coordinator", "--db", "x.db"],
        ["coordinator", "--port", "http", "--db", "x.db"],
        ["coordinator", "--port", "70000", "--db", "x.db"],
        ["node", "--db", "c.db", "--chain-id", "x", "--interval", "soon"],
        ["node", "--db", "c.db", "--chain-id", "x", "--interval", "0"],
        ["rpc", "--port", "1", "--db", "c.db"],
        ["wallet", "--port", "1", "--db", "w.db"],
        ["genesis", "--db", "c.db"],
    ],
)
def test_malformed_args_exit_2(args: list[str], tmp_path: Path) -> None:
    result = run_demo(*args, cwd=tmp_path)
    assert result.returncode == 2
    assert "usage:" in result.stderr
    assert list(tmp_path.iterdir()) == []  # nothing created on bad input


def test_port_in_use_is_one_line_exit_1(spawner: Spawner, tmp_path: Path) -> None:
    first = spawner.serve("coordinator", "--db", str(tmp_path / "a" / "c.db"))
    result = run_demo("coordinator", "--port", str(first.port), "--db", str(tmp_path / "b" / "c.db"))
    assert result.returncode == 1
    assert result.stderr.count("\n") == 1 and "cannot listen" in result.stderr


# ------------------------------------------------------------------------------------------ coordinator


def test_coordinator_endpoints(spawner: Spawner, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("APP_ENV", "staging")
    db = tmp_path / "data" / "coordinator" / "coordinator.db"
    coord = spawner.serve("coordinator", "--db", str(db))
    port = coord.port
    assert query(db, "SELECT COUNT(*) FROM jobs") == [(0,)]  # created on start, parent dir included

    health = http(port, "/health")
    python = subprocess.run(
        [PYTHON, "-c", "import platform; print(platform.python_version())"], capture_output=True, text=True
    ).stdout.strip()
    assert (health.status, health.json()) == (
        200,
        {"status": "ok", "version": "1", "env": "staging", "python_version": python},
    )
    live, ready = http(port, "/health/live"), http(port, "/health/ready")
    assert (live.status, live.json()) == (200, {"status": "alive"})
    assert (ready.status, ready.json()) == (200, {"status": "ready"})

    assert http(port, "/v1/jobs").json() == {"count": 0}
    created = http(port, "/v1/jobs", "POST", b'{"model": "demo"}')
    assert (created.status, created.json()) == (201, {"id": 1})
    assert http(port, "/v1/jobs?page=1").json() == {"count": 1}  # query strings are ignored
    assert query(db, "SELECT payload FROM jobs") == [('{"model": "demo"}',)]

    for method, path in [("GET", "/nope"), ("POST", "/health"), ("GET", "/health/")]:
        missing = http(port, path, method, b"" if method == "POST" else None)
        assert missing.status == 404 and missing.json()["status"] == "error"

    assert coord.terminate() == 0
    log = coord.log_text()
    assert '"GET /health HTTP/1.1" 200' in log and '"POST /v1/jobs HTTP/1.1" 201' in log
    assert "env=staging" in log and log.rstrip().endswith("coordinator stopped")


def test_coordinator_env_defaults_to_demo(
    spawner: Spawner, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("APP_ENV", raising=False)
    coord = spawner.serve("coordinator", "--db", str(tmp_path / "c.db"))
    assert http(coord.port, "/health").json()["env"] == "demo"


@pytest.mark.parametrize("breakage", ["garbage", "deleted_dir"])
def test_coordinator_not_ready_when_db_broken(breakage: str, spawner: Spawner, tmp_path: Path) -> None:
    db = tmp_path / "coordinator" / "coordinator.db"
    port = spawner.serve("coordinator", "--db", str(db)).port
    assert http(port, "/health/ready").status == 200

    if breakage == "garbage":
        db.write_bytes(os.urandom(8192))  # we run as root, which ignores permission bits: corrupt instead
    else:
        shutil.rmtree(db.parent)

    ready = http(port, "/health/ready")
    assert ready.status == 503
    assert ready.json()["status"] == "not ready" and ready.json()["reason"].startswith("database: ")
    assert http(port, "/health/live").status == 200  # alive, just not ready
    assert http(port, "/health").status == 200
    assert http(port, "/v1/jobs").status == 503
    assert http(port, "/v1/jobs", "POST", b"{}").status == 503
    if breakage == "deleted_dir":
        assert not db.parent.exists()  # probing readiness must not recreate the DB


# ------------------------------------------------------------------------------------------------ chain


def test_node_appends_linked_blocks_and_rpc_follows(spawner: Spawner, tmp_path: Path) -> None:
    db = tmp_path / "chain" / "chain.db"
    node = spawner.start("node", "--db", str(db), "--chain-id", "ait-devnet", "--interval", "0.5")
    rpc = spawner.serve("rpc", "--db", str(db), "--chain-id", "ait-devnet")
    first = http(rpc.port, "/rpc/head").json()["height"]
    time.sleep(2.5)
    head = http(rpc.port, "/rpc/head")
    assert head.status == 200 and head.json()["chain_id"] == "ait-devnet"
    assert head.json()["height"] >= first + 3  # ~5 expected at 0.5 s; 3 leaves room for a loaded machine

    assert node.terminate() == 0
    rows = chain_rows(db)
    assert [r[0] for r in rows] == list(range(len(rows)))
    for (height, digest, parent, ts, txs), prev in zip(rows, [None, *rows[:-1]], strict=True):
        assert parent == (prev[1] if prev else "0" * 64)
        assert digest == hashlib.sha256(f"{parent}{height}{ts}".encode()).hexdigest()
        assert 0 <= txs <= 5
    assert query(db, "PRAGMA journal_mode") == [("wal",)]
    log_lines = node.log_text().splitlines()
    assert (
        sum("block height=" in line for line in log_lines) == len(rows) - 1
    )  # one line per non-genesis block
    assert log_lines[-1].endswith("node stopped")

    # A restart resumes the same chain rather than starting a new one.
    node = spawner.start("node", "--db", str(db), "--chain-id", "ait-devnet", "--interval", "0.1")
    wait_until(lambda: "block height=" in node.log_text(), "a block after restart")
    assert node.terminate() == 0
    resumed = chain_rows(db)
    assert resumed[: len(rows)] == rows and len(resumed) > len(rows)
    assert rpc.terminate() == 0


def test_node_stalls_while_the_flag_file_exists(spawner: Spawner, tmp_path: Path) -> None:
    """The drill for a stalled chain: the height stops, the process and the RPC's /health stay up."""
    db = tmp_path / "chain" / "chain.db"
    node = spawner.start("node", "--db", str(db), "--chain-id", "ait-devnet", "--interval", "0.1")
    rpc = spawner.serve("rpc", "--db", str(db), "--chain-id", "ait-devnet")
    height = lambda: http(rpc.port, "/rpc/head").json()["height"]  # noqa: E731
    wait_until(lambda: height() >= 2, "a growing chain")
    (db.parent / "stall").touch()
    wait_until(lambda: "stalled:" in node.log_text(), "the node to stall")
    stalled_at = height()
    time.sleep(0.6)  # six intervals
    assert height() == stalled_at and node.proc.poll() is None
    assert http(rpc.port, "/health").status == 200
    assert f"aitbc_chain_height {stalled_at}\n" in http(rpc.port, "/metrics").body
    (db.parent / "stall").unlink()
    wait_until(lambda: height() > stalled_at, "blocks again after the flag is removed")
    assert "resumed" in node.log_text()


def test_node_refuses_a_db_of_another_chain(tmp_path: Path) -> None:
    db = tmp_path / "chain.db"
    assert run_demo("genesis", "--db", str(db), "--chain-id", "ait-mainnet").returncode == 0
    result = run_demo("node", "--db", str(db), "--chain-id", "ait-devnet", "--interval", "0.1")
    assert result.returncode == 2 and "ait-mainnet" in result.stderr


def test_rpc_endpoints_on_a_genesis_chain(spawner: Spawner, tmp_path: Path) -> None:
    db = tmp_path / "chain.db"
    assert run_demo("genesis", "--db", str(db), "--chain-id", "ait-devnet").returncode == 0
    port = spawner.serve("rpc", "--db", str(db), "--chain-id", "ait-devnet").port

    health = http(port, "/health")
    assert (health.status, health.json()) == (200, {"status": "ok", "supported_chains": ["ait-devnet"]})
    head = http(port, "/rpc/head")
    assert head.status == 200
    assert head.json() == dict(
        zip(["height", "hash", "parent_hash", "timestamp", "tx_count"], chain_rows(db)[0], strict=True),
        chain_id="ait-devnet",
    )
    assert head.json()["height"] == 0 and head.json()["parent_hash"] == "0" * 64

    metrics = http(port, "/metrics")
    assert metrics.status == 200
    samples = dict(line.split() for line in metrics.body.splitlines() if not line.startswith("#"))
    assert samples == {"aitbc_rpc_requests_total": "3", "aitbc_chain_height": "0", "aitbc_blocks_total": "1"}
    assert "# TYPE aitbc_chain_height gauge" in metrics.body
    assert http(port, "/nope").status == 404
    assert "aitbc_rpc_requests_total 5\n" in http(port, "/metrics").body


def test_rpc_reports_error_when_chain_db_unreadable(spawner: Spawner, tmp_path: Path) -> None:
    db = tmp_path / "chain.db"
    port = spawner.serve("rpc", "--db", str(db), "--chain-id", "ait-devnet").port
    health = http(port, "/health")
    assert health.status == 503 and health.json()["status"] == "error"
    assert http(port, "/rpc/head").status == 503
    metrics = http(port, "/metrics")
    assert metrics.status == 503 and "aitbc_chain_height" not in metrics.body
    assert not db.exists()  # the RPC only reads; it never creates chain.db

    db.write_bytes(b"not a database" * 512)
    assert http(port, "/health").status == 503


def test_genesis_guards_and_force(tmp_path: Path) -> None:
    db = tmp_path / "devnet" / "chain.db"
    created = run_demo("genesis", "--db", str(db), "--chain-id", "ait-devnet")
    assert created.returncode == 0 and created.stdout.count("\n") == 1
    original = chain_rows(db)
    assert len(original) == 1 and original[0][0] == 0
    query(db, "INSERT INTO blocks VALUES (1, 'h1', ?, 't', 2)", original[0][1])  # as if the node ran

    refused = run_demo("genesis", "--db", str(db), "--chain-id", "ait-devnet")
    assert refused.returncode == 2
    assert refused.stderr.count("\n") == 1 and "--force" in refused.stderr
    assert len(chain_rows(db)) == 2  # untouched

    forced = run_demo("genesis", "--db", str(db), "--chain-id", "ait-devnet", "--force")
    assert forced.returncode == 0
    rows = chain_rows(db)
    assert len(rows) == 1 and rows[0][0] == 0 and rows[0] != original[0]
    assert query(db, "PRAGMA journal_mode") == [("wal",)]
    assert sorted(p.name for p in db.parent.iterdir()) == ["chain.db"]  # no temp or sidecar files left


# ----------------------------------------------------------------------------------------------- wallet


def test_wallet_creates_private_keystore_and_ledger(spawner: Spawner, tmp_path: Path) -> None:
    db = tmp_path / "wallet" / "wallet_ledger.db"
    keystore = tmp_path / "wallet" / "keystore"
    wallet = spawner.serve("wallet", "--db", str(db), "--keystore", str(keystore))

    health = http(wallet.port, "/health")
    assert (health.status, health.json()) == (200, {"status": "ok", "keystore": "1 keys"})
    assert stat.S_IMODE(keystore.stat().st_mode) == 0o700
    key_file = keystore / "demo.key.json"
    assert stat.S_IMODE(key_file.stat().st_mode) == 0o600
    key = json.loads(key_file.read_text())
    assert re.fullmatch(r"[0-9a-f]{64}", key["private_key"])
    assert query(db, "SELECT account, amount FROM ledger") == [(key["address"], 1000)]
    assert http(wallet.port, "/nope").status == 404
    assert wallet.terminate() == 0

    # A restart keeps the existing key: the daemon must never rotate what backups protect.
    wallet = spawner.serve("wallet", "--db", str(db), "--keystore", str(keystore))
    assert http(wallet.port, "/health").json()["keystore"] == "1 keys"
    assert json.loads(key_file.read_text()) == key

    db.write_bytes(b"garbage" * 1024)
    broken = http(wallet.port, "/health")
    assert broken.status == 503 and broken.json()["status"] == "error"


# ------------------------------------------------------------------------------------------------ sigterm


@pytest.mark.parametrize("service", ["coordinator", "rpc", "wallet", "node"])
def test_sigterm_exits_zero(service: str, spawner: Spawner, tmp_path: Path) -> None:
    db = str(tmp_path / "svc.db")
    extra = {
        "coordinator": [],
        "rpc": ["--chain-id", "x"],
        "wallet": ["--keystore", str(tmp_path / "ks")],
    }
    if service == "node":
        child = spawner.start("node", "--db", db, "--chain-id", "x", "--interval", "0.1")
    else:
        child = spawner.serve(service, "--db", db, *extra[service])
        http(child.port, "/health")
    started = time.monotonic()
    assert child.terminate() == 0
    assert time.monotonic() - started < 2
    assert "Traceback" not in child.log_text()
    assert child.log_text().rstrip().endswith(f"{service} stopped")

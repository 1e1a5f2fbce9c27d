"""Stand-ins for the AITBC services: coordinator API, blockchain node and RPC, wallet daemon.

Stdlib only: this single file is copied to hosts and run with /usr/bin/python3. Each stand-in serves the
same health endpoints and keeps the same SQLite files as the real service, so health checks, backups,
restores and deploys can be exercised anywhere.
"""

from __future__ import annotations

import argparse
import hashlib
import io
import json
import os
import platform
import random
import secrets
import signal
import sqlite3
import sys
import tarfile
import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import asdict, astuple, dataclass
from datetime import UTC, datetime
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from urllib.parse import urlsplit

VERSION = "1"
# A release built by `aitbc_demo.py release` carries release.json beside this file: its version, and for
# the deploy demo a deliberately broken build whose coordinator fails its health check.
RELEASE_FILE = Path(__file__).resolve().with_name("release.json")
STOP_SIGNALS = {signal.SIGTERM, signal.SIGINT}
GENESIS_PARENT = "0" * 64
# The node's stall switch: a file of this name in chain.db's folder (see stall_flag).
STALL_FLAG = "stall"
CHAIN_SCHEMA = """
CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS blocks (
    height INTEGER PRIMARY KEY, hash TEXT NOT NULL UNIQUE, parent_hash TEXT NOT NULL,
    timestamp TEXT NOT NULL, tx_count INTEGER NOT NULL);
"""

METRIC_TYPES = {
    "aitbc_rpc_requests_total": "counter",
    "aitbc_chain_height": "gauge",
    "aitbc_blocks_total": "counter",
}

_log_lock = threading.Lock()


def log(service: str, message: str) -> None:
    """One whole line per call: the log file is the stdout redirect, and request threads write at once."""
    line = f"{now_iso()} {service} {message}\n"
    with _log_lock:
        sys.stdout.write(line)
        sys.stdout.flush()


def now_iso() -> str:
    return datetime.now(UTC).isoformat(timespec="milliseconds")


def create_db(path: Path, table_ddl: str) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    with connect(path, "rwc") as conn:
        conn.execute(f"CREATE TABLE IF NOT EXISTS {table_ddl}")


@contextmanager
def connect(path: Path, mode: str = "rw") -> Iterator[sqlite3.Connection]:
    """A fresh connection that commits on success and is always closed.

    mode=rw/ro never creates a missing file, so a deleted DB reads as an error instead of an empty one.
    """
    conn = sqlite3.connect(path.resolve().as_uri() + f"?mode={mode}", uri=True, timeout=5)
    try:
        with conn:
            yield conn
    finally:
        conn.close()


@dataclass(frozen=True)
class Block:
    height: int
    hash: str
    parent_hash: str
    timestamp: str
    tx_count: int

    @classmethod
    def next_after(cls, parent: Block | None) -> Block:
        height = 0 if parent is None else parent.height + 1
        parent_hash = GENESIS_PARENT if parent is None else parent.hash
        timestamp = now_iso()
        digest = hashlib.sha256(f"{parent_hash}{height}{timestamp}".encode()).hexdigest()
        tx_count = 0 if parent is None else random.randint(0, 5)
        return cls(height, digest, parent_hash, timestamp, tx_count)


def head_block(conn: sqlite3.Connection) -> Block | None:
    row = conn.execute(
        "SELECT height, hash, parent_hash, timestamp, tx_count FROM blocks ORDER BY height DESC LIMIT 1"
    ).fetchone()
    return Block(*row) if row else None


def insert_block(conn: sqlite3.Connection, block: Block) -> None:
    conn.execute("INSERT INTO blocks VALUES (?, ?, ?, ?, ?)", astuple(block))


def init_chain(path: Path, chain_id: str) -> tuple[str, Block]:
    """Create the schema and, if empty, the genesis block; return the stored chain id and the head.

    WAL mode (persistent in the file) lets the RPC read while the node writes.
    """
    path.parent.mkdir(parents=True, exist_ok=True)
    with connect(path, "rwc") as conn:
        conn.execute("PRAGMA journal_mode=WAL")
        conn.executescript(CHAIN_SCHEMA)
        conn.execute("INSERT OR IGNORE INTO meta VALUES ('chain_id', ?)", (chain_id,))
        if (head := head_block(conn)) is None:
            head = Block.next_after(None)
            insert_block(conn, head)
        (stored_id,) = conn.execute("SELECT value FROM meta WHERE key = 'chain_id'").fetchone()
    return stored_id, head


def append_block(conn: sqlite3.Connection) -> Block:
    # BEGIN IMMEDIATE takes the write lock before reading the head, so the new height cannot collide.
    conn.execute("BEGIN IMMEDIATE")
    try:
        block = Block.next_after(head_block(conn))
        insert_block(conn, block)
        conn.execute("COMMIT")
    except BaseException:
        if conn.in_transaction:  # BEGIN itself may have failed (locked), leaving nothing to roll back
            conn.execute("ROLLBACK")
        raise
    return block


def stall_flag(db: Path) -> Path:
    """While this file exists beside chain.db, the node adds no blocks (a stalled chain, for drills): the
    process stays up and the RPC keeps answering /health, only the height stops growing."""
    return db.parent / STALL_FLAG


def run_node(args: argparse.Namespace) -> int:
    db = Path(args.db)
    stored_id, head = init_chain(db, args.chain_id)
    if stored_id != args.chain_id:
        print(f"aitbc-demo node: {db} belongs to chain {stored_id!r}, not {args.chain_id!r}", file=sys.stderr)
        return 2
    conn = sqlite3.connect(db, timeout=5, isolation_level=None)  # explicit transactions below
    log("node", f"started chain={args.chain_id} db={db} head={head.height} pid={os.getpid()}")
    flag, stalled = stall_flag(db), False
    try:
        # sigtimedwait is both the block timer and the stop switch.
        while signal.sigtimedwait(STOP_SIGNALS, args.interval) is None:
            if flag.exists() != stalled:
                stalled = not stalled
                log("node", f"stalled: {flag} exists, no new blocks" if stalled else "resumed")
            if stalled:
                continue
            block = append_block(conn)
            log("node", f"block height={block.height} hash={block.hash[:16]} txs={block.tx_count}")
    finally:
        conn.close()
    log("node", "stopped")
    return 0


def remove_sidecars(db: Path) -> None:
    for suffix in ("-wal", "-shm", "-journal"):
        Path(f"{db}{suffix}").unlink(missing_ok=True)


def run_genesis(args: argparse.Namespace) -> int:
    db = Path(args.db)
    if db.exists() and not args.force:
        print(f"aitbc-demo genesis: {db} already exists; pass --force to replace it", file=sys.stderr)
        return 2
    # Build next to the target and rename over it, so an interrupted reset never leaves half a chain.
    tmp = db.with_name(f".{db.name}.genesis-{os.getpid()}")
    try:
        genesis = init_chain(tmp, args.chain_id)[1]
        remove_sidecars(db)  # stale WAL pages would replay onto the new file
        os.replace(tmp, db)
    finally:
        tmp.unlink(missing_ok=True)
        remove_sidecars(tmp)
    print(f"aitbc-demo genesis: {db} reset to chain {args.chain_id}, genesis {genesis.hash}")
    return 0


@dataclass(frozen=True)
class Reply:
    status: int
    body: bytes
    content_type: str = "application/json"

    @classmethod
    def json(cls, status: int, payload: object) -> Reply:
        return cls(status, json.dumps(payload).encode() + b"\n")


Route = Callable[[bytes], Reply]


class App:
    """A stand-in service: a name for the log and a (method, path) -> handler table."""

    name = "app"

    def routes(self) -> dict[tuple[str, str], Route]:
        raise NotImplementedError

    def handle(self, method: str, path: str, body: bytes) -> Reply:
        route = self.routes().get((method, path))
        if route is None:
            return Reply.json(404, {"status": "error", "detail": f"no route {method} {path}"})
        try:
            return route(body)
        except (sqlite3.Error, OSError) as exc:  # a broken data file makes the service unhealthy, not dead
            return Reply.json(503, {"status": "error", "detail": f"{type(exc).__name__}: {exc}"})


class Handler(BaseHTTPRequestHandler):
    server: DemoServer
    protocol_version = "HTTP/1.1"

    def do_GET(self) -> None:
        self._dispatch("GET")

    def do_POST(self) -> None:
        self._dispatch("POST")

    def _dispatch(self, method: str) -> None:
        try:
            length = int(self.headers.get("Content-Length") or 0)
        except ValueError:
            length = 0
        body = self.rfile.read(length) if length > 0 else b""
        try:
            reply = self.server.app.handle(method, urlsplit(self.path).path, body)
        except Exception as exc:  # a stand-in must answer, not drop the connection
            reply = Reply.json(500, {"status": "error", "detail": f"{type(exc).__name__}: {exc}"})
        self.send_response(reply.status)
        self.send_header("Content-Type", reply.content_type)
        self.send_header("Content-Length", str(len(reply.body)))
        self.end_headers()
        self.wfile.write(reply.body)

    def log_message(self, format: str, *args: object) -> None:
        log(self.server.app.name, f"{self.client_address[0]} {format % args}")


class DemoServer(ThreadingHTTPServer):
    allow_reuse_address = True
    daemon_threads = True  # a stuck client must not hold up shutdown

    def __init__(self, address: tuple[str, int], app: App) -> None:
        self.app = app
        super().__init__(address, Handler)


def serve(app: App, bind: str, port: int) -> int:
    try:
        server = DemoServer((bind, port), app)
    except OSError as exc:
        print(f"aitbc-demo {app.name}: cannot listen on {bind}:{port}: {exc.strerror}", file=sys.stderr)
        return 1
    worker = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.1}, daemon=True)
    worker.start()
    log(app.name, f"started, listening on http://{bind}:{port} env={app_env()} pid={os.getpid()}")
    signum = signal.sigwait(STOP_SIGNALS)
    log(app.name, f"received {signal.Signals(signum).name}, shutting down")
    server.shutdown()
    server.server_close()
    worker.join(timeout=5)
    log(app.name, "stopped")
    return 0


def block_stop_signals() -> None:
    """Hold SIGTERM/SIGINT for sigwait in the main thread, so shutdown never races a signal handler.

    Python handlers run between bytecodes of the main thread and can fire while it holds a lock that
    server.shutdown() or Event.set() needs; collecting the signal synchronously avoids that deadlock.
    Threads inherit the mask, so this must run before the server thread starts.
    """
    signal.pthread_sigmask(signal.SIG_BLOCK, STOP_SIGNALS)


def app_env() -> str:
    return os.environ.get("APP_ENV", "demo")


def release_info() -> dict[str, object]:
    try:
        info = json.loads(RELEASE_FILE.read_text())
    except (OSError, ValueError):
        info = {}
    return {"version": str(info.get("version", VERSION)), "broken": bool(info.get("broken", False))}


class Coordinator(App):
    name = "coordinator"

    def __init__(self, db: Path) -> None:
        self.db = db
        self.release = release_info()
        create_db(db, "jobs (id INTEGER PRIMARY KEY, payload TEXT NOT NULL, created_at TEXT NOT NULL)")

    def routes(self) -> dict[tuple[str, str], Route]:
        return {
            ("GET", "/health"): self.health,
            ("GET", "/health/live"): lambda _: Reply.json(200, {"status": "alive"}),
            ("GET", "/health/ready"): self.ready,
            ("GET", "/v1/jobs"): self.count_jobs,
            ("POST", "/v1/jobs"): self.create_job,
        }

    def health(self, _body: bytes) -> Reply:
        version = self.release["version"]
        if self.release["broken"]:
            return Reply.json(500, {"status": "error", "version": version, "detail": "broken release (demo)"})
        return Reply.json(
            200,
            {
                "status": "ok",
                "version": version,
                "env": app_env(),
                "python_version": platform.python_version(),
            },
        )

    def ready(self, _body: bytes) -> Reply:
        try:  # a fresh connection each time: a cached one would hide a deleted or replaced file
            with connect(self.db) as conn:
                conn.execute("SELECT 1 FROM jobs LIMIT 1").fetchall()
        except sqlite3.Error as exc:
            return Reply.json(503, {"status": "not ready", "reason": f"database: {exc}"})
        return Reply.json(200, {"status": "ready"})

    def count_jobs(self, _body: bytes) -> Reply:
        with connect(self.db) as conn:
            (count,) = conn.execute("SELECT COUNT(*) FROM jobs").fetchone()
        return Reply.json(200, {"count": count})

    def create_job(self, body: bytes) -> Reply:
        with connect(self.db) as conn:
            cur = conn.execute(
                "INSERT INTO jobs (payload, created_at) VALUES (?, ?)",
                (body.decode(errors="replace") or "{}", now_iso()),
            )
        return Reply.json(201, {"id": cur.lastrowid})


class Rpc(App):
    name = "rpc"

    def __init__(self, db: Path, chain_id: str) -> None:
        self.db = db
        self.chain_id = chain_id
        self.requests = 0
        self._lock = threading.Lock()

    def handle(self, method: str, path: str, body: bytes) -> Reply:
        with self._lock:
            self.requests += 1
        return super().handle(method, path, body)

    def routes(self) -> dict[tuple[str, str], Route]:
        return {
            ("GET", "/health"): self.health,
            ("GET", "/metrics"): self.metrics,
            ("GET", "/rpc/head"): self.head,
        }

    def chain_stats(self) -> tuple[Block, int]:
        """Read-only, so the RPC never creates or locks chain.db; the node owns it."""
        with connect(self.db, "ro") as conn:
            block = head_block(conn)
            (total,) = conn.execute("SELECT COUNT(*) FROM blocks").fetchone()
        if block is None:
            raise sqlite3.DatabaseError("chain has no blocks")
        return block, total

    def health(self, _body: bytes) -> Reply:
        self.chain_stats()  # raises -> 503 in App.handle
        return Reply.json(200, {"status": "ok", "supported_chains": [self.chain_id]})

    def metrics(self, _body: bytes) -> Reply:
        samples = {"aitbc_rpc_requests_total": self.requests}
        status = 200
        try:
            block, total = self.chain_stats()
            samples |= {"aitbc_chain_height": block.height, "aitbc_blocks_total": total}
        except sqlite3.Error:
            status = 503  # chain samples left out rather than reported as 0: a scrape must not fake a reset
        text = "".join(
            f"# TYPE {name} {METRIC_TYPES[name]}\n{name} {value}\n" for name, value in samples.items()
        )
        return Reply(status, text.encode(), "text/plain; version=0.0.4")

    def head(self, _body: bytes) -> Reply:
        block, _total = self.chain_stats()
        return Reply.json(200, {"chain_id": self.chain_id, **asdict(block)})


class Wallet(App):
    name = "wallet"

    def __init__(self, db: Path, keystore: Path) -> None:
        self.db = db
        self.keystore = keystore
        create_db(
            db, "ledger (id INTEGER PRIMARY KEY, account TEXT, amount INTEGER, memo TEXT, created_at TEXT)"
        )
        keystore.mkdir(parents=True, exist_ok=True)
        keystore.chmod(0o700)  # mkdir's mode is masked by umask; keys must stay private regardless
        if not self.key_files():
            self.write_demo_key()

    def key_files(self) -> list[Path]:
        return sorted(self.keystore.glob("*.json"))

    def write_demo_key(self) -> None:
        private_key = secrets.token_hex(32)
        address = "ait1" + hashlib.sha256(private_key.encode()).hexdigest()[:38]
        key = {"address": address, "private_key": private_key, "created_at": now_iso()}
        # O_EXCL + 0600 at creation: the key is never readable by others, not even briefly.
        fd = os.open(self.keystore / "demo.key.json", os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        with os.fdopen(fd, "w") as fh:
            json.dump(key, fh)
        with connect(self.db) as conn:  # fund the demo account so the ledger has a row to back up
            conn.execute(
                "INSERT INTO ledger (account, amount, memo, created_at) VALUES (?, 1000, 'demo faucet', ?)",
                (address, now_iso()),
            )

    def routes(self) -> dict[tuple[str, str], Route]:
        return {("GET", "/health"): self.health}

    def health(self, _body: bytes) -> Reply:
        with connect(self.db) as conn:
            conn.execute("SELECT 1 FROM ledger LIMIT 1").fetchall()
        return Reply.json(200, {"status": "ok", "keystore": f"{len(self.key_files())} keys"})


def port_number(text: str) -> int:
    if not (text.isdigit() and 1 <= int(text) <= 65535):
        raise argparse.ArgumentTypeError(f"not a TCP port: {text!r}")
    return int(text)


def interval(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        value = 0.0
    if not 0 < value <= 3600:  # also rejects nan, which sigtimedwait would choke on
        raise argparse.ArgumentTypeError(f"not an interval in seconds (0-3600]: {text!r}")
    return value


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="aitbc-demo", description="Stand-ins for the AITBC services.")
    parser.add_argument("--version", action="version", version=f"aitbc-demo {VERSION}")
    sub = parser.add_subparsers(dest="command", required=True)

    def server(name: str, help_text: str) -> argparse.ArgumentParser:
        p = sub.add_parser(name, help=help_text)
        p.add_argument("--port", type=port_number, required=True)
        p.add_argument("--bind", default="127.0.0.1")
        p.add_argument("--db", required=True)
        return p

    server("coordinator", "coordinator API (/health, /health/live, /health/ready, /v1/jobs)")
    server("rpc", "blockchain RPC (/health, /metrics, /rpc/head)").add_argument("--chain-id", required=True)
    server("wallet", "wallet daemon (/health)").add_argument("--keystore", required=True)

    node = sub.add_parser(
        "node",
        help="blockchain node: appends a block to chain.db every interval",
        description="Appends a block to chain.db every interval. While a file named "
        f"'{STALL_FLAG}' exists in chain.db's folder the chain stalls: no new blocks, the process and the "
        f"RPC's /health stay up (touch DIR/{STALL_FLAG} to stall, remove it to resume).",
    )
    node.add_argument("--db", required=True)
    node.add_argument("--chain-id", required=True)
    node.add_argument("--interval", type=interval, default=2.0)

    genesis = sub.add_parser("genesis", help="(re)create chain.db holding only a genesis block")
    genesis.add_argument("--db", required=True)
    genesis.add_argument("--chain-id", required=True)
    genesis.add_argument("--force", action="store_true", help="replace an existing chain.db")

    release = sub.add_parser("release", help="pack this program as a release tarball (for deploy demos)")
    release.add_argument("--version", dest="release_version", required=True)
    release.add_argument("--out", required=True, help="the .tar.gz to write")
    release.add_argument("--broken", action="store_true", help="a build whose coordinator fails /health")

    migrate = sub.add_parser("migrate", help="apply the coordinator schema migration of a release")
    migrate.add_argument("--db", required=True)
    migrate.add_argument("--to-version", required=True)
    return parser


def run_release(args: argparse.Namespace) -> int:
    """A tarball holding aitbc-demo-<version>/{aitbc_demo.py,release.json}."""
    top = f"aitbc-demo-{args.release_version}"
    info = {"version": args.release_version, "broken": args.broken}
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    with tarfile.open(out, "w:gz") as archive:
        archive.add(Path(__file__).resolve(), arcname=f"{top}/aitbc_demo.py")
        payload = json.dumps(info).encode()
        member = tarfile.TarInfo(f"{top}/release.json")
        member.size, member.mode, member.mtime = len(payload), 0o644, int(datetime.now(UTC).timestamp())
        archive.addfile(member, io.BytesIO(payload))
    print(f"aitbc-demo release {args.release_version}{' (broken)' if args.broken else ''}: {out}")
    return 0


def run_migrate(args: argparse.Namespace) -> int:
    """Record the release's schema version; idempotent (the same version twice changes nothing)."""
    with connect(Path(args.db)) as conn:
        conn.execute(
            "CREATE TABLE IF NOT EXISTS schema_migrations (version TEXT PRIMARY KEY, applied_at TEXT)"
        )
        cur = conn.execute(
            "INSERT OR IGNORE INTO schema_migrations VALUES (?, ?)", (args.to_version, now_iso())
        )
    print(f"aitbc-demo migrate: {args.db} at {args.to_version} ({'applied' if cur.rowcount else 'already'})")
    return 0


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    one_shot = {"genesis": run_genesis, "release": run_release, "migrate": run_migrate}
    if args.command not in one_shot:  # long-running: first thing, so even a SIGTERM during startup exits 0
        block_stop_signals()
    try:
        if args.command == "node":
            return run_node(args)
        if args.command in one_shot:
            return one_shot[args.command](args)
        if args.command == "coordinator":
            return serve(Coordinator(Path(args.db)), args.bind, args.port)
        if args.command == "rpc":
            return serve(Rpc(Path(args.db), args.chain_id), args.bind, args.port)
        return serve(Wallet(Path(args.db), Path(args.keystore)), args.bind, args.port)
    except (sqlite3.Error, OSError) as exc:
        print(f"aitbc-demo {args.command}: {exc}", file=sys.stderr)
        return 1


if __name__ == "__main__":
    sys.exit(main())

"""plugins/module_utils/probes/ against real local servers: http.server, TLS, raw TCP, fake RESP servers, real
processes and the real /proc, statvfs and load average. Pure functions are in test_probes_units.py."""

from __future__ import annotations

import datetime
import http.server
import json
import os
import shutil
import socket
import ssl
import subprocess
import sys
import threading
import time
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path
from urllib.parse import parse_qs, urlsplit

import pytest
from ansible_collections.aitbc.ops.plugins.module_utils.probes import host as host_probes
from ansible_collections.aitbc.ops.plugins.module_utils.probes.base import Probe, ProbeConfigError
from ansible_collections.aitbc.ops.plugins.module_utils.probes.host import (
    check_load,
    group_by_filesystem,
    nearest_existing,
)
from ansible_collections.aitbc.ops.plugins.module_utils.probes.http import BODY_LIMIT, cert_not_after
from ansible_collections.aitbc.ops.plugins.module_utils.probes.registry import (
    DEADLINE_GRACE,
    build_probes,
    check_health,
    run_probes,
)

# The folder holding ansible_collections/, for a child python that imports the probes.
COLLECTIONS = str(Path(host_probes.__file__).parents[6])

HEALTH_DOC = {
    "status": "ok",
    "supported_chains": ["ait-devnet", "ait-testnet"],
    "height": 42,
    "ready": True,
    "peers": None,
    "version": "1.4.2",
    "node": {"sync": {"behind": 0, "mode": "full"}},
    "validators": [{"name": "v1", "power": 10}, {"name": "v2", "power": 0}],
}


def health(results: list[dict], name: str) -> dict:
    return next(r for r in results if r["name"] == name)


def run_one(spec: dict) -> dict:
    return check_health([spec])["results"][0]


# --------------------------------------------------------------------------------------------- servers


class Handler(http.server.BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"

    def log_message(self, *args: object) -> None:  # keep pytest output clean
        pass

    def _send(self, status: int, body: bytes, ctype: str = "application/json") -> None:
        self.send_response(status)
        self.send_header("Content-Type", ctype)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        if self.command != "HEAD":
            self.wfile.write(body)

    def _json(self, status: int, doc: object) -> None:
        self._send(status, json.dumps(doc).encode())

    def do_GET(self) -> None:  # noqa: N802 - http.server naming
        url = urlsplit(self.path)
        query = {k: v[0] for k, v in parse_qs(url.query).items()}
        try:
            if url.path == "/health":
                self._json(200, HEALTH_DOC)
            elif url.path == "/down":
                self._json(503, {"status": "down"})
            elif url.path == "/degraded":
                self._json(200, {**HEALTH_DOC, "status": "down", "height": 0})
            elif url.path == "/slow":
                time.sleep(float(query.get("s", "3")))
                self._json(200, HEALTH_DOC)
            elif url.path == "/text":
                self._send(200, b"hello world, all systems nominal", "text/plain")
            elif url.path == "/notjson":
                self._send(200, b"<html>ok</html>", "text/html")
            elif url.path == "/big":
                self._send(200, b"[" + b"1," * (BODY_LIMIT) + b"1]")
            elif url.path == "/echo":
                self._json(200, {"method": self.command, "headers": dict(self.headers.items())})
            elif url.path == "/trickle":
                # Headers at once, then one byte every 0.2 s: each read is quick, the whole is not.
                self.send_response(200)
                self.send_header("Content-Length", "50")
                self.end_headers()
                for _chunk in range(50):
                    self.wfile.write(b"x")
                    self.wfile.flush()
                    time.sleep(0.2)
            elif url.path == "/trickle-headers":
                # A status line, then one header byte every 0.2 s: http.client reads headers by lines.
                self.wfile.write(b"HTTP/1.1 200 OK\r\n")
                for _chunk in range(50):
                    self.wfile.write(b"X")
                    self.wfile.flush()
                    time.sleep(0.2)
            else:
                self._json(404, {"error": "not found"})
        except (BrokenPipeError, ConnectionResetError, ssl.SSLError):
            pass  # the probe gave up first, as it should

    do_POST = do_GET  # noqa: N815
    do_HEAD = do_GET  # noqa: N815


class QuietServer(http.server.ThreadingHTTPServer):
    daemon_threads = True

    def handle_error(self, request: object, client_address: object) -> None:
        pass


def serve(server: QuietServer) -> Iterator[QuietServer]:
    thread = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)
    thread.start()
    try:
        yield server
    finally:
        server.shutdown()
        server.server_close()


@pytest.fixture(scope="module")
def web() -> Iterator[str]:
    """Base URL of a real HTTP server on a free loopback port."""
    for server in serve(QuietServer(("127.0.0.1", 0), Handler)):
        yield f"http://127.0.0.1:{server.server_address[1]}"


@pytest.fixture(scope="module")
def certs(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """A self-signed certificate for localhost/127.0.0.1 valid 365 days, and one valid until after 2050
    (GeneralizedTime rather than UTCTime in the DER)."""
    if shutil.which("openssl") is None:
        pytest.skip("openssl is needed to make test certificates")
    out = tmp_path_factory.mktemp("certs")
    made = {}
    for label, days in (("short", 365), ("long", 12000)):
        cert, key = out / f"{label}.pem", out / f"{label}.key"
        subprocess.run(
            ["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", str(days),
             "-subj", "/CN=localhost", "-addext", "subjectAltName=DNS:localhost,IP:127.0.0.1",
             "-keyout", str(key), "-out", str(cert)],
            check=True, capture_output=True,
        )  # fmt: skip
        made[label], made[f"{label}_key"] = cert, key
    return made


@pytest.fixture(scope="module")
def tls_web(certs: dict[str, Path]) -> Iterator[str]:
    """Base URL (https, host name localhost) of a real TLS HTTP server with the 365-day certificate."""
    server = QuietServer(("127.0.0.1", 0), Handler)
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.load_cert_chain(certs["short"], certs["short_key"])
    server.socket = context.wrap_socket(server.socket, server_side=True)
    for running in serve(server):
        yield f"https://localhost:{running.server_address[1]}"


class LineServer:
    """A tiny TCP server thread: ``reply(command) -> bytes | None`` answers each RESP command
    (None: say nothing)."""

    def __init__(self, reply: Callable[[bytes], bytes | None]) -> None:
        self.reply = reply
        self.sock = socket.create_server(("127.0.0.1", 0))
        self.port = self.sock.getsockname()[1]
        self.received: list[bytes] = []
        self._stop = threading.Event()
        threading.Thread(target=self._accept, daemon=True).start()

    def _accept(self) -> None:
        while not self._stop.is_set():
            try:
                conn, _address = self.sock.accept()
            except OSError:
                return
            threading.Thread(target=self._serve, args=(conn,), daemon=True).start()

    def _serve(self, conn: socket.socket) -> None:
        buf = b""
        with conn:
            while not self._stop.is_set():
                try:
                    chunk = conn.recv(4096)
                except OSError:
                    return
                if not chunk:
                    return
                buf += chunk
                for command in resp_commands(buf):
                    self.received.append(command)
                    answer = self.reply(command)
                    if answer is not None:
                        conn.sendall(answer)
                buf = b""

    def close(self) -> None:
        self._stop.set()
        self.sock.close()


def resp_commands(raw: bytes) -> list[bytes]:
    """RESP arrays of bulk strings -> commands as b'WORD ARG ...' (enough for AUTH and PING)."""
    commands, lines = [], raw.split(b"\r\n")
    i = 0
    while i < len(lines) and lines[i].startswith(b"*"):
        count = int(lines[i][1:])
        words = [lines[i + 2 + 2 * n] for n in range(count)]
        commands.append(b" ".join(words))
        i += 1 + 2 * count
    return commands


@pytest.fixture
def line_server() -> Iterator[Callable[[Callable[[bytes], bytes | None]], LineServer]]:
    servers: list[LineServer] = []

    def start(reply: Callable[[bytes], bytes | None]) -> LineServer:
        servers.append(LineServer(reply))
        return servers[-1]

    yield start
    for server in servers:
        server.close()


def closed_port() -> int:
    """A loopback port with nothing listening (bound, then released)."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


# ------------------------------------------------------------------------------------------------ http


def test_http_200_with_json_conditions(web: str) -> None:
    result = run_one(
        {"type": "http", "url": f"{web}/health", "service": "coordinator",
         "json": ["status == ok", "supported_chains contains ait-devnet", "height > 0"]}
    )  # fmt: skip
    assert result["ok"] is True, result
    assert result["name"] == f"http:{web}/health"
    assert result["type"] == "http" and result["service"] == "coordinator"
    assert result["detail"].startswith("200 in ")
    assert result["detail"].endswith("ms; status == ok; supported_chains contains ait-devnet; height > 0")
    assert result["data"]["status"] == 200
    assert isinstance(result["latency_ms"], float) and result["latency_ms"] < 2000


def test_http_unexpected_status(web: str) -> None:
    result = run_one({"type": "http", "url": f"{web}/down", "json": ["status == ok"]})
    assert result["ok"] is False
    assert result["detail"].startswith("503 in ") and result["detail"].endswith(" ms, expected 200")
    accepted = run_one(
        {"type": "http", "url": f"{web}/down", "status": [200, 503], "json": ["status == down"]}
    )
    assert accepted["ok"] is True, accepted


def test_http_json_condition_failure_detail(web: str) -> None:
    result = run_one({"type": "http", "url": f"{web}/degraded", "json": ["status == ok", "height > 0"]})
    assert result["ok"] is False
    assert result["detail"].split("; ")[1:] == [
        "json field status is 'down', expected 'ok'",
        "json field height is 0, expected > 0",
    ]


def test_http_body_not_json_and_too_big(web: str) -> None:
    result = run_one({"type": "http", "url": f"{web}/notjson", "json": ["status == ok"]})
    assert result["ok"] is False and result["detail"].endswith("; response body is not JSON")
    big = run_one({"type": "http", "url": f"{web}/big", "json": ["0 == 1"]})
    assert big["ok"] is False and big["detail"].endswith("; response body is larger than 1.0 MiB")
    assert big["data"]["bytes"] == BODY_LIMIT


def test_http_body_contains_and_headers_and_method(web: str) -> None:
    assert run_one({"type": "http", "url": f"{web}/text", "body_contains": "nominal"})["ok"] is True
    missing = run_one({"type": "http", "url": f"{web}/text", "body_contains": "on fire"})
    assert missing["ok"] is False and missing["detail"].endswith("; body does not contain 'on fire'")
    echo = run_one(
        {"type": "http", "url": f"{web}/echo", "method": "post", "headers": {"X-Probe": "yes"},
         "json": ["method == POST", "headers.X-Probe == yes", "headers.User-Agent == aitbc.ops.health"]}
    )  # fmt: skip
    assert echo["ok"] is True, echo
    host, port = urlsplit(web).hostname, urlsplit(web).port
    auth = run_one(
        {"type": "http", "url": f"http://ops:pw@{host}:{port}/echo",
         "json": ["headers.Authorization == 'Basic b3BzOnB3'"]}
    )  # fmt: skip
    assert auth["ok"] is True, auth
    assert auth["name"] == f"http:{web}/echo"


def test_http_max_latency(web: str) -> None:
    result = run_one({"type": "http", "url": f"{web}/slow?s=0.3", "max_latency_ms": 100})
    assert result["ok"] is False and result["detail"].endswith("; latency above 100 ms")
    assert run_one({"type": "http", "url": f"{web}/slow?s=0.05", "max_latency_ms": 2000})["ok"] is True


def test_http_connection_refused() -> None:
    result = run_one({"type": "http", "url": f"http://127.0.0.1:{closed_port()}/health"})
    assert (result["ok"], result["detail"]) == (False, "connection refused")


def test_http_deadline_is_honoured(web: str) -> None:
    started = time.monotonic()
    result = run_one({"type": "http", "url": f"{web}/slow?s=3", "timeout": 0.5})
    elapsed = time.monotonic() - started
    assert (result["ok"], result["detail"]) == (False, "timed out after 0.5 s")
    assert 0.45 <= elapsed < 0.75, elapsed


def test_http_deadline_covers_a_trickling_body(web: str) -> None:
    # Every read returns within the socket timeout; only a deadline over the whole exchange stops it.
    started = time.monotonic()
    result = run_one({"type": "http", "url": f"{web}/trickle", "timeout": 0.7})
    elapsed = time.monotonic() - started
    assert (result["ok"], result["detail"]) == (False, "timed out after 0.7 s")
    assert elapsed < 1.0, elapsed


def test_http_deadline_covers_trickling_headers(web: str) -> None:
    started = time.monotonic()
    result = run_one({"type": "http", "url": f"{web}/trickle-headers", "timeout": 0.7})
    elapsed = time.monotonic() - started
    assert (result["ok"], result["detail"]) == (False, "timed out after 0.7 s")
    assert elapsed < 1.0, elapsed


def test_slow_probes_run_in_parallel(web: str) -> None:
    n = 6
    started = time.monotonic()
    report = check_health(
        [{"type": "http", "name": f"slow{i}", "url": f"{web}/slow?s=3", "timeout": 0.5} for i in range(n)]
    )
    elapsed = time.monotonic() - started
    assert [r["detail"] for r in report["results"]] == ["timed out after 0.5 s"] * n
    assert elapsed < 0.9, f"{n} probes with a 0.5 s deadline took {elapsed:.2f} s"
    assert report["healthy"] is False and report["failed_probes"] == [f"slow{i}" for i in range(n)]

    # Probes that do finish: about the time of one, not the sum, and results keep the given order.
    started = time.monotonic()
    report = check_health(
        [{"type": "http", "name": f"ok{i}", "url": f"{web}/slow?s={0.4 - i * 0.05:.2f}"} for i in range(n)]
    )
    elapsed = time.monotonic() - started
    assert report["healthy"] is True, report["msg"]
    assert [r["name"] for r in report["results"]] == [f"ok{i}" for i in range(n)]
    assert elapsed < 1.0, f"{n} probes of <= 0.4 s took {elapsed:.2f} s"


def test_runner_abandons_a_probe_that_ignores_its_deadline() -> None:
    release = threading.Event()

    class Stuck(Probe):
        type_name = "stuck"

        def run(self, deadline: float) -> tuple[bool, str, dict]:
            release.wait(5)
            return True, "finished late", {}

    fast = build_probes([{"type": "load", "max_load_per_cpu": 1000}])[0]
    try:
        started = time.monotonic()
        results = run_probes([Stuck({}, timeout=0.3), fast])
        elapsed = time.monotonic() - started
    finally:
        release.set()
    assert [(r["name"], r["ok"], r["detail"]) for r in results][0] == (
        "stuck",
        False,
        "timed out after 0.3 s",
    )
    assert results[1]["ok"] is True
    assert elapsed < 0.3 + DEADLINE_GRACE + 0.2, elapsed


# ------------------------------------------------------------------------------------------------- TLS


def test_tls_certificate_days_left_without_validation(tls_web: str) -> None:
    result = run_one(
        {"type": "http", "url": f"{tls_web}/health", "validate_certs": False, "tls_min_days": 30}
    )
    assert result["ok"] is True, result
    assert "certificate valid 36" in result["detail"]  # 364 or 365 more days
    assert 363 < result["data"]["tls_days_left"] <= 365
    short = run_one(
        {"type": "http", "url": f"{tls_web}/health", "validate_certs": False, "tls_min_days": 400}
    )
    assert short["ok"] is False
    assert short["detail"].endswith("; TLS certificate expires in 364 days (minimum 400)")


def test_tls_validation(tls_web: str, certs: dict[str, Path], monkeypatch: pytest.MonkeyPatch) -> None:
    untrusted = run_one({"type": "http", "url": f"{tls_web}/health"})
    assert untrusted["ok"] is False
    assert untrusted["detail"].startswith("TLS certificate verify failed: self")  # self-signed certificate
    # Trusted through the default verify paths (OpenSSL reads SSL_CERT_FILE), host name checked.
    monkeypatch.setenv("SSL_CERT_FILE", str(certs["short"]))
    trusted = run_one(
        {"type": "http", "url": f"{tls_web}/health", "tls_min_days": 30, "json": ["status == ok"]}
    )
    assert trusted["ok"] is True, trusted


@pytest.mark.parametrize("label", ["short", "long"])
def test_cert_not_after_matches_openssl(certs: dict[str, Path], label: str) -> None:
    pem = certs[label].read_text()
    der = ssl.PEM_cert_to_DER_cert(pem)
    enddate = subprocess.run(
        ["openssl", "x509", "-enddate", "-noout", "-in", str(certs[label])],
        capture_output=True,
        text=True,
        check=True,
    ).stdout.strip()
    expected = datetime.datetime.fromtimestamp(
        ssl.cert_time_to_seconds(enddate.split("=", 1)[1]), datetime.UTC
    )
    assert cert_not_after(der) == expected
    if label == "long":
        assert expected.year > 2050  # GeneralizedTime


# ------------------------------------------------------------------------------------------------- tcp


def test_tcp_open_and_closed() -> None:
    with socket.create_server(("127.0.0.1", 0)) as listener:
        port = listener.getsockname()[1]
        result = run_one({"type": "tcp", "port": port, "service": "rpc"})
        assert result["ok"] is True and result["detail"].startswith("connected in ")
        assert result["name"] == f"tcp:127.0.0.1:{port}"
    port = closed_port()
    assert run_one({"type": "tcp", "port": port})["detail"] == "connection refused"


def test_tcp_unresolvable_host() -> None:
    result = run_one({"type": "tcp", "host": "no-such-host.invalid", "port": 80, "timeout": 2})
    assert result["ok"] is False and result["detail"].startswith("cannot resolve host")


# ----------------------------------------------------------------------------------------------- redis


def test_redis_pong(line_server: Callable) -> None:
    server = line_server(lambda command: b"+PONG\r\n" if command == b"PING" else b"-ERR unknown\r\n")
    result = run_one({"type": "redis", "port": server.port})
    assert (result["ok"], result["name"]) == (True, f"redis:127.0.0.1:{server.port}")
    assert result["detail"].startswith("PONG in ")
    assert server.received == [b"PING"]


def test_redis_noauth(line_server: Callable) -> None:
    server = line_server(lambda command: b"-NOAUTH Authentication required.\r\n")
    result = run_one({"type": "redis", "port": server.port})
    assert (result["ok"], result["detail"]) == (False, "NOAUTH Authentication required.")


def test_redis_password(line_server: Callable) -> None:
    state = {"authed": False}

    def reply(command: bytes) -> bytes:
        if command.startswith(b"AUTH "):
            state["authed"] = command == b"AUTH sesame"
            return b"+OK\r\n" if state["authed"] else b"-WRONGPASS invalid username-password pair\r\n"
        return b"+PONG\r\n" if state["authed"] else b"-NOAUTH Authentication required.\r\n"

    server = line_server(reply)
    good = run_one({"type": "redis", "port": server.port, "password": "sesame"})
    assert good["ok"] is True, good
    bad = run_one({"type": "redis", "port": server.port, "password": "wrong"})
    assert (bad["ok"], bad["detail"]) == (False, "AUTH failed: WRONGPASS invalid username-password pair")
    assert "wrong" not in json.dumps(bad)


def test_redis_silent_and_garbage_and_closed(line_server: Callable) -> None:
    silent = line_server(lambda command: None)
    started = time.monotonic()
    result = run_one({"type": "redis", "port": silent.port, "timeout": 0.4})
    assert (result["ok"], result["detail"]) == (False, "timed out after 0.4 s")
    assert time.monotonic() - started < 0.7
    http_like = line_server(lambda command: b"HTTP/1.1 400 Bad Request\r\n")
    assert (
        run_one({"type": "redis", "port": http_like.port})["detail"]
        == "unexpected reply 'HTTP/1.1 400 Bad Request'"
    )
    assert run_one({"type": "redis", "port": closed_port()})["detail"] == "connection refused"


# --------------------------------------------------------------------------------------------- process


def test_process_pidfile_own_pid(tmp_path: Path) -> None:
    pidfile = tmp_path / "me.pid"
    pidfile.write_text(f"{os.getpid()}\n")
    result = run_one({"type": "process", "pidfile": str(pidfile), "service": "tests"})
    assert result["ok"] is True, result
    assert result["detail"].startswith(f"pid {os.getpid()} (") and result["detail"].endswith(") is running")
    assert result["data"] == {"pid": os.getpid()}


def test_process_pidfile_dead_pid_is_stale(tmp_path: Path) -> None:
    child = subprocess.Popen(["true"])
    child.wait()
    pidfile = tmp_path / "dead.pid"
    pidfile.write_text(str(child.pid))
    result = run_one({"type": "process", "pidfile": str(pidfile)})
    assert (result["ok"], result["detail"]) == (
        False,
        f"pid {child.pid} from {pidfile} is not running (stale pidfile)",
    )


def test_process_pidfile_zombie(tmp_path: Path) -> None:
    child = subprocess.Popen(["true"])  # not waited for: it stays a zombie until reaped
    try:
        for _attempt in range(100):
            with open(f"/proc/{child.pid}/stat") as handle:
                if handle.read().rpartition(")")[2].split()[0] == "Z":
                    break
            time.sleep(0.02)
        pidfile = tmp_path / "zombie.pid"
        pidfile.write_text(str(child.pid))
        result = run_one({"type": "process", "pidfile": str(pidfile)})
        assert (result["ok"], result["detail"]) == (
            False,
            f"pid {child.pid} (true) from {pidfile} is a zombie",
        )
    finally:
        child.wait()


def test_process_pidfile_missing_or_garbage(tmp_path: Path) -> None:
    missing = tmp_path / "missing.pid"
    assert run_one({"type": "process", "pidfile": str(missing)})["detail"] == f"pidfile {missing} not found"
    garbage = tmp_path / "garbage.pid"
    garbage.write_text("not-a-pid\n")
    assert (
        run_one({"type": "process", "pidfile": str(garbage)})["detail"] == f"pidfile {garbage} holds no pid"
    )


def test_process_by_name() -> None:
    marker = f"probe-marker-{uuid.uuid4().hex}"
    child = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(30)", marker])
    try:
        result = run_one({"type": "process", "process": marker})
        assert result["ok"] is True, result
        assert result["data"] == {"pids": [child.pid], "count": 1}
        assert result["detail"] == f"1 process matches '{marker}' (pid {child.pid})"
    finally:
        child.kill()
        child.wait()
    gone = run_one({"type": "process", "process": marker})
    assert (gone["ok"], gone["detail"]) == (False, f"no process matches '{marker}'")


def test_process_by_comm_name() -> None:
    child = subprocess.Popen(["sleep", "30"])
    try:
        result = run_one({"type": "process", "process": "sleep"})
        assert result["ok"] is True and child.pid in result["data"]["pids"]
    finally:
        child.kill()
        child.wait()


def test_process_by_name_ignores_itself_and_its_ancestors() -> None:
    # The pattern is in the command line of the probing process and of its parent shell (as it is in
    # the `ansible ... -a '...process: x...'` command over a local connection); neither may count.
    marker = f"lineage-marker-{uuid.uuid4().hex}"
    code = (
        f"import sys; sys.path.insert(0, {COLLECTIONS!r}); "
        "from ansible_collections.aitbc.ops.plugins.module_utils.probes.host import find_processes; "
        "print(find_processes(sys.argv[1]))"
    )
    out = subprocess.run(
        ["sh", "-c", f'{sys.executable} -c "$1" "$2"; :', "sh", code, marker],
        capture_output=True, text=True, check=True, timeout=30,
    ).stdout  # fmt: skip
    assert out.strip() == "[]"


# -------------------------------------------------------------------------------- disk, memory, load


def test_disk_thresholds(tmp_path: Path) -> None:
    ok = run_one({"type": "disk", "path": str(tmp_path), "min_free_percent": 0, "min_free_bytes": "1K"})
    assert ok["ok"] is True, ok
    assert ok["name"] == f"disk:{tmp_path}"
    assert set(ok["data"]) == {"free_bytes", "total_bytes", "free_percent", "filesystems"}
    assert ok["data"]["filesystems"] == [
        {
            "paths": [str(tmp_path)],
            "checked": str(tmp_path),
            **{k: ok["data"][k] for k in ("free_bytes", "total_bytes", "free_percent")},
        }
    ]
    full = run_one({"type": "disk", "path": str(tmp_path), "min_free_percent": 100})
    assert (
        full["ok"] is False and full["detail"].startswith("only ") and full["detail"].endswith("minimum 100%")
    )
    huge = run_one({"type": "disk", "path": str(tmp_path), "min_free_bytes": "1024P"})
    assert huge["ok"] is False and huge["detail"].endswith("minimum 1024.0 PiB")


def test_disk_path_not_created_yet_is_checked_on_its_nearest_parent(tmp_path: Path) -> None:
    # A data_dir before the service's first start (or an aitbc_root never created) is no failure: its
    # files will land on the parent's filesystem, which is what gets checked, as df does.
    missing = tmp_path / "not" / "yet"
    result = run_one({"type": "disk", "path": str(missing), "min_free_percent": 0})
    assert result["ok"] is True, result
    assert result["detail"].endswith(f" on {missing} ({missing} does not exist, checked {tmp_path})")
    assert result["data"]["filesystems"][0]["checked"] == str(tmp_path)
    assert nearest_existing(str(missing)) == str(tmp_path)
    assert nearest_existing("/") == "/"


def test_disk_paths_are_checked_once_per_filesystem(tmp_path: Path) -> None:
    (tmp_path / "data").mkdir()
    paths = [str(tmp_path / "data"), str(tmp_path / "backups"), str(tmp_path / "data")]
    result = run_one({"type": "disk", "path": str(tmp_path), "paths": paths, "min_free_percent": 0})
    assert result["ok"] is True, result
    [fs] = result["data"]["filesystems"]  # tmp_path's folders share its filesystem
    assert fs["paths"] == [str(tmp_path), str(tmp_path / "data"), str(tmp_path / "backups")]
    assert result["detail"].endswith(
        f" on {tmp_path} (also {tmp_path / 'data'}; {tmp_path / 'backups'} does not exist,"
        f" checked {tmp_path})"
    )
    # Two filesystems (/proc is its own): each checked, a full one fails the probe and is named first.
    two = group_by_filesystem(["/", "/proc/self", "/proc"])
    assert [fs.paths for fs in two] == [["/"], ["/proc/self", "/proc"]]
    full = run_one({"type": "disk", "paths": ["/proc"], "min_free_bytes": 1})
    assert (
        full["ok"] is False and full["detail"].startswith("only ") and "on /proc, minimum" in full["detail"]
    )
    assert "% free" in full["detail"].split("; ")[1]  # / follows, fine or not
    assert len(full["data"]["filesystems"]) == 2 and full["data"]["free_percent"] == 0
    with pytest.raises(ProbeConfigError, match="paths must not hold empty entries"):
        build_probes([{"type": "disk", "paths": [""], "min_free_percent": 1}])


def test_memory_threshold_on_this_host() -> None:
    assert run_one({"type": "memory", "min_available_percent": 0})["ok"] is True
    result = run_one({"type": "memory", "min_available_percent": 100})
    assert result["ok"] is False and result["detail"].endswith(", minimum 100%")
    assert 0 < result["data"]["available_percent"] < 100


def test_load_on_this_host_and_thresholds() -> None:
    result = run_one({"type": "load", "max_load_per_cpu": 10_000})
    assert result["ok"] is True and result["data"]["cpus"] == os.cpu_count()
    assert check_load((3.0, 2.0, 1.0), 4, 1.0) == (
        True, "load 0.75 per cpu (3.00 2.00 1.00 on 4 cpus)",
        {"load": [3.0, 2.0, 1.0], "cpus": 4, "load_per_cpu": 0.75},
    )  # fmt: skip
    ok, detail, _data = check_load((9.0, 2.0, 1.0), 4, 2)
    assert ok is False and detail == "load 2.25 per cpu (9.00 2.00 1.00 on 4 cpus), maximum 2"


# ---------------------------------------------------------------------------------------- the report


def test_check_health_report(web: str) -> None:
    specs_port = closed_port()
    report = check_health(
        [
            {
                "type": "http",
                "name": "api",
                "service": "coordinator",
                "url": f"{web}/health",
                "json": ["status == ok"],
            },
            {"type": "tcp", "name": "rpc", "service": "node", "port": specs_port},
            {"type": "memory", "min_available_percent": 0},
        ]
    )
    assert report["healthy"] is False
    assert report["failed_probes"] == ["rpc"]
    assert report["msg"] == "1 of 3 probes failed: rpc (connection refused)"
    assert [sorted(r) for r in report["results"]] == [
        ["category", "data", "detail", "latency_ms", "name", "ok", "service", "target", "type"]
    ] * 3
    assert {r["category"] for r in report["results"]} == {"ops"}
    assert [r["service"] for r in report["results"]] == ["coordinator", "node", None]
    assert [r["target"] for r in report["results"]][1:] == [f"127.0.0.1:{specs_port}", ""]
    assert check_health([{"type": "load", "max_load_per_cpu": 10_000}])["msg"] == "all 1 probes healthy"


def test_backup_probe_reports_freshness_of_the_newest_verified_set(tmp_path) -> None:
    import sqlite3

    from ansible_collections.aitbc.ops.plugins.module_utils._text import utcnow
    from ansible_collections.aitbc.ops.plugins.module_utils.backup.sets import create_set
    from ansible_collections.aitbc.ops.plugins.module_utils.backup.verify import (
        record_verification,
        verify_set,
    )

    db = tmp_path / "a.db"
    sqlite3.connect(db).execute("CREATE TABLE t (x)").connection.close()
    spec = {"type": "backup", "backup_dir": str(tmp_path / "b" / "h"), "max_age_hours": 2}
    (missing,) = check_health([spec])["results"]
    assert (
        not missing["ok"]
        and "no verified backup set" in missing["detail"]
        and "(no backup set)" in missing["detail"]
    )
    old = create_set(
        str(tmp_path / "b"),
        "h",
        [{"kind": "sqlite", "path": str(db)}],
        now=utcnow() - datetime.timedelta(hours=3),
    )
    record_verification(old["path"], verify_set(old["path"]))
    (stale,) = check_health([spec])["results"]
    assert not stale["ok"] and "3.0 h old (max 2 h)" in stale["detail"]
    new = create_set(str(tmp_path / "b"), "h", [{"kind": "sqlite", "path": str(db)}])
    (unverified,) = check_health([spec])["results"]
    assert not unverified["ok"]  # the newest set is not verified yet: the older verified one counts
    record_verification(new["path"], verify_set(new["path"]))
    (fresh,) = check_health([spec])["results"]
    assert fresh["ok"] and fresh["data"]["set"] == new["set"]

"""Alert delivery through apprise against real loopback servers: SMTP (aiosmtpd), a JSON webhook and a
minimal Matrix homeserver. Failures must come back as Delivery(ok=False), never as exceptions, and the
password in a URL must not show up anywhere: not in the Delivery, not on stdout/stderr, not in logs."""

from __future__ import annotations

import email
import email.policy
import json
import logging
import socket
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from email.message import EmailMessage
from email.utils import parseaddr
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import apprise
import pytest
from aiosmtpd.controller import Controller
from aiosmtpd.smtp import AuthResult, LoginPassword

from opsrunner.notify import (
    INVALID_URL,
    Alert,
    Delivery,
    Notifier,
    mask_url,
    notify_type,
    privacy_secrets,
    url_secrets,
)
from opsrunner.redact import MASK, Redactor

SECRET = "Sup3r-S3cret-pw"
REJECTED_RCPT = "nobody@example.org"

ALERT = Alert(
    kind="escalated",
    title="coordinator-api unhealthy on web1",
    body="Health check **failed** 3 times.\n\n- check: http\n- detail: 503",
    incident_id="INC-20250101-0001",
    host="web1",
    service="coordinator-api",
    severity="critical",
)


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def assert_no_secret(deliveries: list[Any], capsys: pytest.CaptureFixture[str], caplog: Any) -> None:
    out, err = capsys.readouterr()
    for text in [repr(deliveries), out, err, caplog.text]:
        assert SECRET not in text


@pytest.fixture(autouse=True)
def verbose_logging(caplog: pytest.LogCaptureFixture) -> None:
    """The application logging at DEBUG: a secret that reached any log record would show in caplog."""
    caplog.set_level(logging.DEBUG)


# -- SMTP ------------------------------------------------------------------------------------------


@dataclass
class Mailbox:
    port: int
    messages: list[tuple[str, list[str], EmailMessage]] = field(default_factory=list)

    async def handle_RCPT(self, server: Any, session: Any, envelope: Any, address: str, options: Any) -> str:
        if address == REJECTED_RCPT:
            return "550 5.1.1 mailbox unavailable"
        envelope.rcpt_tos.append(address)
        return "250 OK"

    async def handle_DATA(self, server: Any, session: Any, envelope: Any) -> str:
        message = email.message_from_bytes(envelope.original_content, policy=email.policy.default)
        assert isinstance(message, EmailMessage)
        self.messages.append((envelope.mail_from, list(envelope.rcpt_tos), message))
        return "250 Message accepted"

    def url(self, password: str = SECRET, to: str = "oncall@example.org") -> str:
        return f"mailto://opsbot:{password}@127.0.0.1:{self.port}?from=ops@example.org&to={to}&mode=insecure"


def authenticate(server: Any, session: Any, envelope: Any, mechanism: str, data: Any) -> AuthResult:
    ok = isinstance(data, LoginPassword) and (data.login, data.password) == (b"opsbot", SECRET.encode())
    return AuthResult(success=ok, handled=False)


@pytest.fixture
def mailbox(request: pytest.FixtureRequest) -> Mailbox:
    """A real SMTP server with AUTH and no TLS, like a local relay."""
    box = Mailbox(port=free_port())
    controller = Controller(
        box,
        hostname="127.0.0.1",
        port=box.port,
        authenticator=authenticate,
        auth_require_tls=False,
        auth_exclude_mechanism=["CRAM-MD5"],
    )
    controller.start()
    request.addfinalizer(controller.stop)
    return box


def test_email_is_delivered(mailbox: Mailbox, capsys: Any, caplog: Any) -> None:
    deliveries = Notifier([mailbox.url()]).send(ALERT)

    assert deliveries == [Delivery(target=f"mailto://127.0.0.1:{mailbox.port}", ok=True)]
    [(mail_from, rcpt_tos, message)] = mailbox.messages
    assert mail_from == "ops@example.org"
    assert rcpt_tos == ["oncall@example.org"]
    assert message["Subject"] == ALERT.title
    assert parseaddr(message["From"])[1] == "ops@example.org"
    assert parseaddr(message["To"])[1] == "oncall@example.org"
    plain = message.get_body(preferencelist=("plain",))
    assert plain is not None
    text = plain.get_content()
    assert "Health check" in text and "failed" in text and ALERT.incident_id in text
    assert_no_secret(deliveries, capsys, caplog)


def test_email_rejections_are_recorded(mailbox: Mailbox, capsys: Any, caplog: Any) -> None:
    wrong_login = mailbox.url(password=SECRET + "-old")
    rejected_rcpt = mailbox.url(to=REJECTED_RCPT)
    deliveries = Notifier([wrong_login, rejected_rcpt]).send(ALERT)

    assert [d.ok for d in deliveries] == [False, False]
    assert all(d.error for d in deliveries)
    assert mailbox.messages == []
    assert_no_secret(deliveries, capsys, caplog)


# -- JSON webhook ----------------------------------------------------------------------------------


@dataclass
class Hook:
    port: int
    status: int = 200
    received: list[dict[str, Any]] = field(default_factory=list)

    def url(self, path: str = "/hook") -> str:
        return f"json://alerts:{SECRET}@127.0.0.1:{self.port}{path}?token={SECRET}"


def serve(request: pytest.FixtureRequest, handler: type[BaseHTTPRequestHandler]) -> ThreadingHTTPServer:
    server = ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()

    def stop() -> None:
        server.shutdown()
        server.server_close()
        thread.join(5)

    request.addfinalizer(stop)
    return server


class QuietHandler(BaseHTTPRequestHandler):
    def log_message(self, format: str, *args: Any) -> None:  # http.server prints to stderr otherwise
        pass

    def reply(self, status: int, payload: dict[str, Any]) -> None:
        data = json.dumps(payload).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def read_json(self) -> dict[str, Any]:
        length = int(self.headers.get("Content-Length") or 0)
        payload: dict[str, Any] = json.loads(self.rfile.read(length) or b"{}")
        return payload


@pytest.fixture
def hook(request: pytest.FixtureRequest) -> Hook:
    state = Hook(port=0)

    class Handler(QuietHandler):
        def do_POST(self) -> None:
            state.received.append({"path": self.path, "json": self.read_json()})
            self.reply(state.status, {"status": state.status})

    state.port = serve(request, Handler).server_address[1]
    return state


def test_webhook_receives_json(hook: Hook, capsys: Any, caplog: Any) -> None:
    deliveries = Notifier([hook.url()]).send(ALERT)

    assert [(d.target, d.ok, d.error) for d in deliveries] == [
        (f"json://127.0.0.1:{hook.port}/hook", True, "")
    ]
    [request] = hook.received
    assert request["path"].startswith("/hook")
    payload = request["json"]
    assert payload["title"] == ALERT.title
    assert "Health check" in payload["message"] and ALERT.incident_id in payload["message"]
    assert payload["type"] == "failure"  # critical
    assert_no_secret(deliveries, capsys, caplog)


def test_resolved_alert_is_success(hook: Hook) -> None:
    resolved = Alert(kind="resolved", title="recovered", body="back to normal", severity="critical")
    assert Notifier([hook.url()]).send(resolved)[0].ok
    assert hook.received[0]["json"]["type"] == "success"


def test_webhook_500_is_recorded(hook: Hook, capsys: Any, caplog: Any) -> None:
    hook.status = 500
    [delivery] = Notifier([hook.url()]).send(ALERT)

    assert not delivery.ok
    assert "500" in delivery.error
    assert len(hook.received) == 1
    assert_no_secret([delivery], capsys, caplog)


# -- Matrix ----------------------------------------------------------------------------------------


@pytest.fixture
def homeserver(request: pytest.FixtureRequest) -> tuple[int, list[tuple[str, str, dict[str, Any]]]]:
    """The client-server endpoints apprise uses with a user/password URL: login, join, send, logout."""
    calls: list[tuple[str, str, dict[str, Any]]] = []

    class Handler(QuietHandler):
        def route(self) -> None:
            body = self.read_json()
            calls.append((self.command, self.path, body))
            path = self.path.split("?")[0]
            if path == "/_matrix/client/v3/login":
                if body.get("password") != SECRET:
                    self.reply(403, {"errcode": "M_FORBIDDEN", "error": "Invalid password"})
                    return
                self.reply(
                    200, {"access_token": "syt-token-1", "user_id": "@bot:localhost", "device_id": "D"}
                )
            elif self.headers.get("Authorization") != "Bearer syt-token-1":
                self.reply(401, {"errcode": "M_UNKNOWN_TOKEN", "error": "Unknown token"})
            elif path.startswith("/_matrix/client/v3/join/"):
                self.reply(200, {"room_id": "!ops:localhost"})
            elif "/send/m.room.message/" in path:
                self.reply(200, {"event_id": "$1"})
            elif path == "/_matrix/client/v3/logout":
                self.reply(200, {})
            else:
                self.reply(404, {"errcode": "M_UNRECOGNIZED", "error": "Unrecognized request"})

        do_GET = do_POST = do_PUT = route

    port = serve(request, Handler).server_address[1]
    return port, calls


def test_matrix_room_message(homeserver: Any, capsys: Any, caplog: Any) -> None:
    port, calls = homeserver
    deliveries = Notifier([f"matrix://bot:{SECRET}@127.0.0.1:{port}/#ops"]).send(ALERT)

    assert [(d.target, d.ok) for d in deliveries] == [(f"matrix://127.0.0.1:{port}", True)]
    sent = [
        body for method, path, body in calls if method == "PUT" and "/rooms/%21ops%3Alocalhost/send/" in path
    ]
    assert len(sent) == 1
    assert ALERT.title in sent[0]["body"] and "Health check" in sent[0]["body"]
    assert_no_secret(deliveries, capsys, caplog)


def test_matrix_login_refused(homeserver: Any, capsys: Any, caplog: Any) -> None:
    port, calls = homeserver
    url = f"matrixs://bot:{SECRET}x@127.0.0.1:{port}/#ops"  # TLS against a plain server: fails too
    bad_password = f"matrix://bot:{SECRET}x@127.0.0.1:{port}/#ops"
    deliveries = Notifier([url, bad_password]).send(ALERT)

    assert [d.ok for d in deliveries] == [False, False]
    assert all(d.error for d in deliveries)
    assert not any("/send/" in path for _, path, _ in calls)
    assert_no_secret(deliveries, capsys, caplog)


# -- failures that must not stall or raise ----------------------------------------------------------


def timed(call: Callable[[], Any]) -> tuple[Any, float]:
    start = time.monotonic()
    return call(), time.monotonic() - start


def test_closed_port_fails_fast(capsys: Any, caplog: Any) -> None:
    port = free_port()  # bound and released: nothing listens there
    urls = [
        f"json://alerts:{SECRET}@127.0.0.1:{port}/hook",
        f"mailto://opsbot:{SECRET}@127.0.0.1:{port}?from=ops@example.org&to=oncall@example.org",
    ]
    deliveries, elapsed = timed(lambda: Notifier(urls).send(ALERT))

    assert elapsed < 5
    assert [(d.target, d.ok) for d in deliveries] == [
        (f"json://127.0.0.1:{port}/hook", False),
        (f"mailto://127.0.0.1:{port}", False),
    ]
    assert all("onnection" in d.error for d in deliveries), deliveries
    assert_no_secret(deliveries, capsys, caplog)


def test_silent_endpoint_is_bounded_and_others_still_deliver(
    hook: Hook, request: pytest.FixtureRequest, capsys: Any, caplog: Any
) -> None:
    # Accepts connections (the kernel completes the handshake) and never answers.
    silent = socket.socket()
    silent.bind(("127.0.0.1", 0))
    silent.listen(8)
    request.addfinalizer(silent.close)
    dead = f"json://alerts:{SECRET}@127.0.0.1:{silent.getsockname()[1]}/hook"

    # The first relies on the default read timeout, the second asks for 30 s and meets the deadline.
    urls = [dead, f"{dead}?rto=30", hook.url()]

    deliveries, elapsed = timed(lambda: Notifier(urls, timeout_s=1.5).send(ALERT))

    assert elapsed < 4
    assert [d.ok for d in deliveries] == [False, False, True]
    assert "gave up after 1.5 s" in deliveries[0].error
    assert deliveries[1].error == "timed out after 1.5 s"
    assert len(hook.received) == 1
    assert_no_secret(deliveries, capsys, caplog)


def test_invalid_urls(capsys: Any, caplog: Any) -> None:
    urls = [
        "not a url",
        f"nosuchservice://admin:{SECRET}@example.org/path",
        f"mailto//opsbot:{SECRET}@127.0.0.1:25",  # a typo'd scheme must not expose the password
        "json://",
    ]
    deliveries = Notifier(urls).send(ALERT)

    assert [d.error for d in deliveries] == [INVALID_URL] * len(urls)
    assert not any(d.ok for d in deliveries)
    assert deliveries[1].target == "nosuchservice://example.org/path"
    assert_no_secret(deliveries, capsys, caplog)


def test_apprise_records_stay_out_of_application_logs() -> None:
    seen: list[logging.LogRecord] = []

    class Collect(logging.Handler):
        def emit(self, record: logging.LogRecord) -> None:
            seen.append(record)

    handler = Collect(logging.DEBUG)
    root = logging.getLogger()
    root.addHandler(handler)
    try:
        [delivery] = Notifier([f"json://alerts:{SECRET}@127.0.0.1:{free_port()}/x"]).send(ALERT)
    finally:
        root.removeHandler(handler)
    assert not delivery.ok and delivery.error  # apprise did log a warning, and we reported it
    assert not [record for record in seen if record.name.startswith("apprise")]


def test_no_urls_is_a_no_op() -> None:
    assert Notifier([]).send(ALERT) == []


# -- pure helpers ----------------------------------------------------------------------------------


def test_mask_url_and_secrets() -> None:
    url = f"json://alerts:{SECRET}@hooks.example.org:8443/a/b/?apikey=K3y-value&format=markdown"
    assert mask_url(url) == "json://hooks.example.org:8443/a/b"
    assert set(url_secrets(url)) == {SECRET, "K3y-value"}
    # A user without a password is how some services take a token (matrixs://TOKEN@host).
    assert url_secrets("matrixs://syt_abcdef@matrix.example.org/#ops") == ["syt_abcdef"]
    assert mask_url("garbage") == "(unparseable URL)"


def test_tokens_in_path_are_masked() -> None:
    # Discord puts the webhook token in the path; apprise's privacy URL says which parts are secret.
    url = "discord://1234567890/WebhookTokenValue123"
    plugin = apprise.Apprise.instantiate(url)
    assert plugin is not None
    redactor = Redactor(privacy_secrets(plugin))
    assert mask_url(url, redactor) == f"discord://{MASK}/{MASK}"


def test_notify_types() -> None:
    types = {sev: notify_type(Alert(kind="opened", title="t", body="b", severity=sev)) for sev in SEVERITIES}
    assert types == {
        "info": apprise.NotifyType.INFO,
        "warning": apprise.NotifyType.WARNING,
        "critical": apprise.NotifyType.FAILURE,
        "bogus": apprise.NotifyType.WARNING,
    }
    resolved = Alert(kind="resolved", title="t", body="b", severity="critical")
    assert notify_type(resolved) == apprise.NotifyType.SUCCESS


SEVERITIES = ("info", "warning", "critical", "bogus")

# -*- coding: utf-8 -*-
# Copyright: (c) 2025, aitbc-ops developers
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""The http probe: status, latency, body text, JSON conditions and the TLS certificate's expiry."""

from __future__ import annotations

import base64
import contextlib
import datetime
import http.client
import json
import math
import re
import socket
import ssl
import threading
import time
from collections.abc import Iterator
from typing import Any
from urllib.parse import urlsplit, urlunsplit

from ansible_collections.aitbc.ops.plugins.module_utils._text import human_bytes
from ansible_collections.aitbc.ops.plugins.module_utils.probes.base import (
    Outcome,
    Probe,
    ProbeError,
    remaining,
    show,
)
from ansible_collections.aitbc.ops.plugins.module_utils.probes.conditions import (
    evaluate_condition,
    parse_condition,
)

# At most this many bytes of an HTTP response body are read (body_contains and json see only these).
BODY_LIMIT = 1024 * 1024


# --------------------------------------------------------------------------------------------------
# TLS certificate expiry (from the DER certificate, so it works with validate_certs=false too)
# --------------------------------------------------------------------------------------------------


def _der_item(data: bytes, pos: int) -> tuple[int, int, int]:
    """Returns (tag, content_start, content_end) of the DER item at ``pos``."""
    tag = data[pos]
    length = data[pos + 1]
    pos += 2
    if length & 0x80:
        count = length & 0x7F
        length = int.from_bytes(data[pos : pos + count], "big")
        pos += count
    return tag, pos, pos + length


def cert_not_after(der: bytes) -> datetime.datetime:
    """The notAfter time (aware UTC datetime) of a DER-encoded X.509 certificate."""
    _tag, start, _end = _der_item(der, 0)  # Certificate
    _tag, pos, _end = _der_item(der, start)  # tbsCertificate
    tag, _start, end = _der_item(der, pos)
    if tag == 0xA0:  # [0] version
        pos = end
    for _skip in range(3):  # serialNumber, signature, issuer
        pos = _der_item(der, pos)[2]
    tag, pos, _end = _der_item(der, pos)  # validity
    pos = _der_item(der, pos)[2]  # notBefore
    tag, start, end = _der_item(der, pos)  # notAfter
    text = der[start:end].decode("ascii")
    if tag == 0x17:  # UTCTime YYMMDDHHMMSSZ
        year = int(text[:2])
        text = ("20" if year < 50 else "19") + text
    elif tag != 0x18:  # GeneralizedTime YYYYMMDDHHMMSSZ
        raise ValueError(f"unexpected certificate time tag 0x{tag:x}")
    return datetime.datetime.strptime(text[:14], "%Y%m%d%H%M%S").replace(tzinfo=datetime.UTC)


def cert_days_left(sslsock: ssl.SSLSocket, now: datetime.datetime | None = None) -> float:
    der = sslsock.getpeercert(binary_form=True)
    if not der:
        raise ProbeError("server sent no TLS certificate")
    now = now or datetime.datetime.now(datetime.UTC)
    return (cert_not_after(der) - now).total_seconds() / 86400.0


@contextlib.contextmanager
def cut_at(deadline: float, sockets: list[socket.socket]) -> Iterator[threading.Event]:
    """Shut the sockets down when the deadline passes; the event yielded says it did. http.client reads the
    status line and headers one line at a time, each recv with a fresh timeout, so a server trickling header
    bytes would hold the probe (and the module's exit, which waits for its threads) long past the deadline."""
    fired = threading.Event()

    def cut() -> None:
        fired.set()
        for sock in sockets:
            with contextlib.suppress(OSError):
                socket.socket.shutdown(sock, socket.SHUT_RDWR)  # the plain socket's, also under TLS

    timer = threading.Timer(max(deadline - time.monotonic(), 0.0), cut)
    timer.daemon = True
    timer.start()
    try:
        yield fired
    finally:
        timer.cancel()


class HttpProbe(Probe):
    type_name = "http"
    options = {
        "url": {"type": "str", "required": True},
        "method": {"type": "str", "default": "GET"},
        "status": {"type": "list", "elements": "int", "default": [200]},
        "json": {"type": "list", "elements": "str"},
        "body_contains": {"type": "str"},
        "max_latency_ms": {"type": "float"},
        "tls_min_days": {"type": "int"},
        "validate_certs": {"type": "bool", "default": True},
        "headers": {"type": "dict"},
    }

    def setup(self) -> None:
        p = self.params
        parts = urlsplit(p["url"])
        if parts.scheme not in ("http", "https") or not parts.hostname:
            raise ValueError(f"url '{p['url']}' is not an http:// or https:// URL with a host")
        try:
            self.port = parts.port or (443 if parts.scheme == "https" else 80)
        except ValueError:
            raise ValueError(f"url '{p['url']}' has a bad port") from None
        self.https = parts.scheme == "https"
        self.host = parts.hostname
        self.target = urlunsplit(("", "", parts.path or "/", parts.query, ""))
        netloc = parts.hostname if ":" not in parts.hostname else f"[{parts.hostname}]"
        if parts.port:
            netloc += f":{parts.port}"
        # The URL without user:password, for names and messages.
        self.public_url = urlunsplit((parts.scheme, netloc, parts.path, parts.query, ""))
        self.headers = {"User-Agent": "aitbc.ops.health"}
        if parts.username is not None:
            creds = f"{parts.username}:{parts.password or ''}"
            self.headers["Authorization"] = "Basic " + base64.b64encode(creds.encode()).decode("ascii")
        self.headers.update({str(k): str(v) for k, v in (p.get("headers") or {}).items()})
        if not re.match(r"^[A-Za-z]+$", p["method"]):
            raise ValueError(f"method '{p['method']}' is not an HTTP method")
        self.method = p["method"].upper()
        if not p["status"]:
            raise ValueError("status must list at least one code")
        for code in p["status"]:
            if not 100 <= code <= 599:
                raise ValueError(f"status code {code} is not between 100 and 599")
        self.conditions = [parse_condition(text) for text in p.get("json") or []]
        if p.get("max_latency_ms") is not None and p["max_latency_ms"] <= 0:
            raise ValueError("max_latency_ms must be greater than 0")
        if p.get("tls_min_days") is not None:
            if not self.https:
                raise ValueError("tls_min_days needs an https:// url")
            if p["tls_min_days"] < 0:
                raise ValueError("tls_min_days must not be negative")

    def default_name(self) -> str:
        return "http:" + self.public_url

    def _connection(self, deadline: float) -> http.client.HTTPConnection:
        if not self.https:
            return http.client.HTTPConnection(self.host, self.port, timeout=remaining(deadline))
        context = ssl.create_default_context()
        if not self.params["validate_certs"]:
            context.check_hostname = False
            context.verify_mode = ssl.CERT_NONE
        return http.client.HTTPSConnection(self.host, self.port, timeout=remaining(deadline), context=context)

    def _fetch(self, deadline: float) -> tuple[int, bytes, bool, float, float | None]:
        """Returns (status, body bytes, truncated, latency seconds, TLS days left or None)."""
        start = time.monotonic()
        conn = self._connection(deadline)
        sockets: list[socket.socket] = []
        try:
            with cut_at(deadline, sockets) as cut:
                answer = self._exchange(conn, sockets, deadline, start)
        except (OSError, http.client.HTTPException):
            if time.monotonic() >= deadline:
                raise TimeoutError("deadline passed") from None
            raise
        finally:
            conn.close()
        if cut.is_set():  # the body ended because the socket was shut, not because the server finished
            raise TimeoutError("deadline passed")
        return answer

    def _exchange(
        self, conn: http.client.HTTPConnection, sockets: list[socket.socket], deadline: float, start: float
    ) -> tuple[int, bytes, bool, float, float | None]:
        """The whole request and response, inside the deadline (``cut_at`` ends it when it passes)."""
        conn.connect()
        sock = conn.sock  # keep it: http.client hands it to the response and may drop conn.sock
        sockets.append(sock)
        days_left = None
        if self.https and self.params.get("tls_min_days") is not None:
            days_left = cert_days_left(sock)
        sock.settimeout(remaining(deadline))
        conn.request(self.method, self.target, headers=self.headers)
        sock.settimeout(remaining(deadline))
        response = conn.getresponse()
        chunks: list[bytes] = []
        size, truncated = 0, False
        if self.method != "HEAD":
            while True:
                sock.settimeout(remaining(deadline))
                chunk = response.read1(min(65536, BODY_LIMIT - size))
                if not chunk:
                    break
                chunks.append(chunk)
                size += len(chunk)
                if size >= BODY_LIMIT:
                    truncated = True
                    break
        latency = time.monotonic() - start
        return response.status, b"".join(chunks), truncated, latency, days_left

    def run(self, deadline: float) -> Outcome:
        p = self.params
        status, body, truncated, latency, days_left = self._fetch(deadline)
        data: dict[str, Any] = {"status": status, "bytes": len(body)}
        if days_left is not None:
            data["tls_days_left"] = round(days_left, 1)
        head = f"{status} in {latency * 1000:.0f} ms"
        if status not in p["status"]:
            expected = ", ".join(str(code) for code in p["status"])
            return False, f"{head}, expected {expected}", data
        passed: list[str] = []
        failed: list[str] = []
        if p.get("max_latency_ms") is not None and latency * 1000 > p["max_latency_ms"]:
            failed.append(f"latency above {p['max_latency_ms']:g} ms")
        if days_left is not None:
            if days_left < 0:
                failed.append(f"TLS certificate expired {math.ceil(-days_left)} days ago")
            elif days_left < p["tls_min_days"]:
                failed.append(
                    f"TLS certificate expires in {math.floor(days_left)} days (minimum {p['tls_min_days']})"
                )
            else:
                passed.append(f"certificate valid {math.floor(days_left)} more days")
        if p.get("body_contains") is not None:
            text = body.decode("utf-8", "replace")
            if p["body_contains"] in text:
                passed.append(f"body contains {show(p['body_contains'])}")
            else:
                failed.append(f"body does not contain {show(p['body_contains'])}")
        if self.conditions:
            try:
                if truncated:
                    raise ValueError
                doc = json.loads(body.decode("utf-8"))
            except ValueError:
                why = f"is larger than {human_bytes(BODY_LIMIT)}" if truncated else "is not JSON"
                failed.append(f"response body {why}")
            else:
                for cond in self.conditions:
                    ok, message = evaluate_condition(cond, doc)
                    (passed if ok else failed).append(message)
        return not failed, "; ".join([head] + (failed or passed)), data

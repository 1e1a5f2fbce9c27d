# -*- coding: utf-8 -*-
# Copyright: (c) 2025, aitbc-ops developers
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Health probes for the aitbc.ops.health module.

This file is shipped to managed hosts, so it uses the Python standard library only (no requests, no
redis client, no psutil) and nothing from Ansible.

Probe types live in one registry, ``PROBE_TYPES`` (type name -> ``Probe`` subclass), at the end of
this file. A probe class declares its options in Ansible argument_spec format, validates them in
``setup()``, names itself in ``default_name()`` and does its work in ``run(deadline)``. To add a probe
type, write the class, add it to ``PROBE_TYPES`` and document its options in plugins/modules/health.py
(ansible-test validate-modules checks that the documentation matches ``argument_spec()``).

Entry points: ``check_health(specs)`` validates and runs a list of probe dicts and returns the module
result; ``build_probes(specs)`` and ``run_probes(probes)`` are its two halves.
"""

from __future__ import annotations

import base64
import concurrent.futures
import datetime
import http.client
import json
import math
import os
import re
import socket
import ssl
import time
from urllib.parse import urlsplit, urlunsplit

from ansible_collections.aitbc.ops.plugins.module_utils.procfs import read_cmdline, read_stat

DEFAULT_TIMEOUT = 5.0
# How long the runner waits past a probe's deadline for the probe to report its own timeout.
DEADLINE_GRACE = 0.25
# At most this many bytes of an HTTP response body are read (body_contains and json see only these).
BODY_LIMIT = 1024 * 1024
MAX_WORKERS = 64


class ProbeConfigError(ValueError):
    """Bad probe definitions. The message names the probe and is meant for the user as is."""


class ProbeError(Exception):
    """A probe failed for a reason that the message already describes in plain words."""


# --------------------------------------------------------------------------------------------------
# Small helpers
# --------------------------------------------------------------------------------------------------


def _remaining(deadline):
    """Seconds left before ``deadline`` (time.monotonic); raises TimeoutError when it has passed."""
    left = deadline - time.monotonic()
    if left <= 0:
        raise TimeoutError("deadline passed")
    return left


def _ms(seconds):
    return round(seconds * 1000.0, 1)


def human_bytes(num):
    """1536 -> '1.5 KiB'."""
    num = float(num)
    for unit in ("B", "KiB", "MiB", "GiB", "TiB", "PiB"):
        if abs(num) < 1024.0 or unit == "PiB":
            return f"{num:.0f} B" if unit == "B" else f"{num:.1f} {unit}"
        num /= 1024.0
    return f"{num:.1f} PiB"  # pragma: no cover


_BYTES_RE = re.compile(r"^\s*([0-9]*\.?[0-9]+)\s*([KMGTPEZY]?)(i?B)?\s*$", re.IGNORECASE)


def parse_bytes(value):
    """'5G', '5 GB', '5GiB', 1024 -> int bytes (powers of 1024, as Ansible's human_to_bytes)."""
    if isinstance(value, bool):
        raise ValueError("expected a size in bytes, got a boolean")
    if isinstance(value, int):
        return value
    if isinstance(value, float):
        return int(round(value))
    match = _BYTES_RE.match(str(value))
    if not match:
        raise ValueError(f"cannot read '{value}' as a size (examples: 1048576, 512M, 5G)")
    power = " KMGTPEZY".index(match.group(2).upper() or " ")
    return int(round(float(match.group(1)) * 1024**power))


def _show(value, limit=60):
    """A short rendering of a JSON value for messages: strings quoted, the rest as JSON."""
    text = f"'{value}'" if isinstance(value, str) else json.dumps(value, sort_keys=True, default=str)
    return text if len(text) <= limit else text[: limit - 3] + "..."


def describe_error(exc, timeout):
    """Short human text for an exception raised by a probe."""
    if isinstance(exc, ProbeError):
        return str(exc)
    if isinstance(exc, TimeoutError):  # socket.timeout is TimeoutError on Python 3.10+
        return f"timed out after {timeout:g} s"
    if isinstance(exc, ConnectionRefusedError):
        return "connection refused"
    if isinstance(exc, socket.gaierror):
        return f"cannot resolve host: {exc.strerror or exc}"
    if isinstance(exc, ssl.SSLCertVerificationError):
        return f"TLS certificate verify failed: {exc.verify_message or exc.reason or exc}"
    if isinstance(exc, ssl.SSLError):
        return f"TLS error: {exc.reason or exc}"
    if isinstance(exc, http.client.RemoteDisconnected):
        return "server closed the connection without a response"
    if isinstance(exc, http.client.HTTPException):
        return f"bad HTTP response: {str(exc) or exc.__class__.__name__}"
    if isinstance(exc, OSError):
        text = exc.strerror or str(exc) or exc.__class__.__name__
        if exc.filename:
            text = f"{text}: {exc.filename}"
        return text[:1].lower() + text[1:]
    return f"{exc.__class__.__name__}: {exc}"


# --------------------------------------------------------------------------------------------------
# Option handling (argument_spec format, so the module can hand the same specs to AnsibleModule)
# --------------------------------------------------------------------------------------------------

_TRUE = frozenset(("true", "yes", "on", "1", "y", "t"))
_FALSE = frozenset(("false", "no", "off", "0", "n", "f"))


def _coerce(value, kind, elements=None):
    """Convert ``value`` to the argument_spec type ``kind``. AnsibleModule already did this for
    module calls; this keeps direct callers (tests, other module_utils) to the same rules."""
    if kind in ("str", "path"):
        if isinstance(value, bool) or not isinstance(value, (str, int, float)):
            raise ValueError("expected a string")
        value = str(value)
        return os.path.expanduser(os.path.expandvars(value)) if kind == "path" else value
    if kind == "int":
        if isinstance(value, bool):
            raise ValueError("expected an integer")
        if isinstance(value, float) and value.is_integer():
            return int(value)
        if isinstance(value, int):
            return value
        if isinstance(value, str) and re.match(r"^\s*[-+]?\d+\s*$", value):
            return int(value)
        raise ValueError("expected an integer")
    if kind == "float":
        if isinstance(value, bool):
            raise ValueError("expected a number")
        try:
            result = float(value)
        except (TypeError, ValueError):
            raise ValueError("expected a number") from None
        if not math.isfinite(result):
            raise ValueError("expected a finite number")
        return result
    if kind == "bool":
        if isinstance(value, bool):
            return value
        text = str(value).strip().lower()
        if text in _TRUE:
            return True
        if text in _FALSE:
            return False
        raise ValueError("expected a boolean")
    if kind == "bytes":
        return parse_bytes(value)
    if kind == "list":
        if isinstance(value, str):
            value = [item.strip() for item in value.split(",")]
        elif isinstance(value, (int, float)) and not isinstance(value, bool):
            value = [value]
        if not isinstance(value, (list, tuple)):
            raise ValueError("expected a list")
        if elements:
            out = []
            for item in value:
                try:
                    out.append(_coerce(item, elements))
                except ValueError as exc:
                    raise ValueError(f"list item {_show(item)}: {exc}") from None
            return out
        return list(value)
    if kind == "dict":
        if not isinstance(value, dict):
            raise ValueError("expected a dictionary")
        return dict(value)
    return value  # raw


class Probe:
    """Base class of probe types.

    Subclasses set ``type_name`` and ``options`` (argument_spec entries; ``default`` and ``required``
    apply to this type only), may extend ``setup()`` to validate and prepare (raise ValueError with a
    short message), and implement ``default_name()`` and ``run(deadline)``.

    ``run`` returns ``(ok, detail, data)``: ``detail`` is short human text, ``data`` a dict of measured
    facts. It may raise instead of returning a failure; the runner turns the exception into a detail.
    Every blocking call must honour ``deadline`` (a time.monotonic() value): use ``_remaining``.
    """

    type_name = ""
    options = {}

    def __init__(self, params, name=None, service=None, timeout=DEFAULT_TIMEOUT):
        self.params = params
        self.timeout = timeout
        self.service = service
        self.setup()
        self.name = name or self.default_name()

    def setup(self):
        """Validate ``self.params`` beyond types and required options; raise ValueError."""

    def default_name(self):
        return self.type_name

    def run(self, deadline):
        raise NotImplementedError

    def subject(self):
        """What is probed (URL, host:port, pidfile, path), for reports: the default name minus its type."""
        prefix = self.type_name + ":"
        name = self.default_name()
        return name[len(prefix) :] if name.startswith(prefix) else ""

    def result(self, ok, detail, latency_ms, data=None):
        return {
            "name": self.name,
            "type": self.type_name,
            "service": self.service,
            "target": self.subject(),
            "ok": bool(ok),
            "detail": detail,
            "latency_ms": latency_ms,
            "data": data or {},
        }


COMMON_OPTIONS = {
    # Checked by build_probe (not by AnsibleModule) so that the message names the probe.
    "type": {"type": "str"},
    "name": {"type": "str"},
    "service": {"type": "str"},
    "timeout": {"type": "float", "default": DEFAULT_TIMEOUT},
}


# --------------------------------------------------------------------------------------------------
# JSON conditions for http probes: "status == ok", "chains contains ait-devnet", "a.b.c exists"
# --------------------------------------------------------------------------------------------------

_MISSING = object()
_CMP_RE = re.compile(r"^\s*(?P<path>[^\s=!<>]+)\s*(?P<op>==|!=|>=|<=|>|<)\s*(?P<value>.*?)\s*$")
_WORD_RE = re.compile(r"^\s*(?P<path>\S+)\s+(?P<op>contains|exists)(?:\s+(?P<value>.*?))?\s*$")
_NUMBER_OPS = (">", ">=", "<", "<=")


class Condition:
    """One parsed JSON condition: ``path`` (list of keys), ``op`` and ``value`` (text, or None)."""

    __slots__ = ("text", "path", "op", "value", "quoted")

    def __init__(self, text, path, op, value, quoted):
        self.text = text
        self.path = path
        self.op = op
        self.value = value
        self.quoted = quoted

    def __repr__(self):
        return f"Condition({self.text!r})"

    @property
    def field(self):
        return ".".join(self.path)


def parse_condition(text):
    """Parse 'PATH OP [VALUE]'. PATH is dotted (a.b.0.c: numbers index lists); OP is one of
    == != > >= < <= contains exists. VALUE may be quoted to keep spaces or to force a string."""
    if not isinstance(text, str) or not text.strip():
        raise ValueError("empty json condition")
    text = text.strip()
    match = _CMP_RE.match(text) or _WORD_RE.match(text)
    if not match:
        raise ValueError(
            f"cannot parse json condition '{text}' (expected 'PATH OP VALUE' with OP one of "
            "==, !=, >, >=, <, <=, contains, or PATH exists)"
        )
    path, op, value = match.group("path"), match.group("op"), match.group("value")
    if any(not part for part in path.split(".")):
        raise ValueError(f"json condition '{text}': bad path '{path}'")
    quoted = False
    if value is not None and len(value) >= 2 and value[0] == value[-1] and value[0] in "'\"":
        value, quoted = value[1:-1], True
    if op == "exists":
        if value:
            raise ValueError(f"json condition '{text}': exists takes no value")
        value = None
    elif not value and not quoted:
        raise ValueError(f"json condition '{text}': {op} needs a value")
    if op in _NUMBER_OPS:
        try:
            float(value)
        except ValueError:
            raise ValueError(f"json condition '{text}': {op} needs a number, got '{value}'") from None
    return Condition(text, path.split("."), op, value, quoted)


def lookup(doc, path):
    """Follow a list of keys through dicts and lists; returns _MISSING when a step is absent."""
    current = doc
    for part in path:
        if isinstance(current, dict):
            if part not in current:
                return _MISSING
            current = current[part]
        elif isinstance(current, list) and re.match(r"^-?\d+$", part):
            index = int(part)
            if not -len(current) <= index < len(current):
                return _MISSING
            current = current[index]
        else:
            return _MISSING
    return current


def _as_number(value):
    if isinstance(value, bool):
        return None
    if isinstance(value, (int, float)):
        return float(value)
    if isinstance(value, str):
        try:
            return float(value)
        except ValueError:
            return None
    return None


def _equals(actual, expected, quoted=False):
    """Compare a JSON value with condition text: numbers numerically, booleans and null by their
    words (true/false/null), strings as text. A quoted value is always compared as a string."""
    if quoted or isinstance(actual, str):
        return isinstance(actual, str) and actual == expected
    if isinstance(actual, bool):
        word = expected.strip().lower()
        return (word in ("true", "yes") and actual) or (word in ("false", "no") and not actual)
    if actual is None:
        return expected.strip().lower() in ("null", "none", "~")
    if isinstance(actual, (int, float)):
        number = _as_number(expected)
        return number is not None and float(actual) == number
    try:
        return actual == json.loads(expected)
    except ValueError:
        return False


def evaluate_condition(cond, doc):
    """Returns (ok, message). The message reads well in a probe detail either way."""
    actual = lookup(doc, cond.path)
    field = cond.field
    if cond.op == "exists":
        return (True, cond.text) if actual is not _MISSING else (False, f"json field {field} is missing")
    if actual is _MISSING:
        return False, f"json field {field} is missing (condition {cond.text})"
    if cond.op == "==":
        if _equals(actual, cond.value, cond.quoted):
            return True, cond.text
        return False, f"json field {field} is {_show(actual)}, expected '{cond.value}'"
    if cond.op == "!=":
        if not _equals(actual, cond.value, cond.quoted):
            return True, cond.text
        return False, f"json field {field} is {_show(actual)}, expected anything but '{cond.value}'"
    if cond.op == "contains":
        if isinstance(actual, list):
            found = any(_equals(item, cond.value, cond.quoted) for item in actual)
        elif isinstance(actual, (str, dict)):  # substring, or key of an object
            found = cond.value in actual
        else:
            return False, f"json field {field} is {_show(actual)}, not a list, string or object"
        if found:
            return True, cond.text
        return False, f"json field {field} does not contain '{cond.value}' (it is {_show(actual)})"
    # ordering operators
    number = _as_number(actual)
    if number is None:
        return False, f"json field {field} is {_show(actual)}, not a number (condition {cond.text})"
    limit = float(cond.value)
    ok = {
        ">": number > limit,
        ">=": number >= limit,
        "<": number < limit,
        "<=": number <= limit,
    }[cond.op]
    if ok:
        return True, cond.text
    return False, f"json field {field} is {_show(actual)}, expected {cond.op} {cond.value}"


# --------------------------------------------------------------------------------------------------
# TLS certificate expiry (from the DER certificate, so it works with validate_certs=false too)
# --------------------------------------------------------------------------------------------------


def _der_item(data, pos):
    """Returns (tag, content_start, content_end) of the DER item at ``pos``."""
    tag = data[pos]
    length = data[pos + 1]
    pos += 2
    if length & 0x80:
        count = length & 0x7F
        length = int.from_bytes(data[pos : pos + count], "big")
        pos += count
    return tag, pos, pos + length


def cert_not_after(der):
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


def cert_days_left(sslsock, now=None):
    der = sslsock.getpeercert(binary_form=True)
    if not der:
        raise ProbeError("server sent no TLS certificate")
    now = now or datetime.datetime.now(datetime.UTC)
    return (cert_not_after(der) - now).total_seconds() / 86400.0


# --------------------------------------------------------------------------------------------------
# Probe types
# --------------------------------------------------------------------------------------------------


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

    def setup(self):
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

    def default_name(self):
        return "http:" + self.public_url

    def _connection(self, deadline):
        if not self.https:
            return http.client.HTTPConnection(self.host, self.port, timeout=_remaining(deadline))
        context = ssl.create_default_context()
        if not self.params["validate_certs"]:
            context.check_hostname = False
            context.verify_mode = ssl.CERT_NONE
        return http.client.HTTPSConnection(
            self.host, self.port, timeout=_remaining(deadline), context=context
        )

    def _fetch(self, deadline):
        """Returns (status, body bytes, truncated, latency seconds, TLS days left or None)."""
        start = time.monotonic()
        conn = self._connection(deadline)
        try:
            conn.connect()
            sock = conn.sock  # keep it: http.client hands it to the response and may drop conn.sock
            days_left = None
            if self.https and self.params.get("tls_min_days") is not None:
                days_left = cert_days_left(sock)
            sock.settimeout(_remaining(deadline))
            conn.request(self.method, self.target, headers=self.headers)
            sock.settimeout(_remaining(deadline))
            response = conn.getresponse()
            chunks, size, truncated = [], 0, False
            if self.method != "HEAD":
                while True:
                    sock.settimeout(_remaining(deadline))
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
        finally:
            conn.close()

    def run(self, deadline):
        p = self.params
        status, body, truncated, latency, days_left = self._fetch(deadline)
        data = {"status": status, "bytes": len(body)}
        if days_left is not None:
            data["tls_days_left"] = round(days_left, 1)
        head = f"{status} in {latency * 1000:.0f} ms"
        if status not in p["status"]:
            expected = ", ".join(str(code) for code in p["status"])
            return False, f"{head}, expected {expected}", data
        passed, failed = [], []
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
                passed.append(f"body contains {_show(p['body_contains'])}")
            else:
                failed.append(f"body does not contain {_show(p['body_contains'])}")
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


class TcpProbe(Probe):
    type_name = "tcp"
    options = {
        "host": {"type": "str", "default": "127.0.0.1"},
        "port": {"type": "int", "required": True},
    }

    def setup(self):
        if not 1 <= self.params["port"] <= 65535:
            raise ValueError(f"port {self.params['port']} is not between 1 and 65535")

    def default_name(self):
        return f"tcp:{self.params['host']}:{self.params['port']}"

    def run(self, deadline):
        start = time.monotonic()
        address = (self.params["host"], self.params["port"])
        socket.create_connection(address, timeout=_remaining(deadline)).close()
        return True, f"connected in {(time.monotonic() - start) * 1000:.0f} ms", {}


def _resp_command(*words):
    """A RESP array of bulk strings, as redis-cli sends commands."""
    out = [b"*%d\r\n" % len(words)]
    for word in words:
        raw = word.encode("utf-8") if isinstance(word, str) else word
        out.append(b"$%d\r\n%s\r\n" % (len(raw), raw))
    return b"".join(out)


def _recv_line(sock, deadline, limit=65536):
    buf = b""
    while b"\r\n" not in buf:
        sock.settimeout(_remaining(deadline))
        chunk = sock.recv(4096)
        if not chunk:
            raise ProbeError("connection closed by server" + (f" after {buf[:60]!r}" if buf else ""))
        buf += chunk
        if len(buf) > limit:
            raise ProbeError(f"reply longer than {limit} bytes")
    return buf.split(b"\r\n", 1)[0].decode("utf-8", "replace")


class RedisProbe(Probe):
    type_name = "redis"
    options = {
        "host": {"type": "str", "default": "127.0.0.1"},
        "port": {"type": "int", "default": 6379},
        "password": {"type": "str", "no_log": True},
    }

    setup = TcpProbe.setup

    def default_name(self):
        return f"redis:{self.params['host']}:{self.params['port']}"

    def run(self, deadline):
        start = time.monotonic()
        with socket.create_connection(
            (self.params["host"], self.params["port"]), timeout=_remaining(deadline)
        ) as sock:
            if self.params.get("password") is not None:
                sock.sendall(_resp_command("AUTH", self.params["password"]))
                reply = _recv_line(sock, deadline)
                if not reply.startswith("+"):
                    return False, f"AUTH failed: {reply.lstrip('-')}", {}
            sock.sendall(_resp_command("PING"))
            reply = _recv_line(sock, deadline)
        latency = (time.monotonic() - start) * 1000
        if reply == "+PONG":
            return True, f"PONG in {latency:.0f} ms", {}
        if reply.startswith("-"):
            return False, reply[1:], {}
        return False, f"unexpected reply {_show(reply)}", {}


def _proc_stat(pid):
    """(comm, state, ppid) from /proc/PID/stat, or None when there is no such process."""
    stat = read_stat(pid)
    return None if stat is None else (stat["comm"], stat["state"], stat["ppid"])


def _proc_cmdline(pid):
    return " ".join(read_cmdline(pid))


def _own_lineage():
    """This process and its ancestors: their command lines may carry the pattern being searched
    (for example the ansible command that runs this module over a local connection)."""
    pids, pid = set(), os.getpid()
    while pid > 0 and pid not in pids:
        pids.add(pid)
        stat = _proc_stat(pid)
        pid = stat[2] if stat else 0
    return pids


def find_processes(pattern):
    """Pids of live (non-zombie) processes whose comm equals ``pattern`` or whose command line
    contains it, leaving out this process and its ancestors."""
    skip = _own_lineage()
    found = []
    for entry in os.listdir("/proc"):
        if not entry.isdigit() or int(entry) in skip:
            continue
        pid = int(entry)
        stat = _proc_stat(pid)
        if stat is None or stat[1] in "ZX":
            continue
        if stat[0] == pattern or pattern in _proc_cmdline(pid):
            found.append(pid)
    return sorted(found)


class ProcessProbe(Probe):
    type_name = "process"
    options = {
        "pidfile": {"type": "path"},
        "process": {"type": "str"},
    }

    def setup(self):
        given = [key for key in ("pidfile", "process") if self.params.get(key) is not None]
        if len(given) != 1:
            raise ValueError("process probes need exactly one of pidfile or process")
        if self.params.get("process") == "":
            raise ValueError("process must not be empty")

    def default_name(self):
        return f"process:{self.params.get('pidfile') or self.params['process']}"

    def run(self, deadline):
        if not os.path.isdir("/proc/self"):
            raise ProbeError("process probes need /proc (Linux)")
        if self.params.get("process") is not None:
            pids = find_processes(self.params["process"])
            data = {"pids": pids[:50], "count": len(pids)}
            if not pids:
                return False, f"no process matches '{self.params['process']}'", data
            shown = ", ".join(str(pid) for pid in pids[:5]) + (", ..." if len(pids) > 5 else "")
            noun = "process matches" if len(pids) == 1 else "processes match"
            return True, f"{len(pids)} {noun} '{self.params['process']}' (pid {shown})", data
        pidfile = self.params["pidfile"]
        try:
            with open(pidfile, encoding="utf-8", errors="replace") as handle:
                text = handle.read(4096).strip()
        except FileNotFoundError:
            return False, f"pidfile {pidfile} not found", {}
        first = text.split()[0] if text else ""
        if not first.isdigit() or int(first) <= 0:
            return False, f"pidfile {pidfile} holds no pid", {}
        pid = int(first)
        data = {"pid": pid}
        stat = _proc_stat(pid)
        if stat is None:
            return False, f"pid {pid} from {pidfile} is not running (stale pidfile)", data
        if stat[1] in "ZX":
            return False, f"pid {pid} ({stat[0]}) from {pidfile} is a zombie", data
        return True, f"pid {pid} ({stat[0]}) is running", data


class DiskProbe(Probe):
    type_name = "disk"
    options = {
        "path": {"type": "path", "default": "/"},
        "min_free_percent": {"type": "float"},
        "min_free_bytes": {"type": "bytes"},
    }

    def setup(self):
        p = self.params
        if p.get("min_free_percent") is None and p.get("min_free_bytes") is None:
            raise ValueError("disk probes need min_free_percent or min_free_bytes")
        if p.get("min_free_percent") is not None and not 0 <= p["min_free_percent"] <= 100:
            raise ValueError("min_free_percent must be between 0 and 100")
        if p.get("min_free_bytes") is not None and p["min_free_bytes"] < 0:
            raise ValueError("min_free_bytes must not be negative")

    def default_name(self):
        return f"disk:{self.params['path']}"

    def run(self, deadline):
        p = self.params
        st = os.statvfs(p["path"])
        total = st.f_blocks * st.f_frsize
        free = st.f_bavail * st.f_frsize  # what unprivileged writers can still use
        percent = 100.0 * free / total if total else 0.0
        data = {"free_bytes": free, "total_bytes": total, "free_percent": round(percent, 2)}
        summary = f"{percent:.1f}% free ({human_bytes(free)} of {human_bytes(total)}) on {p['path']}"
        problems = []
        if p.get("min_free_percent") is not None and percent < p["min_free_percent"]:
            problems.append(f"minimum {p['min_free_percent']:g}%")
        if p.get("min_free_bytes") is not None and free < p["min_free_bytes"]:
            problems.append(f"minimum {human_bytes(p['min_free_bytes'])}")
        if problems:
            return False, f"only {summary}, {' and '.join(problems)}", data
        return True, summary, data


def parse_meminfo(text):
    """/proc/meminfo text -> {field: bytes}."""
    info = {}
    for line in text.splitlines():
        key, _sep, rest = line.partition(":")
        parts = rest.split()
        if parts and parts[0].isdigit():
            info[key.strip()] = int(parts[0]) * (1024 if parts[1:] == ["kB"] else 1)
    return info


def check_memory(meminfo, min_available_percent):
    """(ok, detail, data) for the memory probe, from parse_meminfo output."""
    if "MemAvailable" not in meminfo or not meminfo.get("MemTotal"):
        raise ProbeError("MemAvailable or MemTotal missing from /proc/meminfo")
    total, available = meminfo["MemTotal"], meminfo["MemAvailable"]
    percent = 100.0 * available / total
    data = {"available_bytes": available, "total_bytes": total, "available_percent": round(percent, 2)}
    summary = f"{percent:.1f}% available ({human_bytes(available)} of {human_bytes(total)})"
    if percent < min_available_percent:
        return False, f"only {summary}, minimum {min_available_percent:g}%", data
    return True, summary, data


class MemoryProbe(Probe):
    type_name = "memory"
    options = {"min_available_percent": {"type": "float", "required": True}}

    def setup(self):
        if not 0 <= self.params["min_available_percent"] <= 100:
            raise ValueError("min_available_percent must be between 0 and 100")

    def run(self, deadline):
        with open("/proc/meminfo", encoding="ascii", errors="replace") as handle:
            meminfo = parse_meminfo(handle.read())
        return check_memory(meminfo, self.params["min_available_percent"])


def check_load(loadavg, cpus, max_load_per_cpu):
    """(ok, detail, data) for the load probe: the 1-minute load average divided by the CPU count."""
    cpus = max(int(cpus or 1), 1)
    per_cpu = loadavg[0] / cpus
    data = {"load": [round(value, 2) for value in loadavg], "cpus": cpus, "load_per_cpu": round(per_cpu, 3)}
    one, five, fifteen = loadavg
    summary = f"load {per_cpu:.2f} per cpu ({one:.2f} {five:.2f} {fifteen:.2f} on {cpus} cpus)"
    if per_cpu > max_load_per_cpu:
        return False, f"{summary}, maximum {max_load_per_cpu:g}", data
    return True, summary, data


class LoadProbe(Probe):
    type_name = "load"
    options = {"max_load_per_cpu": {"type": "float", "required": True}}

    def setup(self):
        if self.params["max_load_per_cpu"] < 0:
            raise ValueError("max_load_per_cpu must not be negative")

    def run(self, deadline):
        return check_load(os.getloadavg(), os.cpu_count(), self.params["max_load_per_cpu"])


class BackupProbe(Probe):
    """The freshness of a host's backups: its newest verified set must be younger than max_age_hours."""

    type_name = "backup"
    options = {
        "backup_dir": {"type": "path", "required": True},
        "max_age_hours": {"type": "float", "required": True},
    }

    def setup(self):
        if self.params["max_age_hours"] <= 0:
            raise ValueError("max_age_hours must be greater than 0")

    def default_name(self):
        return f"backup:{self.params['backup_dir']}"

    def run(self, deadline):
        from ansible_collections.aitbc.ops.plugins.module_utils.backup import list_sets, newest

        folder = self.params["backup_dir"].rstrip("/")
        sets, _leftovers = list_sets(os.path.dirname(folder), os.path.basename(folder))
        good = newest(sets, verified=True)
        limit = self.params["max_age_hours"]
        if good is None:
            latest = newest(sets)
            why = f"newest set {latest['set']} is not verified" if latest else "no backup set"
            return False, f"no verified backup set in {folder} ({why})", {"sets": len(sets)}
        hours = good["age_s"] / 3600.0
        data = {"set": good["set"], "age_hours": round(hours, 2), "sets": len(sets)}
        if hours > limit:
            return False, f"newest verified set {good['set']} is {hours:.1f} h old (max {limit:g} h)", data
        return True, f"newest verified set {good['set']} is {hours:.1f} h old", data


# The registry: probe type name -> class. Adding a type touches this dict (and the module docs).
PROBE_TYPES = {
    "http": HttpProbe,
    "tcp": TcpProbe,
    "redis": RedisProbe,
    "process": ProcessProbe,
    "disk": DiskProbe,
    "memory": MemoryProbe,
    "load": LoadProbe,
    "backup": BackupProbe,
}


# --------------------------------------------------------------------------------------------------
# Validation and running
# --------------------------------------------------------------------------------------------------


def _merged_options():
    """All probe options in one argument_spec (the suboptions of the module's ``probes``). An option
    keeps ``default`` only where every type that has it agrees, and ``required`` only if common."""
    merged = {key: dict(spec) for key, spec in COMMON_OPTIONS.items()}
    defaults = {}
    for cls in PROBE_TYPES.values():
        for key, spec in cls.options.items():
            if key in COMMON_OPTIONS:
                raise AssertionError(f"probe type {cls.type_name} redefines common option {key}")
            shape = {k: v for k, v in spec.items() if k not in ("default", "required")}
            if key in merged and merged[key] != shape:
                raise AssertionError(f"option {key} has different types across probe types")
            merged[key] = shape
            defaults.setdefault(key, []).append(spec.get("default"))
    for key, values in defaults.items():
        if values[0] is not None and all(value == values[0] for value in values):
            merged[key]["default"] = values[0]
    return merged


def argument_spec():
    """The suboptions of the module's ``probes`` option, built from the registry."""
    return _merged_options()


def _label(index, spec):
    name = spec.get("name") if isinstance(spec, dict) else None
    kind = spec.get("type") if isinstance(spec, dict) else None
    return f"probe {index} ({name or kind or 'no type'})"


def build_probe(spec, index=1):
    """Validate one probe dict and return its Probe object; raises ProbeConfigError."""
    label = _label(index, spec)
    if not isinstance(spec, dict):
        raise ProbeConfigError(f"{label}: expected a dictionary, got {_show(spec)}")
    known = ", ".join(sorted(PROBE_TYPES))
    kind = spec.get("type")
    if kind is None or kind == "":
        raise ProbeConfigError(f"{label}: type is required (one of: {known})")
    if kind not in PROBE_TYPES:
        raise ProbeConfigError(f"{label}: unknown probe type '{kind}' (known types: {known})")
    cls = PROBE_TYPES[kind]
    allowed = dict(COMMON_OPTIONS, **cls.options)
    merged = _merged_options()
    params, wrong = {}, []
    for key, value in spec.items():
        if value is None:
            continue
        if key not in allowed:
            # AnsibleModule fills every suboption with its merged default; those are not user input.
            if key in merged and value == merged[key].get("default"):
                continue
            wrong.append(key)
            continue
        option = allowed[key]
        try:
            params[key] = _coerce(value, option.get("type", "str"), option.get("elements"))
        except ValueError as exc:
            raise ProbeConfigError(f"{label}: option {key}: {exc}") from None
    if wrong:
        own = ", ".join(sorted(cls.options)) or "none"
        what = "do not apply to" if all(key in merged for key in wrong) else "are unknown for"
        raise ProbeConfigError(
            f"{label}: option(s) {', '.join(sorted(wrong))} {what} {kind} probes (their own options: {own})"
        )
    for key, option in allowed.items():
        if params.get(key) is None:
            if option.get("required"):
                raise ProbeConfigError(f"{label}: option {key} is required for {kind} probes")
            default = option.get("default")
            params[key] = list(default) if isinstance(default, list) else default
    if params["timeout"] <= 0:
        raise ProbeConfigError(f"{label}: timeout must be greater than 0")
    name = params.pop("name")
    service = params.pop("service")
    timeout = params.pop("timeout")
    params.pop("type")
    if name == "":
        raise ProbeConfigError(f"{label}: name must not be empty")
    try:
        return cls(params, name=name, service=service, timeout=timeout)
    except ValueError as exc:
        raise ProbeConfigError(f"{label}: {exc}") from None


def build_probes(specs):
    """Validate a list of probe dicts; returns Probe objects. Raises ProbeConfigError."""
    if not isinstance(specs, (list, tuple)) or not specs:
        raise ProbeConfigError("probes must be a non-empty list of probe definitions")
    probes, seen = [], {}
    for index, spec in enumerate(specs, 1):
        probe = build_probe(spec, index)
        if probe.name in seen:
            raise ProbeConfigError(
                f"probe {index} ({probe.name}): name '{probe.name}' is already used by probe "
                f"{seen[probe.name]}; give each probe a unique name"
            )
        seen[probe.name] = index
        probes.append(probe)
    return probes


def _run_one(probe, deadline):
    start = time.monotonic()
    try:
        ok, detail, data = probe.run(deadline)
    except Exception as exc:  # a probe failure, whatever raised it
        ok, detail, data = False, describe_error(exc, probe.timeout), {}
    return probe.result(ok, detail, _ms(time.monotonic() - start), data)


def run_probes(probes, grace=DEADLINE_GRACE):
    """Run probes concurrently, each against its own deadline (its timeout from now). Returns result
    dicts in the order given. The wall time is bounded by the largest timeout, not their sum: a probe
    that has not reported by its deadline plus ``grace`` is recorded as timed out and abandoned."""
    start = time.monotonic()
    executor = concurrent.futures.ThreadPoolExecutor(
        max_workers=max(1, min(len(probes), MAX_WORKERS)), thread_name_prefix="probe"
    )
    try:
        futures = [executor.submit(_run_one, probe, start + probe.timeout) for probe in probes]
        results = []
        for probe, future in zip(probes, futures, strict=True):
            wait = start + probe.timeout + grace - time.monotonic()
            try:
                results.append(future.result(timeout=max(wait, 0)))
            except concurrent.futures.TimeoutError:
                future.cancel()
                detail = f"timed out after {probe.timeout:g} s"
                results.append(probe.result(False, detail, _ms(time.monotonic() - start)))
        return results
    finally:
        executor.shutdown(wait=False, cancel_futures=True)


def summarize(results):
    failed = [result["name"] for result in results if not result["ok"]]
    if failed:
        reasons = "; ".join(f"{r['name']} ({r['detail']})" for r in results if not r["ok"])
        msg = f"{len(failed)} of {len(results)} probes failed: {reasons}"
    else:
        msg = f"all {len(results)} probes healthy"
    return {"healthy": not failed, "failed_probes": failed, "msg": msg}


def check_health(specs):
    """Validate and run probe dicts. Returns {results, healthy, failed_probes, msg}.
    Raises ProbeConfigError for bad definitions (before anything runs)."""
    results = run_probes(build_probes(specs))
    report = {"results": results}
    report.update(summarize(results))
    return report

# -*- coding: utf-8 -*-
# Copyright: (c) 2025, aitbc-ops developers
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""The probe base class, its errors, option coercion (argument_spec rules) and deadline helpers."""

from __future__ import annotations

import http.client
import json
import math
import os
import re
import socket
import ssl
import time
from typing import Any, ClassVar

from ansible_collections.aitbc.ops.plugins.module_utils._text import parse_bytes

DEFAULT_TIMEOUT = 5.0

# run() returns (ok, detail, data); a probe's result is a dict of these plus its name, type and timing.
Outcome = tuple[bool, str, dict[str, Any]]
ProbeResult = dict[str, Any]
OptionSpec = dict[str, Any]


class ProbeConfigError(ValueError):
    """Bad probe definitions. The message names the probe and is meant for the user as is."""


class ProbeError(Exception):
    """A probe failed for a reason that the message already describes in plain words."""


# --------------------------------------------------------------------------------------------------
# Small helpers
# --------------------------------------------------------------------------------------------------


def remaining(deadline: float) -> float:
    """Seconds left before ``deadline`` (time.monotonic); raises TimeoutError when it has passed."""
    left = deadline - time.monotonic()
    if left <= 0:
        raise TimeoutError("deadline passed")
    return left


def ms(seconds: float) -> float:
    return round(seconds * 1000.0, 1)


def show(value: Any, limit: int = 60) -> str:
    """A short rendering of a JSON value for messages: strings quoted, the rest as JSON."""
    text = f"'{value}'" if isinstance(value, str) else json.dumps(value, sort_keys=True, default=str)
    return text if len(text) <= limit else text[: limit - 3] + "..."


def describe_error(exc: BaseException, timeout: float) -> str:
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


def coerce(value: Any, kind: str, elements: str | None = None) -> Any:
    """Convert ``value`` to the argument_spec type ``kind``. AnsibleModule already did this for
    module calls; this keeps direct callers (tests, other module_utils) to the same rules."""
    if kind in ("str", "path"):
        if isinstance(value, bool) or not isinstance(value, (str, int, float)):
            raise ValueError("expected a string")
        value = str(value)
        return os.path.expanduser(os.path.expandvars(value)) if kind == "path" else value
    if kind == "int":
        return _coerce_int(value)
    if kind == "float":
        return _coerce_float(value)
    if kind == "bool":
        return _coerce_bool(value)
    if kind == "bytes":
        return parse_bytes(value)
    if kind == "list":
        return _coerce_list(value, elements)
    if kind == "dict":
        if not isinstance(value, dict):
            raise ValueError("expected a dictionary")
        return dict(value)
    return value  # raw


def _coerce_int(value: Any) -> int:
    if isinstance(value, bool):
        raise ValueError("expected an integer")
    if isinstance(value, float) and value.is_integer():
        return int(value)
    if isinstance(value, int):
        return value
    if isinstance(value, str) and re.match(r"^\s*[-+]?\d+\s*$", value):
        return int(value)
    raise ValueError("expected an integer")


def _coerce_float(value: Any) -> float:
    if isinstance(value, bool):
        raise ValueError("expected a number")
    try:
        result = float(value)
    except (TypeError, ValueError):
        raise ValueError("expected a number") from None
    if not math.isfinite(result):
        raise ValueError("expected a finite number")
    return result


def _coerce_bool(value: Any) -> bool:
    if isinstance(value, bool):
        return value
    text = str(value).strip().lower()
    if text in _TRUE:
        return True
    if text in _FALSE:
        return False
    raise ValueError("expected a boolean")


def _coerce_list(value: Any, elements: str | None) -> list[Any]:
    if isinstance(value, str):
        value = [item.strip() for item in value.split(",")]
    elif isinstance(value, (int, float)) and not isinstance(value, bool):
        value = [value]
    if not isinstance(value, (list, tuple)):
        raise ValueError("expected a list")
    if not elements:
        return list(value)
    out = []
    for item in value:
        try:
            out.append(coerce(item, elements))
        except ValueError as exc:
            raise ValueError(f"list item {show(item)}: {exc}") from None
    return out


# --------------------------------------------------------------------------------------------------
# The base class
# --------------------------------------------------------------------------------------------------


class Probe:
    """Base class of probe types.

    Subclasses set ``type_name`` and ``options`` (argument_spec entries; ``default`` and ``required``
    apply to this type only), may extend ``setup()`` to validate and prepare (raise ValueError with a
    short message), and implement ``default_name()`` and ``run(deadline)``.

    ``run`` returns ``(ok, detail, data)``: ``detail`` is short human text, ``data`` a dict of measured
    facts. ``category`` goes into every result as is (``security`` probes set it). It may raise instead
    of returning a failure; the runner turns the exception into a detail.
    Every blocking call must honour ``deadline`` (a time.monotonic() value): use ``remaining``.
    """

    type_name: ClassVar[str] = ""
    options: ClassVar[dict[str, OptionSpec]] = {}
    # What a failure is about: "ops" (restart, page on escalation) or "security" (page a human at once).
    category: ClassVar[str] = "ops"

    def __init__(
        self,
        params: dict[str, Any],
        name: str | None = None,
        service: str | None = None,
        timeout: float = DEFAULT_TIMEOUT,
    ) -> None:
        self.params = params
        self.timeout = timeout
        self.service = service
        self.setup()
        self.name = name or self.default_name()

    def setup(self) -> None:
        """Validate ``self.params`` beyond types and required options; raise ValueError."""

    def default_name(self) -> str:
        return self.type_name

    def run(self, deadline: float) -> Outcome:
        raise NotImplementedError

    def subject(self) -> str:
        """What is probed (URL, host:port, pidfile, path), for reports: the default name minus its type."""
        prefix = self.type_name + ":"
        name = self.default_name()
        return name[len(prefix) :] if name.startswith(prefix) else ""

    def result(
        self, ok: bool, detail: str, latency_ms: float, data: dict[str, Any] | None = None
    ) -> ProbeResult:
        return {
            "name": self.name,
            "type": self.type_name,
            "service": self.service,
            "target": self.subject(),
            "ok": bool(ok),
            "detail": detail,
            "latency_ms": latency_ms,
            "data": data or {},
            "category": self.category,
        }


COMMON_OPTIONS: dict[str, OptionSpec] = {
    # Checked by build_probe (not by AnsibleModule) so that the message names the probe.
    "type": {"type": "str"},
    "name": {"type": "str"},
    "service": {"type": "str"},
    "timeout": {"type": "float", "default": DEFAULT_TIMEOUT},
}

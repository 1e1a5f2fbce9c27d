# -*- coding: utf-8 -*-
# Copyright: (c) 2025, aitbc-ops developers
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""What every diagnostics section shares: the section names and budgets, errors and deadlines."""

from __future__ import annotations

import os
import threading
import time
from collections.abc import Callable
from typing import Any

SECTIONS = ("load", "cpu", "memory", "disk", "sockets", "processes", "logs", "restarts")
SERVICE_SECTIONS = ("processes", "logs", "restarts")

DEFAULT_LOG_LINES = 50
MAX_LOG_LINES = 10000
DEFAULT_SECTION_TIMEOUT = 5.0
# A section still running this long after the deadline is abandoned (its thread is a daemon).
DEADLINE_GRACE = 0.5


class DiagnosticsError(ValueError):
    """Bad options. The message is meant for the user as is."""


def human_duration(seconds: float | None) -> str:
    """3725 -> '1h02m'."""
    if seconds is None:
        return "?"
    seconds = int(seconds)
    if seconds < 60:
        return f"{seconds}s"
    if seconds < 3600:
        return f"{seconds // 60}m{seconds % 60:02d}s"
    if seconds < 86400:
        return f"{seconds // 3600}h{seconds % 3600 // 60:02d}m"
    return f"{seconds // 86400}d{seconds % 86400 // 3600:02d}h"


def percent(part: float, whole: float) -> float:
    return round(100.0 * part / whole, 1) if whole else 0.0


def describe_error(exc: BaseException) -> str:
    """One line for an exception: OSError as 'No such file or directory: /path', others by type."""
    if isinstance(exc, TimeoutError) and str(exc):
        return str(exc)
    if isinstance(exc, OSError) and exc.strerror:
        return f"{exc.strerror}: {exc.filename}" if exc.filename else exc.strerror
    text = str(exc) or type(exc).__name__
    return text if isinstance(exc, (ValueError, RuntimeError)) else f"{type(exc).__name__}: {text}"


def check_deadline(deadline: float) -> None:
    if time.monotonic() > deadline:
        raise TimeoutError("ran out of time")


def call_with_timeout(func: Callable[[], Any], timeout: float) -> Any:
    """func() in a daemon thread; TimeoutError when it does not return within ``timeout`` seconds
    (the thread is left behind, for calls such as statvfs on a dead NFS server)."""
    box: dict[str, Any] = {}

    def target() -> None:
        try:
            box["value"] = func()
        except BaseException as exc:  # noqa: BLE001 - re-raised in the caller
            box["error"] = exc

    thread = threading.Thread(target=target, daemon=True)
    thread.start()
    thread.join(max(0.0, timeout))
    if thread.is_alive():
        raise TimeoutError(f"no answer within {timeout:g} s")
    if "error" in box:
        raise box["error"]
    return box["value"]


def systemd_running() -> bool:
    """True when systemd is the init system (sd_booted)."""
    return os.path.isdir("/run/systemd/system")

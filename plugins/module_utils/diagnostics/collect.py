# -*- coding: utf-8 -*-
# Copyright: (c) 2025, aitbc-ops developers
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Running the sections: each in its own thread against one deadline, and the bundle they make."""

from __future__ import annotations

import socket
import threading
import time
from typing import Any

from ansible_collections.aitbc.ops.plugins.module_utils._text import iso_from_epoch
from ansible_collections.aitbc.ops.plugins.module_utils.diagnostics.base import (
    DEADLINE_GRACE,
    DEFAULT_LOG_LINES,
    DEFAULT_SECTION_TIMEOUT,
    DiagnosticsError,
    describe_error,
)
from ansible_collections.aitbc.ops.plugins.module_utils.diagnostics.logs import LogSections
from ansible_collections.aitbc.ops.plugins.module_utils.diagnostics.options import validate_include
from ansible_collections.aitbc.ops.plugins.module_utils.diagnostics.processes import ProcessSections
from ansible_collections.aitbc.ops.plugins.module_utils.diagnostics.restarts import RestartSections
from ansible_collections.aitbc.ops.plugins.module_utils.diagnostics.summary import summarize
from ansible_collections.aitbc.ops.plugins.module_utils.diagnostics.system import SystemSections


class Collector(SystemSections, ProcessSections, LogSections, RestartSections):
    """One collection run: every section collector over one shared context (``section_<name>`` methods)."""


def _run_section(
    collector: Collector, name: str, deadline: float, section_timeout: float, box: dict[str, Any]
) -> None:
    """Thread body: one section's result (or its error) and duration into ``box``."""
    started = time.monotonic()
    try:
        box["value"] = getattr(collector, f"section_{name}")(deadline)
    except TimeoutError:
        box["value"] = {"error": f"timed out after {section_timeout:g} s"}
    except Exception as exc:  # noqa: BLE001 - a section's failure is its result
        box["value"] = {"error": describe_error(exc)}
    box["ms"] = round((time.monotonic() - started) * 1000, 1)


def run_sections(
    collector: Collector,
    include: list[str],
    section_timeout: float = DEFAULT_SECTION_TIMEOUT,
    grace: float = DEADLINE_GRACE,
) -> tuple[dict[str, Any], dict[str, float]]:
    """Run the sections concurrently. Returns (results, timings_ms); a failed or overdue section's
    result is {"error": "..."}."""
    start = time.monotonic()
    deadline = start + section_timeout
    jobs = []
    for name in include:
        box: dict[str, Any] = {}
        thread = threading.Thread(
            target=_run_section,
            args=(collector, name, deadline, section_timeout, box),
            name=f"diagnostics-{name}",
            daemon=True,
        )
        thread.start()
        jobs.append((name, thread, box))
    results, timings = {}, {}
    for name, thread, box in jobs:
        thread.join(max(0.0, deadline + grace - time.monotonic()))
        if thread.is_alive() or "value" not in box:
            results[name] = {"error": f"timed out after {section_timeout:g} s"}
            timings[name] = round((time.monotonic() - start) * 1000, 1)
        else:
            results[name] = box["value"]
            timings[name] = box["ms"]
    return results, timings


def collect(
    services: Any = (),
    include: list[str] | None = None,
    log_lines: int = DEFAULT_LOG_LINES,
    restarts_file: str | None = None,
    section_timeout: float = DEFAULT_SECTION_TIMEOUT,
    proc: str = "/proc",
    mounts_file: str | None = None,
) -> dict[str, Any]:
    """Collect the bundle. Returns {"diagnostics": {...}, "summary": str, "msg": str}."""
    if (
        not isinstance(section_timeout, (int, float))
        or isinstance(section_timeout, bool)
        or section_timeout <= 0
    ):
        raise DiagnosticsError(f"section_timeout must be a positive number, got {section_timeout!r}")
    sections = validate_include(include)
    collector = Collector(services, log_lines, restarts_file, proc=proc, mounts_file=mounts_file)
    started, t0 = time.time(), time.monotonic()
    results, timings = run_sections(collector, sections, section_timeout)
    diagnostics = {
        "host": socket.gethostname(),
        "collected_at": iso_from_epoch(started),
        "duration_s": round(time.monotonic() - t0, 3),
        "sections": sections,
        "timings_ms": timings,
    }
    diagnostics.update(results)
    failed = [name for name in sections if "error" in results[name]]
    msg = f"collected {len(sections)} section(s) in {diagnostics['duration_s']:.2f} s"
    if failed:
        msg += "; failed: " + ", ".join(f"{n} ({results[n]['error']})" for n in failed)
    return {
        "diagnostics": diagnostics,
        "summary": summarize(diagnostics),
        "msg": msg,
        "failed_sections": failed,
    }

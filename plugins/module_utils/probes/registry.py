# -*- coding: utf-8 -*-
# Copyright: (c) 2025, aitbc-ops developers
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""The probe type registry and the engine: validate probe dicts, run them concurrently, summarize.

To add a probe type, write its class in the module of its family (or a new one), add it to
``PROBE_TYPES`` here and document its options in plugins/modules/health.py (ansible-test
validate-modules checks that the documentation matches ``argument_spec()``, built from this registry).

Entry points: ``check_health(specs)`` validates and runs a list of probe dicts and returns the module
result; ``build_probes(specs)`` and ``run_probes(probes)`` are its two halves.
"""

from __future__ import annotations

import concurrent.futures
import time
from typing import Any

from ansible_collections.aitbc.ops.plugins.module_utils.probes.backup import BackupProbe
from ansible_collections.aitbc.ops.plugins.module_utils.probes.base import (
    COMMON_OPTIONS,
    OptionSpec,
    Probe,
    ProbeConfigError,
    ProbeResult,
    coerce,
    describe_error,
    ms,
    show,
)
from ansible_collections.aitbc.ops.plugins.module_utils.probes.host import (
    DiskProbe,
    LoadProbe,
    MemoryProbe,
    ProcessProbe,
)
from ansible_collections.aitbc.ops.plugins.module_utils.probes.http import HttpProbe
from ansible_collections.aitbc.ops.plugins.module_utils.probes.metric import MetricProbe
from ansible_collections.aitbc.ops.plugins.module_utils.probes.network import RedisProbe, TcpProbe
from ansible_collections.aitbc.ops.plugins.module_utils.probes.security import (
    AuthFailuresProbe,
    FileModeProbe,
    ListenersProbe,
)
from ansible_collections.aitbc.ops.plugins.module_utils.probes.service import ServiceProbe

# How long the runner waits past a probe's deadline for the probe to report its own timeout.
DEADLINE_GRACE = 0.25
MAX_WORKERS = 64

# The registry: probe type name -> class. Adding a type touches this dict (and the module docs).
PROBE_TYPES: dict[str, type[Probe]] = {
    "http": HttpProbe,
    "tcp": TcpProbe,
    "redis": RedisProbe,
    "process": ProcessProbe,
    "disk": DiskProbe,
    "memory": MemoryProbe,
    "load": LoadProbe,
    "backup": BackupProbe,
    "metric": MetricProbe,
    "service": ServiceProbe,
    "listeners": ListenersProbe,
    "file_mode": FileModeProbe,
    "auth_failures": AuthFailuresProbe,
}


# --------------------------------------------------------------------------------------------------
# Validation and running
# --------------------------------------------------------------------------------------------------


def _merged_options() -> dict[str, OptionSpec]:
    """All probe options in one argument_spec (the suboptions of the module's ``probes``). An option
    keeps ``default`` only where every type that has it agrees, and ``required`` only if common."""
    merged = {key: dict(spec) for key, spec in COMMON_OPTIONS.items()}
    defaults: dict[str, list[Any]] = {}
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


def argument_spec() -> dict[str, OptionSpec]:
    """The suboptions of the module's ``probes`` option, built from the registry."""
    return _merged_options()


def _label(index: int, spec: Any) -> str:
    name = spec.get("name") if isinstance(spec, dict) else None
    kind = spec.get("type") if isinstance(spec, dict) else None
    return f"probe {index} ({name or kind or 'no type'})"


def build_probe(spec: Any, index: int = 1) -> Probe:
    """Validate one probe dict and return its Probe object; raises ProbeConfigError."""
    label = _label(index, spec)
    if not isinstance(spec, dict):
        raise ProbeConfigError(f"{label}: expected a dictionary, got {show(spec)}")
    known = ", ".join(sorted(PROBE_TYPES))
    kind = spec.get("type")
    if kind is None or kind == "":
        raise ProbeConfigError(f"{label}: type is required (one of: {known})")
    if kind not in PROBE_TYPES:
        raise ProbeConfigError(f"{label}: unknown probe type '{kind}' (known types: {known})")
    cls = PROBE_TYPES[kind]
    allowed = dict(COMMON_OPTIONS, **cls.options)
    merged = _merged_options()
    params: dict[str, Any] = {}
    wrong: list[str] = []
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
            params[key] = coerce(value, option.get("type", "str"), option.get("elements"))
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


def build_probes(specs: Any) -> list[Probe]:
    """Validate a list of probe dicts; returns Probe objects. Raises ProbeConfigError."""
    if not isinstance(specs, (list, tuple)) or not specs:
        raise ProbeConfigError("probes must be a non-empty list of probe definitions")
    probes: list[Probe] = []
    seen: dict[str, int] = {}
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


def _run_one(probe: Probe, deadline: float) -> ProbeResult:
    start = time.monotonic()
    try:
        ok, detail, data = probe.run(deadline)
    except Exception as exc:  # a probe failure, whatever raised it
        ok, detail, data = False, describe_error(exc, probe.timeout), {}
    return probe.result(ok, detail, ms(time.monotonic() - start), data)


def run_probes(probes: list[Probe], grace: float = DEADLINE_GRACE) -> list[ProbeResult]:
    """Run probes concurrently, each against its own deadline (its timeout from now). Returns result
    dicts in the order given. The wall time is bounded by the largest timeout, not their sum: a probe
    that has not reported by its deadline plus ``grace`` is recorded as timed out and abandoned."""
    start = time.monotonic()
    executor = concurrent.futures.ThreadPoolExecutor(
        max_workers=max(1, min(len(probes), MAX_WORKERS)), thread_name_prefix="probe"
    )
    try:
        futures = [executor.submit(_run_one, probe, start + probe.timeout) for probe in probes]
        results: list[ProbeResult] = []
        for probe, future in zip(probes, futures, strict=True):
            wait = start + probe.timeout + grace - time.monotonic()
            try:
                results.append(future.result(timeout=max(wait, 0)))
            except concurrent.futures.TimeoutError:
                future.cancel()
                detail = f"timed out after {probe.timeout:g} s"
                results.append(probe.result(False, detail, ms(time.monotonic() - start)))
        return results
    finally:
        executor.shutdown(wait=False, cancel_futures=True)


def summarize(results: list[ProbeResult]) -> dict[str, Any]:
    failed = [result["name"] for result in results if not result["ok"]]
    if failed:
        reasons = "; ".join(f"{r['name']} ({r['detail']})" for r in results if not r["ok"])
        msg = f"{len(failed)} of {len(results)} probes failed: {reasons}"
    else:
        msg = f"all {len(results)} probes healthy"
    return {"healthy": not failed, "failed_probes": failed, "msg": msg}


def check_health(specs: Any) -> dict[str, Any]:
    """Validate and run probe dicts. Returns {results, healthy, failed_probes, msg}.
    Raises ProbeConfigError for bad definitions (before anything runs)."""
    results = run_probes(build_probes(specs))
    report: dict[str, Any] = {"results": results}
    report.update(summarize(results))
    return report

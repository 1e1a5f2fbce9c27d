# -*- coding: utf-8 -*-
# Copyright: (c) 2025, aitbc-ops developers
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Validation of the module's options: the services and the sections to collect."""

from __future__ import annotations

from typing import Any

from ansible_collections.aitbc.ops.plugins.module_utils.diagnostics.base import SECTIONS, DiagnosticsError

SERVICE_OPTIONS = ("name", "pidfile", "process", "port", "log_file", "journal_unit", "unit")


def validate_services(services: Any) -> list[dict[str, Any]]:
    """Check the service dicts; returns them with every option present (None when not given)."""
    out, seen = [], set()
    for index, spec in enumerate(services or [], 1):
        if not isinstance(spec, dict):
            raise DiagnosticsError(f"services[{index}] must be a dict, got {type(spec).__name__}")
        unknown = sorted(set(spec) - set(SERVICE_OPTIONS))
        if unknown:
            raise DiagnosticsError(f"services[{index}]: unknown option(s) {', '.join(unknown)}")
        name = spec.get("name")
        if not isinstance(name, str) or not name.strip():
            raise DiagnosticsError(f"services[{index}]: name is required")
        if name in seen:
            raise DiagnosticsError(f"services[{index}]: duplicate service name {name!r}")
        seen.add(name)
        port = spec.get("port")
        if port is not None and (isinstance(port, bool) or not isinstance(port, int) or not 0 < port < 65536):
            raise DiagnosticsError(f"service {name!r}: port must be between 1 and 65535, got {port!r}")
        out.append({key: spec.get(key) for key in SERVICE_OPTIONS})
    return out


def validate_include(include: list[str] | None) -> list[str]:
    if include is None:
        return list(SECTIONS)
    unknown = [s for s in include if s not in SECTIONS]
    if unknown:
        raise DiagnosticsError(
            f"include: unknown section(s) {', '.join(unknown)} (known: {', '.join(SECTIONS)})"
        )
    return [s for s in SECTIONS if s in include]  # fixed order, no duplicates

# -*- coding: utf-8 -*-
# Copyright: (c) 2025, aitbc-ops developers
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""The one place that knows the service backends, in their auto-detection order."""

from __future__ import annotations

from ansible_collections.aitbc.ops.plugins.module_utils.service.base import ServiceBackend
from ansible_collections.aitbc.ops.plugins.module_utils.service.docker import DockerBackend
from ansible_collections.aitbc.ops.plugins.module_utils.service.process import ProcessBackend
from ansible_collections.aitbc.ops.plugins.module_utils.service.spec import ServiceError, ServiceSpec
from ansible_collections.aitbc.ops.plugins.module_utils.service.supervisor import SupervisorBackend
from ansible_collections.aitbc.ops.plugins.module_utils.service.systemd import SystemdBackend
from ansible_collections.aitbc.ops.plugins.module_utils.service.sysv import SysvBackend

# backend=auto asks each in this order: a command or pidfile given means process, then what the host has.
# Adding a backend: its module here, and its name in the service module's backend choices.
BACKEND_CLASSES: tuple[type[ServiceBackend], ...] = (
    ProcessBackend,
    SystemdBackend,
    SupervisorBackend,
    DockerBackend,
    SysvBackend,
)
BACKENDS: dict[str, type[ServiceBackend]] = {cls.name: cls for cls in BACKEND_CLASSES}


def select_backend(spec: ServiceSpec, backend: str = "auto") -> ServiceBackend:
    if backend and backend != "auto":
        cls = BACKENDS.get(backend)
        if cls is None:
            raise ServiceError(f"unknown backend: {backend} (choose from auto, {', '.join(BACKENDS)})")
        return cls(spec)
    for cls in BACKENDS.values():
        if cls.detect(spec):
            return cls(spec)
    raise ServiceError(
        f"cannot detect a backend for service {spec.name}: no command or pidfile given, no systemd unit, "
        f"no supervisor program, no docker container and no /etc/init.d script by that name; set backend"
    )

"""plugins/module_utils/service/registry.py and the backend selection: the registry matches the service
module's documentation, and backend=auto detects the process backend and fails clearly otherwise."""

from __future__ import annotations

import ast
import os
import uuid
from pathlib import Path

import pytest
import yaml
from ansible_collections.aitbc.ops.plugins.module_utils.service.base import ServiceBackend
from ansible_collections.aitbc.ops.plugins.module_utils.service.registry import BACKENDS
from ansible_collections.aitbc.ops.plugins.module_utils.service.spec import ServiceError, ServiceSpec
from ansible_collections.aitbc.ops.plugins.module_utils.service_manage import STATES, select_backend

REPO = Path(__file__).resolve().parents[4]


def test_auto_detection() -> None:
    assert select_backend(ServiceSpec(name="a", command="sleep 1")).name == "process"
    assert select_backend(ServiceSpec(name="a", pidfile="/tmp/a.pid")).name == "process"
    name = f"aitbc-nothing-{uuid.uuid4().hex[:8]}"
    # Only real detection here: this host has no systemd as PID 1 and no such program/container/script.
    if os.path.isdir("/run/systemd/system"):
        pytest.skip("systemd host: a unit lookup decides")
    with pytest.raises(ServiceError) as info:
        select_backend(ServiceSpec(name=name))
    assert info.value.msg.startswith(f"cannot detect a backend for service {name}: ")
    assert "\n" not in info.value.msg


def test_registry_matches_the_module_documentation() -> None:
    source = (REPO / "plugins" / "modules" / "service.py").read_text()
    docs = {
        node.targets[0].id: node.value.value
        for node in ast.parse(source).body
        if isinstance(node, ast.Assign)
        and isinstance(node.targets[0], ast.Name)
        and node.targets[0].id in ("DOCUMENTATION", "RETURN")
    }
    options = yaml.safe_load(docs["DOCUMENTATION"])["options"]
    assert options["backend"]["choices"] == ["auto", *BACKENDS]
    assert options["state"]["choices"] == list(STATES)
    spec_fields = set(ServiceSpec.__dataclass_fields__)
    assert spec_fields <= set(options), spec_fields - set(options)
    returned = yaml.safe_load(docs["RETURN"])["service"]["contains"]
    systemd_only = {"restarts", "result", "active_since"}
    process_only = {"port_held_by"}
    assert set(returned) == {
        "name",
        "backend",
        "active",
        "pid",
        "uptime_s",
        "detail",
        *systemd_only,
        *process_only,
    }
    for name, cls in BACKENDS.items():
        assert issubclass(cls, ServiceBackend) and cls.name == name
        for method in ("detect", "status", "start", "stop", "restart", "reload", "logs"):
            assert callable(getattr(cls, method))

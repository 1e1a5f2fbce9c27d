"""Fault: a host that cannot be reached. The others are still checked, the run exits 3, and the
unreachable host gets an incident of its own."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import yaml
from faultlib import web_site
from ports import free_port

from opsrunner.incidents import IncidentStore
from opsrunner.memory import MemoryStore

pytestmark = pytest.mark.integration


def test_an_unreachable_host_exits_3_and_the_others_are_checked(tmp_path: Path) -> None:
    site = web_site(tmp_path, ["web1"], extra={"heartbeat_failure_threshold": 1})
    data = yaml.safe_load(site.inventory.read_text())
    data["all"]["hosts"]["gone"] = {  # sshd is not listening there: refused at once
        "ansible_host": "127.0.0.1",
        "ansible_port": free_port(),
        "ansible_user": "nobody",
        "aitbc_host_services": [],
    }
    site.inventory.write_text(yaml.safe_dump(data))
    try:
        assert site.run("service", "start", "web", "--limit", "web1").returncode == 0
        done = site.run("heartbeat", "--json", timeout=120)
        assert done.returncode == 3, done.stdout + done.stderr
        beat = json.loads(done.stdout)
        assert {(c["host"], c["service"], c["status"]) for c in beat["checks"] if c["host"] == "web1"} >= {
            ("web1", "web", "ok")
        }
        (incident,) = IncidentStore(MemoryStore(site.memory)).all()
        assert incident.host == "gone" and incident.status == "open"
    finally:
        site.stop_all()

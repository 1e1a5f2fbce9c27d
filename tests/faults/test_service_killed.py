"""Fault: a service killed with SIGKILL. At the default thresholds, with a memory folder of the test's own:
the first failed heartbeat opens nothing, the second opens the incident and restarts the service, the next
healthy one resolves it."""

from __future__ import annotations

import json
import os
import signal
from pathlib import Path

import pytest
from faultlib import web_site

from opsrunner.incidents import IncidentStore
from opsrunner.memory import MemoryStore

pytestmark = pytest.mark.integration


def test_a_killed_service_is_restarted_and_its_incident_resolves(tmp_path: Path) -> None:
    site = web_site(tmp_path, ["web1"])
    try:
        assert site.run("service", "start", "web").returncode == 0
        assert site.run("heartbeat").returncode == 0
        old = site.pid("web1")
        os.kill(old, signal.SIGKILL)

        first = site.run("heartbeat", "--json")
        assert first.returncode == 1 and IncidentStore(MemoryStore(site.memory)).all() == []
        second = site.run("heartbeat", "--json")
        assert second.returncode == 0, second.stdout  # restarted within the run, healthy at its end
        (incident,) = IncidentStore(MemoryStore(site.memory)).all()
        assert incident.restarts == 1 and site.pid("web1") not in (None, old)
        third = site.run("heartbeat", "--json")
        assert third.returncode == 0 and json.loads(third.stdout)["healthy"] is True
        assert IncidentStore(MemoryStore(site.memory)).get(incident.id).status == "resolved"
        assert not (tmp_path / "ai-memory").exists()  # every reader and writer used --memory-dir
    finally:
        site.stop_all()

"""Fault: an operator stops a service on purpose. The heartbeat leaves it stopped (held): no restart, no
incident, not a failure; a start releases it, and a kill after that is the heartbeat's again."""

from __future__ import annotations

import json
import os
import signal
from pathlib import Path

import pytest
from faultlib import web_site

from opsrunner.holds import Holds
from opsrunner.incidents import IncidentStore
from opsrunner.memory import MemoryStore

pytestmark = pytest.mark.integration


def test_a_service_stopped_on_purpose_stays_stopped_until_started(tmp_path: Path) -> None:
    site = web_site(tmp_path, ["web1", "web2"])
    store = MemoryStore(site.memory)
    try:
        assert site.run("service", "start", "web").returncode == 0
        stop = site.run("service", "stop", "web", "--limit", "web1")
        assert stop.returncode == 0, stop.stdout + stop.stderr
        assert "web held on web1" in stop.stdout + stop.stderr
        assert site.pid("web1") is None and site.pid("web2") is not None
        status = site.run("service", "status", "web")
        assert "web1: web held: stopped on purpose" in status.stdout, status.stdout
        listed = json.loads(site.run("service", "status", "web", "--json").stdout)["services"]
        assert {(s["host"], s["held"]) for s in listed} == {("web1", True), ("web2", False)}

        for number in (1, 2):  # to the failure threshold (2): nothing opens, nothing restarts
            beat = site.run("heartbeat", "--json")
            assert beat.returncode == 0, f"heartbeat {number}: {beat.stdout}{beat.stderr}"
            answer = json.loads(beat.stdout)
            assert answer["healthy"] is True
            (web1,) = [c for c in answer["checks"] if c["host"] == "web1" and c["service"] == "web"]
            assert web1["status"] == "held" and "stopped on purpose" in web1["detail"]
        assert site.pid("web1") is None and IncidentStore(store).all() == []

        start = site.run("service", "start", "web", "--limit", "web1")
        assert start.returncode == 0 and "web no longer held on web1" in start.stdout + start.stderr
        assert Holds(store).all() == {}
        os.kill(site.pid("web1"), signal.SIGKILL)
        site.run("heartbeat")
        assert site.run("heartbeat").returncode == 0  # the second failed check opens and restarts
        (incident,) = IncidentStore(store).all()
        assert incident.host == "web1" and incident.restarts == 1 and site.pid("web1") is not None
    finally:
        site.stop_all()

"""Fault: a crash loop. The service dies a few seconds after each start; every restart works, yet when the
restarts spend the budget (heartbeat_max_restarts within heartbeat_restart_window heartbeats) the incident
escalates and exactly one page goes out."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest
import yaml
from faultlib import wait_for, web_site, webhook

from opsrunner.incidents import IncidentStore
from opsrunner.memory import MemoryStore

pytestmark = pytest.mark.integration

LIFETIME_S = 3


def test_a_crash_loop_escalates_although_each_restart_works(tmp_path: Path) -> None:
    short_lived = f"{sys.executable} -c 'import time; time.sleep({LIFETIME_S})'"
    with webhook() as hook:
        settings = {
            "heartbeat_failure_threshold": 1,
            "heartbeat_max_restarts": 2,
            "heartbeat_restart_window": 6,
            "aitbc_alert_urls": [hook.url],
        }
        site = web_site(tmp_path, ["app1"], extra=settings, command=short_lived)
        data = yaml.safe_load(site.inventory.read_text())
        web = data["all"]["vars"]["aitbc_services"]["web"]
        for key in ("probes", "url", "port"):  # only its own state: running or not
            web.pop(key)
        site.inventory.write_text(yaml.safe_dump(data))
        try:
            for _beat in range(2):
                assert wait_for(lambda: site.pid("app1") is None, LIFETIME_S + 10)
                done = site.run("heartbeat", "--json")
                assert done.returncode == 0, done.stdout  # restarted and healthy again within the run
            incidents = IncidentStore(MemoryStore(site.memory)).all()
            assert [i.restarts for i in incidents] == [1, 1]
            assert [i.escalated for i in incidents] == [False, True]
            notes = [entry.text for entry in incidents[1].timeline]
            assert any("crash loop: 2 restart(s) within 6 heartbeats" in note for note in notes), notes
            escalations = [page for page in hook.pages if "escalated" in str(page.get("title", ""))]
            assert len(escalations) == 1, hook.pages
        finally:
            site.stop_all()

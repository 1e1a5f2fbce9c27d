"""Fault: a service that will not start. Remediation is bounded (at most heartbeat_max_restarts restarts
within heartbeat_restart_window heartbeats), then the incident escalates and exactly one page goes out."""

from __future__ import annotations

import os
import sys
from pathlib import Path

import pytest
from faultlib import escalate_twice, web_site, webhook

from opsrunner.incidents import IncidentStore
from opsrunner.memory import MemoryStore

pytestmark = pytest.mark.integration


def test_bounded_restarts_then_one_page(tmp_path: Path) -> None:
    broken = f"{sys.executable} -c 'import sys; sys.exit(3)'"
    with webhook() as hook:
        settings = {
            "heartbeat_failure_threshold": 1,
            "heartbeat_max_restarts": 2,
            "heartbeat_restart_window": 4,
            "heartbeat_restart_timeout": 3,
            "aitbc_alert_urls": [hook.url],
        }
        site = web_site(tmp_path, ["web1"], extra=settings, command=broken)
        codes = [site.run("heartbeat").returncode for _beat in range(4)]
        assert codes == [1, 1, 1, 1]
        (incident,) = IncidentStore(MemoryStore(site.memory)).all()
        assert incident.escalated and incident.restarts == 2, incident.timeline
        escalations = [page for page in hook.pages if "escalated" in str(page.get("title", ""))]
        assert len(escalations) == 1, hook.pages
        assert site.pid("web1") is None and not os.path.exists(site.pidfile("web1"))


def test_paged_on_open_escalated_with_a_ticket_noted_on_repeat_and_resolve(tmp_path: Path) -> None:
    """The file tracker (ai-memory/tickets/): one ticket for the failure, noted when it comes back and when
    each incident resolves."""
    story = escalate_twice(tmp_path / "site", {"backend": "file"})
    kinds = [title.split(":")[0].removeprefix("[aitbc-ops] ") for title in story.titles]
    assert kinds == ["opened", "escalated", "resolved"] * 2, story.titles
    assert story.first.ticket == story.second.ticket == "file:TICKET-0001"
    tickets = sorted((tmp_path / "site" / "memory" / "tickets").glob("TICKET-*.md"))
    assert [t.name for t in tickets] == ["TICKET-0001.md"]
    text = tickets[0].read_text()
    assert story.first.id in text and story.second.id in text
    assert text.count("resolved") >= 2 and "seen again" in text

"""Faults a person must hear of, on a real local site: a security report pages the security route at once
and its service is never restarted; an incident waiting for guidance is not remediated until answered; a
change's maintenance window holds the pages of what fails inside it, and a service still failing after it
pages; the heartbeat's dead-man ping reaches its watcher."""

from __future__ import annotations

import datetime as dt
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest
from faultlib import Site, opsrunner, wait_for, web_site, webhook

from opsrunner.incidents import IncidentStore
from opsrunner.memory import MemoryStore
from opsrunner.windows import Windows

pytestmark = pytest.mark.integration


def kill_web(site: Site, host: str = "web1") -> int:
    pid = site.pid(host)
    assert pid is not None
    site.stop_all()
    assert wait_for(lambda: site.pid(host) is None)
    return pid


def test_a_security_report_pages_its_route_at_once_and_nothing_is_restarted(tmp_path: Path) -> None:
    with webhook() as ops, webhook() as security:
        paging = {"security_urls": [security.url]}
        extra = {"aitbc_alert_urls": [ops.url], "aitbc_paging": paging, "heartbeat_failure_threshold": 1}
        site = web_site(tmp_path, ["web1"], extra=extra)
        try:
            assert site.run("service", "start", "web").returncode == 0
            opened = site.run(
                "incidents", "open", "--host", "web1", "--service", "web", "--category", "security",
                "--summary", "unknown ssh key in authorized_keys", "--by", "scanner-agent",
            )  # fmt: skip
            assert opened.returncode == 0, opened.stderr
            assert [p["title"] for p in security.pages] == [
                "[aitbc-ops] security: unknown ssh key in authorized_keys"
            ]
            assert ops.pages == []
            kill_web(site)
            assert site.run("heartbeat").returncode == 1
            assert site.pid("web1") is None, "a service under a security incident is never restarted"
            (incident,) = IncidentStore(MemoryStore(site.memory)).active().values()
            assert incident.category == "security" and incident.restarts == 0
        finally:
            site.stop_all()


def test_needs_guidance_pauses_remediation_and_the_answer_resumes_it(tmp_path: Path) -> None:
    with webhook() as ops:
        extra = {"aitbc_alert_urls": [ops.url], "heartbeat_failure_threshold": 1}
        site = web_site(tmp_path, ["web1"], extra=extra)
        try:
            assert site.run("service", "start", "web").returncode == 0
            opened = site.run(
                "incidents", "open", "--host", "web1", "--service", "web", "--check", "odd answers",
                "--severity", "warning", "--summary", "web answers with yesterday's data",
            )  # fmt: skip
            incident_id = opened.stdout.split(":")[0]
            asked = site.run("incidents", "ask", incident_id, "restart web or keep it for forensics?")
            assert asked.returncode == 0, asked.stderr
            assert any("needs-guidance" in p["title"] for p in ops.pages), ops.pages
            kill_web(site)
            assert site.run("heartbeat").returncode == 1
            assert site.pid("web1") is None, "no restart while a person is asked"
            answer = ("incidents", "answer", incident_id, "restart it", "--by", "alice")
            answered = opsrunner("--memory-dir", str(site.memory), *answer, cwd=site.root)
            assert answered.returncode == 0, answered.stderr
            site.run("heartbeat")
            assert site.pid("web1") is not None, "the answer resumes remediation"
        finally:
            site.stop_all()


def test_a_maintenance_window_holds_pages_and_a_service_still_failing_after_it_pages(tmp_path: Path) -> None:
    with webhook() as ops:
        extra = {
            "aitbc_alert_urls": [ops.url],
            "heartbeat_failure_threshold": 1,
            "heartbeat_remediate": False,  # the service stays down: only pages are under test
        }
        site = web_site(tmp_path, ["web1"], extra=extra)
        try:
            assert site.run("service", "start", "web").returncode == 0
            windows = Windows(MemoryStore(site.memory))
            window = windows.open("deploy web 2", ["web1"], ["web"], dt.timedelta(hours=1), "deploy")
            kill_web(site)
            assert site.run("heartbeat").returncode == 1
            (incident,) = IncidentStore(MemoryStore(site.memory)).active().values()
            assert ops.pages == [], "inside the window nobody is paged"
            assert any("page held" in t.text for t in incident.timeline), incident.timeline
            windows.close(window.id)
            assert site.run("heartbeat").returncode == 1
            titles = [p["title"] for p in ops.pages]
            assert titles and titles[0].startswith("[aitbc-ops] opened"), titles
        finally:
            site.stop_all()


@contextmanager
def ping_receiver() -> Iterator[tuple[str, list[bytes]]]:
    """A healthchecks-like watcher: records each POSTed body."""
    bodies: list[bytes] = []

    class Handler(BaseHTTPRequestHandler):
        def do_POST(self) -> None:  # noqa: N802 - http.server's name
            bodies.append(self.rfile.read(int(self.headers.get("Content-Length", 0))))
            self.send_response(200)
            self.end_headers()

        def log_message(self, *_args: object) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}/ping/TOKEN123", bodies
    finally:
        server.shutdown()
        server.server_close()


def test_the_heartbeat_pings_its_dead_man_watcher(tmp_path: Path) -> None:
    with ping_receiver() as (url, bodies):
        site = web_site(tmp_path, ["web1"], extra={"aitbc_heartbeat_ping_url": url})
        try:
            assert site.run("service", "start", "web").returncode == 0
            assert site.run("heartbeat").returncode == 0
            kill_web(site)
            site.run("heartbeat", "--no-remediate")
            assert bodies == [b"ok", b"fail"]
            daily = "".join(p.read_text() for p in (site.memory / "daily").glob("*.md"))
            assert "dead-man ping to http://127.0.0.1" in daily and "TOKEN123" not in daily
        finally:
            site.stop_all()

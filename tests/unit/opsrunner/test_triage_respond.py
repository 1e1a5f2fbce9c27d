"""Reports become incident work (triage), incident changes reach people (respond), and the heartbeat
resolves a reported incident only when the reporter and our probes agree: real memory folders, a real
recorder, and a real local webhook for pages."""

from __future__ import annotations

import datetime as dt
import json
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest

from opsrunner.heartbeat import HeartbeatConfig, HeartbeatHooks, restart_plan
from opsrunner.incidents import Incident, IncidentStore
from opsrunner.memory import MemoryStore, utcnow
from opsrunner.recorder import Recorder
from opsrunner.redact import Redactor
from opsrunner.reports import Report
from opsrunner.respond import PagingPolicy, PolicyError, Responder
from opsrunner.triage import take_report


def report(**changes: Any) -> Report:
    values: dict[str, Any] = {
        "source": "alertmanager",
        "host": "h1",
        "service": "web",
        "check": "InstanceDown",
        "summary": "web is down",
        "fingerprint": "fp1",
    }
    return Report(**{**values, **changes})


# -- triage ------------------------------------------------------------------------------------------


def test_a_firing_report_opens_and_its_repeats_change_nothing(tmp_path: Path) -> None:
    store = MemoryStore(tmp_path)
    first = take_report(store, report())
    assert first is not None and first.kind == "opened"
    assert first.incident.source == "alertmanager" and first.incident.fingerprints == ["fp1"]
    assert "acknowledged by ops" in first.incident.timeline[-1].text
    again = take_report(store, report())
    assert again is not None and again.kind == "repeated" and again.incident.id == first.incident.id
    assert len(IncidentStore(store).get(first.incident.id).timeline) == len(first.incident.timeline)


def test_another_alert_of_the_same_service_joins_its_incident(tmp_path: Path) -> None:
    store = MemoryStore(tmp_path)
    first = take_report(store, report())
    joined = take_report(store, report(check="HighLatency", fingerprint="fp2", severity="warning"))
    assert joined is not None and joined.kind == "joined" and joined.incident.id == first.incident.id
    assert joined.incident.fingerprints == ["fp1", "fp2"]
    assert len(IncidentStore(store).all()) == 1


def test_a_resolved_report_is_recorded_and_waits_for_our_probes(tmp_path: Path) -> None:
    store = MemoryStore(tmp_path)
    assert take_report(store, report(status="resolved")) is None  # nothing open: nothing to do
    take_report(store, report())
    resolved = take_report(store, report(status="resolved"))
    assert resolved is not None and resolved.kind == "reported-resolved"
    assert resolved.incident.active and resolved.incident.reported == "resolved"


def test_the_dead_man_incident_resolves_on_its_own_word(tmp_path: Path) -> None:
    store = MemoryStore(tmp_path)
    silent = dict(source="intake", host="controller", service="heartbeat", check="heartbeat finished")
    take_report(store, report(**silent, fingerprint="deadman-heartbeat"))
    back = take_report(store, report(**silent, fingerprint="deadman-heartbeat", status="resolved"))
    assert back is not None and back.kind == "resolved" and not back.incident.active


def test_a_security_report_on_an_ops_incident_turns_it_into_security(tmp_path: Path) -> None:
    store = MemoryStore(tmp_path)
    take_report(store, report())
    turned = take_report(store, report(fingerprint="fp9", category="security", summary="odd logins"))
    assert turned is not None and turned.kind == "security" and turned.incident.category == "security"


# -- paging policy -----------------------------------------------------------------------------------


def incident(**changes: Any) -> Incident:
    values: dict[str, Any] = {
        "id": "INC-20261204-001",
        "host": "h1",
        "service": "web",
        "check": "c",
        "summary": "s",
    }
    return Incident(**{**values, **changes})


def test_critical_incidents_page_when_they_open_and_warnings_do_not() -> None:
    policy = PagingPolicy.from_context({"aitbc_alert_urls": "json://127.0.0.1:1/"})
    assert policy.pages("opened", incident())
    assert not policy.pages("opened", incident(severity="warning"))
    assert policy.pages("escalated", incident(severity="warning"))
    assert not policy.pages("restarted", incident())


def test_security_has_its_own_route_and_falls_back_to_ops() -> None:
    context = {"aitbc_alert_urls": ["json://ops/"], "aitbc_paging": {"security_urls": ["json://sec/"]}}
    policy = PagingPolicy.from_context(context)
    assert policy.route(incident(category="security")) == ["json://sec/"]
    assert policy.route(incident()) == ["json://ops/"]
    assert PagingPolicy.from_context({"aitbc_alert_urls": "json://ops/"}).route(incident(category="security"))


@pytest.mark.parametrize(
    ("paging", "message"),
    [
        ({"reminder_interval": -1}, "reminder_interval"),
        ({"open_severities": ["loud"]}, "open_severities"),
        ({"remind": 5}, "unknown setting"),
    ],
)
def test_bad_paging_settings_name_the_setting(paging: dict[str, Any], message: str) -> None:
    with pytest.raises(PolicyError, match=message):
        PagingPolicy.from_context({"aitbc_paging": paging})


def test_reminders_wait_for_the_interval_and_stop_at_acknowledgement() -> None:
    policy = PagingPolicy(urls=["json://x/"], reminder_interval_s=600)
    now = utcnow()
    assert not policy.reminder_due(incident(), now)  # never paged
    paged = incident(paged=now - dt.timedelta(seconds=700))
    assert policy.reminder_due(paged, now)
    assert not policy.reminder_due(incident(paged=now - dt.timedelta(seconds=100)), now)
    assert not policy.reminder_due(incident(paged=paged.paged, acknowledged_by="alice"), now)


# -- pages through a real webhook ----------------------------------------------------------------------


@pytest.fixture
def webhook() -> Iterator[tuple[str, list[dict[str, Any]]]]:
    received: list[dict[str, Any]] = []

    class Handler(BaseHTTPRequestHandler):
        def do_POST(self) -> None:  # noqa: N802 - http.server's name
            body = self.rfile.read(int(self.headers.get("Content-Length", "0")))
            received.append(json.loads(body))
            self.send_response(200)
            self.end_headers()

        def log_message(self, *args: Any) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"json://127.0.0.1:{server.server_address[1]}/", received
    server.shutdown()
    server.server_close()


def test_a_page_records_its_time_and_a_reminder_follows(tmp_path: Path, webhook: Any) -> None:
    url, received = webhook
    store = MemoryStore(tmp_path)
    opened = take_report(store, report())
    assert opened is not None
    details: list[str] = []
    context = {"aitbc_alert_urls": [url], "aitbc_paging": {"reminder_interval": 600}}
    responder = Responder(context, Redactor(), store, details)
    responder("opened", opened.incident, opened.text)
    saved = IncidentStore(store).get(opened.incident.id)
    assert saved.paged is not None and len(received) == 1 and "opened" in received[0]["title"]
    assert responder.remind([saved]) == []  # not yet
    saved.paged = utcnow() - dt.timedelta(seconds=700)
    assert responder.remind([saved]) == [saved]
    assert len(received) == 2 and "reminder" in received[1]["title"]
    IncidentStore(store).acknowledge(saved.id, by="alice")
    assert responder.remind(list(IncidentStore(store).active().values())) == []


# -- the heartbeat and reported incidents --------------------------------------------------------------


def beat(store: MemoryStore, ok: bool, scope: list[str] | None = None) -> HeartbeatHooks:
    recorder = Recorder(store, source="test", playbook="playbooks/heartbeat.yml")
    hooks = HeartbeatHooks(recorder, send_alert=lambda *args: None)
    probe = {
        "name": "web http",
        "type": "http",
        "service": "web",
        "ok": ok,
        "detail": "ok" if ok else "refused",
    }
    labels = {"heartbeat": "check", "failure_threshold": 1, "scope": scope or []}
    res = {"results": [probe], "labels": labels}
    event_data = {"host": "h1", "task": "check", "task_action": "aitbc.ops.health", "res": res}
    recorder.handle({"event": "runner_on_ok", "event_data": event_data})
    stats = {k: {} for k in ("changed", "failures", "dark", "skipped")}
    recorder.handle(
        {"event": "playbook_on_stats", "event_data": {"ok": {"h1": 1}, "processed": {"h1": 1}, **stats}}
    )
    recorder.finish(rc=0)
    return hooks


def test_a_reported_incident_resolves_only_when_the_reporter_and_our_probes_agree(tmp_path: Path) -> None:
    store = MemoryStore(tmp_path)
    opened = take_report(store, report())
    assert opened is not None
    beat(store, ok=True, scope=["web"])  # our probes pass, but the alert still fires
    assert IncidentStore(store).get(opened.incident.id).active
    take_report(store, report(status="resolved"))
    beat(store, ok=False, scope=["web"])  # the alert is resolved, but our probe fails
    assert IncidentStore(store).get(opened.incident.id).active
    beat(store, ok=True, scope=["web"])
    closed = IncidentStore(store).get(opened.incident.id)
    assert not closed.active and "our probes pass" in closed.resolution


def test_a_scoped_assessment_is_not_counted_as_a_heartbeat(tmp_path: Path) -> None:
    store = MemoryStore(tmp_path)
    beat(store, ok=True)
    beat(store, ok=True, scope=["web"])
    state = json.loads(store.path("incidents/.heartbeat-state.json").read_text())
    assert state["sequence"] == 1
    assert len(store.path("incidents/.heartbeat-history.jsonl").read_text().splitlines()) == 1


def test_nothing_is_restarted_while_a_person_is_asked_or_security_is_involved(tmp_path: Path) -> None:
    store = MemoryStore(tmp_path)
    failing = [{"name": "web http", "service": "web", "ok": False}]
    config = HeartbeatConfig(failure_threshold=1)
    assert restart_plan(store, "h1", failing, config) == ["web"]
    opened = take_report(store, report())
    assert opened is not None
    IncidentStore(store).ask(opened.incident.id, "restart it?")
    assert restart_plan(store, "h1", failing, config) == []
    IncidentStore(store).answer(opened.incident.id, "yes")
    assert restart_plan(store, "h1", failing, config) == ["web"]
    take_report(store, report(fingerprint="fp7", category="security"))
    assert restart_plan(store, "h1", failing, config) == []


def test_a_maintenance_window_holds_pages_until_it_closes(tmp_path: Path, webhook: Any) -> None:
    from opsrunner.windows import Windows

    url, received = webhook
    store = MemoryStore(tmp_path)
    window = Windows(store).open("deploy web 2", ["h1"], ["web"], dt.timedelta(hours=1), "deploy")
    opened = take_report(store, report())
    assert opened is not None
    responder = Responder({"aitbc_alert_urls": [url]}, Redactor(), store, [])
    responder("opened", opened.incident, opened.text)
    assert received == [] and "page held" in IncidentStore(store).get(opened.incident.id).timeline[-1].text
    assert responder.held(list(IncidentStore(store).active().values())) == []  # still inside the window
    Windows(store).close(window.id)
    late = responder.held(list(IncidentStore(store).active().values()))
    assert [i.id for i in late] == [opened.incident.id] and len(received) == 1
    assert IncidentStore(store).get(opened.incident.id).paged is not None

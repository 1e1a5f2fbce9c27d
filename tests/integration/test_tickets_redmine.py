"""The Redmine tracker against a real Redmine 5 (Debian's redmine + redmine-sqlite, see redmine.py).

One Redmine serves the module (session fixture; the module is one xdist group, see conftest.py). Each
test uses signatures of its own, so the tests do not depend on each other's tickets.
"""

from __future__ import annotations

import sys
import uuid
from pathlib import Path

import pytest
from redmine import RedmineServer
from redmine import redmine_server as redmine_server  # the session fixture

from opsrunner.memory import MemoryStore
from opsrunner.respond import ticket_signature
from opsrunner.tickets import TicketDesk, TicketRequest, TrackerError, signature_tag, tracker_from_settings
from opsrunner.tickets.base import FAILURE_RE
from opsrunner.tickets.desk import PENDING_FILE
from opsrunner.tickets.redmine import RedmineTracker

pytestmark = pytest.mark.integration


def _failure_id() -> str:
    return "F-" + uuid.uuid4().hex[:8]


def _request(signature: str, incident: str = "INC-20261204-001", body: str = "") -> TicketRequest:
    return TicketRequest(
        signature=signature,
        title="coordinator-api /health failing after 3 restarts",
        body=body or "connection refused on :8011\n## not a heading\n```\nhost text\n```",
        incident=incident,
        failure=signature if FAILURE_RE.match(signature) else "",
    )


def _tracker(server: RedmineServer, **overrides: object) -> RedmineTracker:
    tracker = tracker_from_settings(server.settings(**overrides), MemoryStore("/nonexistent"))
    assert isinstance(tracker, RedmineTracker)
    return tracker


def _journal_notes(server: RedmineServer, issue_id: str) -> list[str]:
    issue = server.api().issue.get(int(issue_id), include=["journals"])
    return [str(journal.notes) for journal in issue.journals if getattr(journal, "notes", "")]


def test_lifecycle_create_find_note_close_reopen(redmine_server: RedmineServer, tmp_path: Path) -> None:
    server = redmine_server
    desk = TicketDesk(MemoryStore(tmp_path / "ai-memory"), _tracker(server))
    signature = _failure_id()

    opened = desk.raise_ticket(_request(signature))
    assert opened.action == "opened", opened.error
    assert opened.ticket is not None and opened.ticket.status == "open"
    ticket_id = opened.ticket.id
    assert opened.ticket.url == f"{server.url}/issues/{ticket_id}"

    issue = server.api().issue.get(int(ticket_id))
    assert str(issue.subject).startswith(f"[aitbc-ops {signature}] coordinator-api /health failing")
    assert f"Signature: {signature}" in issue.description
    assert "Incident: INC-20261204-001" in issue.description  # linked both ways: the incident holds the id
    assert f"Failure: {signature}" in issue.description

    # The same failure again: noted on the same ticket, not a second ticket.
    again = desk.raise_ticket(_request(signature, incident="INC-20261204-002"))
    assert again.action == "noted", again.error
    assert again.ticket is not None and again.ticket.id == ticket_id
    matching = server.api().issue.filter(project_id=server.project, subject=f"~{signature}", status_id="*")
    assert [str(i.id) for i in matching] == [ticket_id]
    notes = _journal_notes(server, ticket_id)
    assert any(n.startswith("seen again:") and "INC-20261204-002" in n for n in notes)

    # The incident resolves for good: closed in Redmine (a closed status), and find still sees it.
    closed = desk.close(ticket_id, "INC-20261204-002 resolved: restarted, healthy for 3 heartbeats")
    assert closed.action == "closed", closed.error
    issue = server.api().issue.get(int(ticket_id))
    assert issue.status.name == "Closed"
    found = desk.tracker.find(signature)
    assert found is not None and found.id == ticket_id and found.status == "closed"

    # A recurrence reopens it (Redmine's default status for the tracker), with a note.
    recurred = desk.raise_ticket(_request(signature, incident="INC-20261205-001"))
    assert recurred.action == "reopened", recurred.error
    assert recurred.ticket is not None and recurred.ticket.id == ticket_id
    issue = server.api().issue.get(int(ticket_id))
    assert issue.status.name == "New"
    assert any(n.startswith("reopened: recurred:") for n in _journal_notes(server, ticket_id))
    assert desk.tracker.find(signature).status == "open"  # type: ignore[union-attr]

    # A plain note from the lead (e.g. the incident was acknowledged) lands as a journal entry.
    assert desk.note(ticket_id, "acknowledged by ops").action == "noted"
    assert "acknowledged by ops" in _journal_notes(server, ticket_id)
    assert not (tmp_path / "ai-memory" / PENDING_FILE).exists()


def test_find_matches_the_whole_tag_only(redmine_server: RedmineServer) -> None:
    tracker = _tracker(redmine_server)
    signature = _failure_id()
    created = tracker.create(_request(signature))
    assert tracker.find(signature[:-1]) is None  # a prefix of a signature is another signature
    longer = _request(f"{signature}0")  # a signature that the tag is a prefix of
    assert tracker.find(longer.signature) is None
    assert tracker.find(signature) == created

    # A long caller signature goes into the subject as a hash token, and is found the same way.
    long_signature = f"t1|coordinator-api|/health {uuid.uuid4().hex}"
    long_ticket = tracker.create(_request(long_signature))
    assert tracker.find(long_signature) == long_ticket
    subject = redmine_server.api().issue.get(int(long_ticket.id)).subject
    assert subject.startswith("[aitbc-ops S-")


def test_host_text_in_a_title_cannot_fake_a_tag(redmine_server: RedmineServer) -> None:
    tracker = _tracker(redmine_server)
    victim = _failure_id()
    spoof = TicketRequest(signature=_failure_id(), title=f"[aitbc-ops {victim}] fake", body="x")
    tracker.create(spoof)
    assert tracker.find(victim) is None


def test_wrong_key_is_pending_then_retried(redmine_server: RedmineServer, tmp_path: Path) -> None:
    server = redmine_server
    store = MemoryStore(tmp_path / "ai-memory")
    wrong_key = "0" * 8 + server.api_key[8:]
    signature = _failure_id()

    bad = _tracker(server, api_key=wrong_key)
    with pytest.raises(TrackerError) as raised:
        bad.find(signature)
    message = str(raised.value)
    assert "401" in message and "\n" not in message
    assert wrong_key not in message and server.api_key[8:] not in message

    outcome = TicketDesk(store, bad).raise_ticket(_request(signature))
    assert outcome.action == "pending" and "401" in outcome.error
    assert outcome.ticket is None and outcome.request is not None
    pending_text = (tmp_path / "ai-memory" / PENDING_FILE).read_text()
    assert signature in pending_text and wrong_key not in pending_text
    note = TicketDesk(store, bad).note("1", "a note that must wait")
    assert note.action == "pending"
    assert [e["kind"] for e in TicketDesk(store, bad).pending()] == ["raise", "note"]

    # Still wrong: both stay, their attempts counted.
    assert [o.action for o in TicketDesk(store, bad).retry_pending()] == ["pending", "pending"]
    assert [e["attempts"] for e in TicketDesk(store, bad).pending()] == [2, 2]

    # The key is right again: the ticket is created, the note is made, nothing is left pending.
    good = TicketDesk(store, _tracker(server))
    first, second = good.retry_pending()
    assert first.action == "opened" and first.ticket is not None, first.error
    assert first.request is not None and first.request.incident == "INC-20261204-001"
    assert second.action == "noted" and second.ticket_id == "1", second.error
    assert good.pending() == []
    assert not (tmp_path / "ai-memory" / PENDING_FILE).exists()
    assert good.tracker.find(signature) == first.ticket
    for path in (tmp_path / "ai-memory").rglob("*"):
        if path.is_file():
            assert server.api_key not in path.read_text(errors="replace")


def test_unknown_project_is_a_tracker_error(redmine_server: RedmineServer) -> None:
    tracker = _tracker(redmine_server, project="no-such-project")
    with pytest.raises(TrackerError, match="404"):
        tracker.create(_request(_failure_id()))


def test_a_status_change_redmine_refuses_is_an_error(redmine_server: RedmineServer) -> None:
    """A Reporter may note but not reopen (Redmine's default workflow): Redmine answers 204 and keeps the
    status, so the tracker reads the issue back and says so."""
    server = redmine_server
    api = server.api()
    login = "dev" + uuid.uuid4().hex[:6]
    user = api.user.create(
        login=login, firstname="Dev", lastname="Eloper", mail=f"{login}@example.invalid", password="x" * 12
    )
    reporter = next(role for role in api.role.all() if role.name == "Reporter")
    api.project_membership.create(project_id=server.project, user_id=user.id, role_ids=[reporter.id])
    key = str(api.user.get(user.id).api_key)  # an admin sees every user's key; Redmine makes it on demand
    admin_tracker = _tracker(server)
    ticket = admin_tracker.create(_request(_failure_id()))
    admin_tracker.close(ticket.id, "fixed")

    reporter_tracker = _tracker(server, api_key=key)
    reporter_tracker.note(ticket.id, "a reporter may note")
    with pytest.raises(TrackerError, match="still 'Closed'") as raised:
        reporter_tracker.reopen(ticket.id, "recurred")
    assert key not in str(raised.value)
    assert admin_tracker.find(ticket.signature).status == "closed"  # type: ignore[union-attr]


def test_an_escalation_opens_a_redmine_ticket_noted_on_repeat_and_resolve(
    redmine_server: RedmineServer, tmp_path: Path
) -> None:
    """End to end through the heartbeat: a service that cannot start is paged on open, escalates after its
    restart budget and opens one Redmine issue; the same failure again notes that issue, and so does each
    resolve."""
    sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "faults"))
    from faultlib import escalate_twice

    story = escalate_twice(tmp_path / "site", redmine_server.settings())
    kinds = [title.split(":")[0].removeprefix("[aitbc-ops] ") for title in story.titles]
    assert kinds == ["opened", "escalated", "resolved"] * 2, story.titles
    assert story.first.ticket == story.second.ticket and story.first.ticket.startswith("redmine:")
    issue_id = story.first.ticket.partition(":")[2]
    tag = signature_tag(ticket_signature(story.first))
    issues = redmine_server.api().issue.filter(
        project_id=redmine_server.project, subject=f"~{tag}", status_id="*"
    )
    assert [str(issue.id) for issue in issues] == [issue_id]
    notes = "\n".join(_journal_notes(redmine_server, issue_id))
    assert story.second.id in notes and notes.count("resolved") >= 2, notes

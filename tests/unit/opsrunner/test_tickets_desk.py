"""The ticket desk: dedup by signature, reopen on recurrence, and a failing tracker that is never fatal."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from opsrunner.memory import MemoryStore
from opsrunner.tickets import (
    PENDING_FILE,
    FileTracker,
    Ticket,
    TicketDesk,
    TicketRequest,
    Tracker,
    TrackerError,
)


class Flaky:
    """A tracker that fails while `down` (as a tracker that is unreachable or refuses the key would), and
    otherwise passes every call to the file tracker."""

    name = "flaky"

    def __init__(self, inner: FileTracker) -> None:
        self.inner = inner
        self.down = True
        self.calls: list[str] = []

    def _check(self, what: str) -> None:
        self.calls.append(what)
        if self.down:
            raise TrackerError(f"redmine http://127.0.0.1:9: {what}: authentication failed (HTTP 401)")

    def find(self, signature: str) -> Ticket | None:
        self._check("find")
        return self.inner.find(signature)

    def create(self, request: TicketRequest) -> Ticket:
        self._check("create")
        return self.inner.create(request)

    def note(self, ticket_id: str, text: str) -> None:
        self._check("note")
        self.inner.note(ticket_id, text)

    def reopen(self, ticket_id: str, text: str) -> None:
        self._check("reopen")
        self.inner.reopen(ticket_id, text)

    def close(self, ticket_id: str, text: str) -> None:
        self._check("close")
        self.inner.close(ticket_id, text)


@pytest.fixture
def store(tmp_path: Path) -> MemoryStore:
    return MemoryStore(tmp_path / "ai-memory")


def request(incident: str = "INC-20261204-001", signature: str = "F-1a2b3c4d") -> TicketRequest:
    return TicketRequest(
        signature=signature,
        title="wallet-daemon cannot start",
        body="exit 1: address in use",
        incident=incident,
        failure="F-1a2b3c4d",
    )


def test_trackers_keep_the_protocol(store: MemoryStore) -> None:
    assert isinstance(FileTracker(store), Tracker)
    assert isinstance(Flaky(FileTracker(store)), Tracker)


def test_dedup_note_then_reopen(store: MemoryStore) -> None:
    desk = TicketDesk(store, FileTracker(store))
    first = desk.raise_ticket(request())
    assert first.action == "opened" and first.ticket is not None and first.ticket_id == "TICKET-0001"
    again = desk.raise_ticket(request("INC-20261204-002"))
    assert (again.action, again.ticket_id) == ("noted", "TICKET-0001")
    assert desk.close("TICKET-0001", "INC-20261204-002 resolved").action == "closed"
    recurred = desk.raise_ticket(request("INC-20261205-001"))
    assert recurred.action == "reopened" and recurred.ticket is not None
    assert recurred.ticket.status == "open" and recurred.ticket.id == "TICKET-0001"
    assert sorted(p.name for p in store.path("tickets").glob("TICKET-*")) == ["TICKET-0001.md"]
    notes = [n.text for n in FileTracker(store).get("TICKET-0001").notes]
    assert notes[1].startswith("seen again: wallet-daemon cannot start (INC-20261204-002, F-1a2b3c4d)")
    assert notes[2] == "closed: INC-20261204-002 resolved"
    assert notes[3].startswith("reopened: recurred: wallet-daemon cannot start (INC-20261205-001")
    assert desk.note("TICKET-0001", "acknowledged").action == "noted"
    other = desk.raise_ticket(request(signature="F-99999999"))
    assert (other.action, other.ticket_id) == ("opened", "TICKET-0002")


def test_a_failing_tracker_is_kept_and_retried_in_order(store: MemoryStore) -> None:
    flaky = Flaky(FileTracker(store))
    desk = TicketDesk(store, flaky)
    outcome = desk.raise_ticket(request())
    assert outcome.action == "pending" and outcome.ticket is None
    assert "401" in outcome.error and outcome.request == request()
    assert desk.note("TICKET-0001", "acknowledged").action == "pending"
    assert desk.close("TICKET-0001", "resolved").action == "pending"
    entries = desk.pending()
    assert [e["kind"] for e in entries] == ["raise", "note", "close"]
    assert entries[0]["request"]["incident"] == "INC-20261204-001" and entries[0]["attempts"] == 1
    lines = store.path(PENDING_FILE).read_text().splitlines()
    assert len(lines) == 3 and all(json.loads(line)["error"] for line in lines)

    # Still down: everything stays, attempts counted.
    assert [o.action for o in desk.retry_pending()] == ["pending"] * 3
    assert [e["attempts"] for e in desk.pending()] == [2, 2, 2]

    # Back: created, noted, closed, in that order; nothing left.
    flaky.down = False
    flaky.calls.clear()
    outcomes = desk.retry_pending()
    assert [o.action for o in outcomes] == ["opened", "noted", "closed"]
    assert outcomes[0].request is not None and outcomes[0].request.incident == "INC-20261204-001"
    assert outcomes[0].ticket_id == "TICKET-0001"
    assert flaky.calls == ["find", "create", "note", "close"]
    assert desk.pending() == [] and not store.path(PENDING_FILE).exists()
    assert FileTracker(store).get("TICKET-0001").status == "closed"


def test_retry_keeps_only_what_still_fails(store: MemoryStore) -> None:
    desk = TicketDesk(store, Flaky(FileTracker(store)))
    desk.raise_ticket(request())
    desk.note("TICKET-0042", "for a ticket that does not exist")
    working = TicketDesk(store, FileTracker(store))
    outcomes = working.retry_pending()
    assert [o.action for o in outcomes] == ["opened", "pending"]
    assert "no such ticket: TICKET-0042" in outcomes[1].error
    left = working.pending()
    assert [(e["kind"], e["ticket_id"], e["attempts"]) for e in left] == [("note", "TICKET-0042", 2)]


def test_entries_added_during_a_retry_are_kept(store: MemoryStore) -> None:
    flaky = Flaky(FileTracker(store))
    desk = TicketDesk(store, flaky)
    desk.raise_ticket(request())

    class Busy(Flaky):
        """Works, but another run keeps a request while this retry is under way. (That run's own desk
        would wait for the desk lock this retry holds, so it keeps the request directly.)"""

        def find(self, signature: str) -> Ticket | None:
            kept = {"kind": "raise", "request": request(signature="F-77777777").to_dict()}
            TicketDesk(store, flaky)._keep(kept, "HTTP 401")
            return super().find(signature)

    busy = Busy(FileTracker(store))
    busy.down = False
    assert [o.action for o in TicketDesk(store, busy).retry_pending()] == ["opened"]
    assert [e["request"]["signature"] for e in desk.pending()] == ["F-77777777"]


def test_broken_pending_lines_are_skipped(store: MemoryStore) -> None:
    desk = TicketDesk(store, Flaky(FileTracker(store)))
    desk.raise_ticket(request())
    path = store.path(PENDING_FILE)
    path.write_text(
        path.read_text() + "not json\n" + json.dumps({"kind": "raise", "id": "x", "request": {}}) + "\n"
    )
    working = TicketDesk(store, FileTracker(store))
    assert [o.action for o in working.retry_pending()] == ["opened"]  # the empty request is dropped
    assert working.pending() == []


def test_a_lock_that_cannot_be_had_is_kept(store: MemoryStore, monkeypatch: pytest.MonkeyPatch) -> None:
    import opsrunner.memory

    monkeypatch.setattr(opsrunner.memory, "LOCK_TIMEOUT_S", 0.2)
    desk = TicketDesk(store, FileTracker(store))
    with store.locked("tickets/.desk"):
        # The memory module reads LOCK_TIMEOUT_S at call time; the held lock times out in the desk.
        other = TicketDesk(MemoryStore(store.root), FileTracker(store))
        outcome = other.raise_ticket(request())
    assert outcome.action == "pending" and "lock" in outcome.error
    assert [o.action for o in desk.retry_pending()] == ["opened"]


def test_secret_looking_text_is_masked_before_it_leaves(store: MemoryStore) -> None:
    leaky = TicketRequest(
        signature="F-1a2b3c4d",
        title="login failed with password=hunter2",
        body="GET http://ops:s3cr3tpw@10.0.0.5/health\nAuthorization: Bearer abcdefghijklmnop",
    )
    TicketDesk(store, Flaky(FileTracker(store))).raise_ticket(leaky)  # kept pending
    desk = TicketDesk(store, FileTracker(store))
    desk.retry_pending()
    desk.note("TICKET-0001", "still failing: password=hunter2")
    for path in store.root.rglob("*"):
        if path.is_file():
            text = path.read_text()
            assert "hunter2" not in text and "s3cr3tpw" not in text and "abcdefghijklmnop" not in text
    assert "<secret>" in (store.path("tickets") / "TICKET-0001.md").read_text()

"""`aitbc_tracker` settings: the file tracker by default, one clear line for a bad value, never the key."""

from __future__ import annotations

import socket
from pathlib import Path

import pytest

from opsrunner.memory import MemoryStore
from opsrunner.tickets import FileTracker, TicketDesk, TicketRequest, TrackerError, tracker_from_settings
from opsrunner.tickets.base import signature_tag, signature_token
from opsrunner.tickets.redmine import RedmineTracker

KEY = "4c1f0b9e2a7d33e8a5b6c7d8e9f0a1b2c3d4e5f6"


@pytest.fixture
def store(tmp_path: Path) -> MemoryStore:
    return MemoryStore(tmp_path / "ai-memory")


def redmine(**overrides: object) -> dict[str, object]:
    return {
        "backend": "redmine",
        "url": "http://127.0.0.1:3300",
        "project": "aitbc-ops",
        "api_key": KEY,
        **overrides,
    }


@pytest.mark.parametrize("settings", [None, {}, {"backend": "file"}, {"backend": None}])
def test_the_file_tracker_is_the_default(settings: dict | None, store: MemoryStore) -> None:
    assert isinstance(tracker_from_settings(settings, store), FileTracker)


def test_redmine_settings(store: MemoryStore, tmp_path: Path) -> None:
    tracker = tracker_from_settings(redmine(timeout="5", tracker_id=1, priority_id="2"), store)
    assert isinstance(tracker, RedmineTracker)
    assert (tracker.settings.timeout, tracker.settings.tracker_id, tracker.settings.priority_id) == (
        5.0,
        1,
        2,
    )
    assert tracker.settings.timeout == 5.0
    key_file = tmp_path / "redmine.key"
    key_file.write_text(KEY + "\n")
    key_file.chmod(0o600)
    from_file = tracker_from_settings(redmine(api_key=None, api_key_file=str(key_file)), store)
    assert isinstance(from_file, RedmineTracker) and from_file.settings.api_key == KEY
    assert tracker_from_settings(redmine(), store).settings.timeout == 10.0  # type: ignore[attr-defined]


@pytest.mark.parametrize(
    ("settings", "message"),
    [
        ("redmine", "aitbc_tracker must be a mapping"),
        ({"backend": "jira"}, "aitbc_tracker.backend: 'jira' is not one of file, redmine"),
        ({"backend": "file", "urll": "x"}, "aitbc_tracker.urll: unknown setting"),
        (redmine(url=None), "aitbc_tracker.url is required for backend redmine"),
        (redmine(url="ftp://x"), "aitbc_tracker.url: expected an http:// or https:// URL"),
        (redmine(project="Bad Project"), "aitbc_tracker.project: 'Bad Project' is not a Redmine project"),
        (redmine(api_key=None), "aitbc_tracker.api_key or api_key_file is required"),
        (redmine(api_key_file="/x"), "aitbc_tracker.api_key and api_key_file: give one, not both"),
        (redmine(api_key="{{ vault_redmine_key }}"), "aitbc_tracker.api_key is an unrendered template"),
        (redmine(api_key=["a"]), "aitbc_tracker.api_key must be a string"),
        (redmine(api_key="two words"), "aitbc_tracker.api_key: empty or not one word"),
        (redmine(timeout="soon"), "aitbc_tracker.timeout must be a number of seconds"),
        (redmine(timeout=0), "aitbc_tracker.timeout must be between 0 and 300 seconds"),
        (redmine(tracker_id="bug"), "aitbc_tracker.tracker_id must be a positive integer"),
        (redmine(priority_id=True), "aitbc_tracker.priority_id must be a positive integer"),
    ],
)
def test_bad_settings_name_the_key(settings: object, message: str, store: MemoryStore) -> None:
    with pytest.raises(ValueError) as raised:
        tracker_from_settings(settings, store)  # type: ignore[arg-type]
    text = str(raised.value)
    assert text.startswith(message) and "\n" not in text and KEY not in text


def test_the_key_file_must_be_private(store: MemoryStore, tmp_path: Path) -> None:
    key_file = tmp_path / "redmine.key"
    key_file.write_text(KEY)
    key_file.chmod(0o644)
    with pytest.raises(ValueError, match=r"api_key_file .* is readable by others \(mode 0644\): chmod 600"):
        tracker_from_settings(redmine(api_key=None, api_key_file=str(key_file)), store)
    with pytest.raises(ValueError, match=r"api_key_file .*: No such file"):
        tracker_from_settings(redmine(api_key=None, api_key_file=str(tmp_path / "none")), store)
    with pytest.raises(ValueError, match="is not a regular file"):
        tracker_from_settings(redmine(api_key=None, api_key_file=str(tmp_path)), store)


def test_signature_tags() -> None:
    assert signature_tag("F-1a2b3c4d") == "[aitbc-ops F-1a2b3c4d]"
    long = signature_token("t1|coordinator-api|/health")
    assert long.startswith("S-") and len(long) == 14
    assert long == signature_token("t1|coordinator-api|/health")
    assert long != signature_token("t1|coordinator-api|/health ")


def test_an_unreachable_redmine_is_a_masked_tracker_error(store: MemoryStore) -> None:
    with socket.socket() as sock:  # a loopback port that nothing listens on
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    url = f"http://admin:{KEY}@127.0.0.1:{port}"
    tracker = tracker_from_settings(redmine(url=url, timeout=3), store)
    with pytest.raises(TrackerError) as raised:
        tracker.find("F-1a2b3c4d")
    text = str(raised.value)
    assert "Connection refused" in text and KEY not in text and "\n" not in text
    outcome = TicketDesk(store, tracker).raise_ticket(TicketRequest("F-1a2b3c4d", "t", "b"))
    assert outcome.action == "pending" and KEY not in outcome.error
    assert KEY not in store.path("tickets", ".pending.jsonl").read_text()

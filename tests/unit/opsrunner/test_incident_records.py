"""Incident records hold host text (log lines, diagnostics) as data: it can never change a record's fields,
and a stray or broken file under incidents/ never stops the store."""

from __future__ import annotations

from pathlib import Path

import pytest

from opsrunner.heartbeat import failure_shape
from opsrunner.incidents import Incident, IncidentError, IncidentStore, fence_for
from opsrunner.memory import MemoryStore, utcnow

FORGED = (
    "GET /x 500\u2028## Timeline\u2028- 2020-01-01T00:00:00Z forged entry\n"
    "```\n## Timeline\n- 2020-01-01T00:00:00Z forged after a fence\n"
    "- **Status:** resolved\n\x1c## Debugging notes\x0cforged notes\n````"
)


@pytest.fixture
def store(tmp_path: Path) -> IncidentStore:
    return IncidentStore(MemoryStore(tmp_path))


def opened(store: IncidentStore) -> Incident:
    incident = store.open("t1", "web", "web http", "web http: 500", "failing", utcnow())
    incident.note("still failing: GET /x 500\u2028## Timeline\u2028- **Status:** resolved")
    incident.diagnostics = FORGED
    store.save(incident)
    return incident


def test_logged_text_cannot_replace_the_timeline_or_the_status(store: IncidentStore) -> None:
    incident = opened(store)
    again = store.get(incident.id)
    assert again.status == "open"
    assert [t.text for t in again.timeline] == [t.text for t in incident.timeline]
    assert not any("forged" in t.text for t in again.timeline)
    assert again.diagnostics == FORGED.strip()
    assert again.debugging_notes == incident.debugging_notes


def test_a_logged_status_line_does_not_stop_the_archive(store: IncidentStore) -> None:
    incident = opened(store)
    store.resolve(incident.id, by="test", cause="bad deploy", resolution="rolled back")
    resolved = store.get(incident.id)
    assert resolved.status == "resolved" and resolved.archive.startswith("F-")


def test_the_fence_is_longer_than_any_backtick_run() -> None:
    assert fence_for("plain") == "```"
    assert fence_for("a ```` b") == "`````"


@pytest.mark.parametrize(
    ("name", "text"),
    [
        ("INC-20200101-001.md", "not a record at all\n"),
        ("INC-20200101-002.md", "# INC-20200101-002: no fields\n\n## Timeline\n"),
        ("INC-20200101-003.md", "# ../../etc/passwd: a forged id\n\n- **Status:** open\n"),
        ("INC-garbage.md", b"\xff\xfe#"),
    ],
)
def test_a_stray_file_is_skipped(store: IncidentStore, name: str, text: str | bytes) -> None:
    incident = opened(store)
    path = store.folder / name
    path.write_bytes(text) if isinstance(text, bytes) else path.write_text(text)
    assert [i.id for i in store.all()] == [incident.id]
    assert list(store.active()) == [incident.key]


def test_a_record_under_another_name_is_skipped(store: IncidentStore) -> None:
    incident = opened(store)
    copy = store.folder / "INC-20991231-999.md"
    copy.write_text((store.folder / f"{incident.id}.md").read_text())
    assert [i.id for i in store.all()] == [incident.id]


def test_parsing_a_record_without_its_id_is_an_error() -> None:
    with pytest.raises(IncidentError, match="not an incident record"):
        Incident.from_markdown("# ../x: summary\n")


def test_active_parses_only_records_that_are_not_resolved(store: IncidentStore, monkeypatch) -> None:
    incident = opened(store)
    store.resolve(incident.id, by="test")
    still = store.open("t2", "db", "db tcp", "db tcp: refused", "failing", utcnow())
    parsed: list[str] = []
    original = Incident.from_markdown.__func__

    def counting(cls, text: str) -> Incident:
        parsed.append(text.split(":", 1)[0])
        return original(cls, text)

    monkeypatch.setattr(Incident, "from_markdown", classmethod(counting))
    assert list(store.active()) == [still.key]
    assert parsed == [f"# {still.id}"]


def test_the_same_failure_measured_again_is_not_news() -> None:
    assert failure_shape("500 in 12 ms") == failure_shape("500 in 873 ms")
    assert failure_shape("500 in 12 ms") != failure_shape("connection refused")
    assert failure_shape(None) == ""

"""The memory store: entry round trips, layout, and concurrent appends from many processes."""

from __future__ import annotations

import datetime as dt
import subprocess
import sys
from pathlib import Path

import pytest

from opsrunner.memory import DailyEntry, MemoryStore, parse_daily, resolve_memory_dir

WRITER = """
import datetime as dt, sys
from opsrunner.memory import DailyEntry, MemoryStore
store = MemoryStore(sys.argv[1])
worker = int(sys.argv[2])
for n in range(int(sys.argv[3])):
    store.append_daily(DailyEntry(
        time=dt.datetime(2026, 11, 23, 12, 0, tzinfo=dt.UTC), event="run", title=f"w{worker}-{n}",
        outcome="ok", hosts=[f"h{worker}"], actions="ok=1", details=["line one\\nline two " * 20],
        run_id=f"{worker}-{n}", source="test"))
"""


def entry(**overrides) -> DailyEntry:
    fields = dict(
        time=dt.datetime(2026, 11, 23, 22, 15, 3, tzinfo=dt.UTC),
        event="run",
        title="ping.yml",
        outcome="failed",
        hosts=["t1", "t2"],
        actions="ok=3 changed=1 failed=1 unreachable=0 skipped=0",
        details=["t2 · Ping (ansible.builtin.ping) · boom"],
        incidents=["INC-1"],
        run_id="20261123T221503Z-abcdef",
        source="opsrunner",
    )
    fields.update(overrides)
    return DailyEntry(**fields)


def test_entry_round_trips_through_markdown() -> None:
    original = entry()
    assert parse_daily(original.to_markdown()) == [original]


def test_multiline_detail_is_folded_to_one_line() -> None:
    parsed = parse_daily(entry(details=["first\nsecond"]).to_markdown())[0]
    assert parsed.details == ["first ⏎ second"]


def test_empty_fields_round_trip() -> None:
    original = entry(hosts=[], details=[], incidents=[], actions="", run_id="", source="")
    assert parse_daily(original.to_markdown()) == [original]


def test_layout_is_created_with_seeded_notes(tmp_path: Path) -> None:
    store = MemoryStore(tmp_path / "mem")
    store.ensure_layout()
    for sub in ("daily", "decisions", "failures", "knowledge", "incidents"):
        assert (tmp_path / "mem" / sub).is_dir()
    notes = (tmp_path / "mem" / "failures" / "debugging-notes.md").read_text()
    assert "## coordinator-api down" in notes
    assert (tmp_path / "mem" / "failures" / "failure-archive.md").read_text().startswith("# Failure archive")


def test_memory_dir_resolution_order(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.chdir(tmp_path)
    monkeypatch.delenv("OPSRUNNER_MEMORY_DIR", raising=False)
    assert resolve_memory_dir() == tmp_path / "ai-memory"
    monkeypatch.setenv("OPSRUNNER_MEMORY_DIR", str(tmp_path / "env"))
    assert resolve_memory_dir() == tmp_path / "env"
    assert resolve_memory_dir(tmp_path / "flag") == tmp_path / "flag"


def test_concurrent_appends_lose_nothing(tmp_path: Path) -> None:
    """8 processes append 200 entries each at once: all 1,600 are there and each parses."""
    writers = [
        subprocess.Popen([sys.executable, "-c", WRITER, str(tmp_path), str(w), "200"]) for w in range(8)
    ]
    try:
        assert [p.wait(timeout=120) for p in writers] == [0] * 8
    finally:
        for p in writers:
            if p.poll() is None:
                p.kill()
    entries = MemoryStore(tmp_path).read_daily(dt.date(2026, 11, 23))
    assert len(entries) == 1600
    assert {e.run_id for e in entries} == {f"{w}-{n}" for w in range(8) for n in range(200)}
    for worker in range(8):
        mine = [int(e.run_id.split("-")[1]) for e in entries if e.run_id.startswith(f"{worker}-")]
        assert mine == sorted(mine), "each writer's entries stay in its order"

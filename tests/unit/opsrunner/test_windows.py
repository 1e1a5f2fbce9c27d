"""Maintenance windows: ids, covering by host and service, close, timeout, a torn state file."""

from __future__ import annotations

import datetime as dt
import json
from pathlib import Path

from opsrunner.memory import MemoryStore, utcnow
from opsrunner.windows import ID_RE, STATE_FILE, MaintenanceWindow, Windows

HOUR = dt.timedelta(hours=1)


def test_open_cover_close(tmp_path: Path) -> None:
    windows = Windows(MemoryStore(tmp_path))
    first = windows.open("deploy web 2", ["web1", "web2"], ["web"], HOUR, "release 2")
    second = windows.open("restore newest", ["db1"], [], HOUR, "")
    assert ID_RE.match(first.id) and first.id.endswith("-001") and second.id.endswith("-002")
    assert first.closes - first.opened == HOUR
    assert windows.covering("web1", "web") == first
    assert windows.covering("web1", "") == first  # a host-level failure (unreachable) is held too
    assert windows.covering("web1", "redis") is None  # another service of the host still pages
    assert windows.covering("web3", "web") is None
    assert windows.covering("db1", "anything") == second  # services [] = all of them
    assert {w.id for w in windows.active()} == {first.id, second.id}

    closed = windows.close(first.id)
    assert closed is not None and closed.closed is not None
    assert windows.covering("web1", "web") is None
    assert [w.id for w in windows.active()] == [second.id]
    assert windows.close(first.id).closed == closed.closed  # closing again keeps the first time
    assert windows.close("MW-20000101-999") is None and windows.close("../etc") is None

    state = json.loads((tmp_path / STATE_FILE).read_text())
    assert [w["id"] for w in state["windows"]] == [first.id, second.id]


def test_a_window_past_its_timeout_counts_as_closed(tmp_path: Path) -> None:
    windows = Windows(MemoryStore(tmp_path))
    window = windows.open("deploy", [], [], dt.timedelta(seconds=30), "")
    assert windows.covering("any", "web") == window  # hosts [] = every host
    later = utcnow() + dt.timedelta(seconds=31)
    assert windows.covering("any", "web", at=later) is None
    assert not window.is_open(later) and window.is_open()
    assert windows.covering("any", "web", at=window.opened - dt.timedelta(seconds=1)) is None


def test_old_closed_windows_are_dropped(tmp_path: Path) -> None:
    store = MemoryStore(tmp_path)
    long_ago = utcnow() - dt.timedelta(days=40)
    old = MaintenanceWindow("MW-20200101-001", "old", [], [], long_ago, long_ago + HOUR, long_ago, "")
    (tmp_path / "plans").mkdir()
    (tmp_path / STATE_FILE).write_text(json.dumps({"windows": [old.to_json()]}))
    assert Windows(store).all() == [old]
    Windows(store).open("new", ["h"], [], HOUR, "")
    assert [w.change for w in Windows(store).all()] == ["new"]


def test_a_torn_state_file_holds_nothing_and_is_replaced(tmp_path: Path) -> None:
    (tmp_path / "plans").mkdir()
    (tmp_path / STATE_FILE).write_text('{"windows": [{"id": ')
    windows = Windows(MemoryStore(tmp_path))
    assert windows.covering("h", "s") is None and windows.active() == []
    window = windows.open("deploy", ["h"], [], HOUR, "")
    assert windows.covering("h", "s") == window


def test_round_trip() -> None:
    now = utcnow()
    window = MaintenanceWindow("MW-20261204-007", "deploy web 2", ["a"], ["web"], now, now + HOUR, None, "r")
    assert MaintenanceWindow.from_json(json.loads(json.dumps(window.to_json()))) == window

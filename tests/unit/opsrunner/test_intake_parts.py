"""Small parts of the intake: the listen address, the dedup window, the spool's round trip and order, and
the dead-man's switch's decisions (opsrunner/intake, opsrunner/cli/intake.py)."""

from __future__ import annotations

import datetime as dt
import json
import os
import time
from pathlib import Path

import pytest

from opsrunner.cli.intake import is_loopback, parse_listen
from opsrunner.incidents import STATE_FILE
from opsrunner.intake.app import RecentKeys
from opsrunner.intake.deadman import DeadMan, deadman_report
from opsrunner.intake.spool import Entry, Segment, Spool, report_to_json
from opsrunner.memory import MemoryStore
from opsrunner.reports import SOURCES, Report
from opsrunner.settings import BadInput


def test_listen_address() -> None:
    assert parse_listen("127.0.0.1:9095") == ("127.0.0.1", 9095)
    assert parse_listen("[::1]:80") == ("::1", 80)
    assert parse_listen("ops.example:9095") == ("ops.example", 9095)
    for bad in ("9095", "127.0.0.1", ":9095", "h:0", "h:70000", "h:x", "::1:80", "[nope]:80"):
        with pytest.raises(BadInput, match="--listen"):
            parse_listen(bad)
    assert is_loopback("127.0.0.2") and is_loopback("::1") and is_loopback("localhost")
    assert not is_loopback("0.0.0.0") and not is_loopback("10.0.0.1") and not is_loopback("ops.example")


def test_recent_keys_window_and_bound() -> None:
    recent = RecentKeys(window=0.2, limit=2)
    recent.add("a")
    assert "a" in recent and "b" not in recent
    recent.add("b")
    recent.add("c")
    assert "a" not in recent and "c" in recent  # the oldest went past the bound
    time.sleep(0.25)
    assert "c" not in recent


def report(n: int) -> Report:
    return Report(source="agent", host=f"h{n}", service="s", check="c", summary=f"s {n}", labels={"k": "v"})


def event_body(n: int) -> bytes:
    return json.dumps(
        {"source": "agent-1", "host": f"h{n}", "service": "s", "check": "c", "summary": "x"}
    ).encode()


NOW = dt.datetime(2026, 12, 5, 1, 2, 3, tzinfo=dt.UTC)


def reports_of(loaded: list[tuple[Segment, list[Report]]]) -> list[list[str]]:
    return [[r.host for r in reports] for _, reports in loaded]


def test_spool_round_trip_in_order_and_private(tmp_path: Path) -> None:
    spool = Spool(tmp_path / "spool", segment_bytes=4096)
    segment = spool.append([Entry.of_report(report(1)), Entry.of_report(report(2))], 2)
    spool.append([Entry("events", event_body(3), NOW)], 1)
    assert oct(segment.path.stat().st_mode & 0o777) == "0o600"
    assert segment.path.stat().st_size == 4096  # made whole at once: a commit writes no metadata
    loaded = Spool(tmp_path / "spool").load()
    assert reports_of(loaded) == [["h1", "h2", "h3"]]
    first = loaded[0][1][0]
    assert first == report(1).__class__(**{**report(1).__dict__, "received": first.received})
    replayed = loaded[0][1][2]  # parsed again from its body, with the time it was received
    assert (replayed.source, replayed.labels, replayed.received) == ("agent", {"sender": "agent-1"}, NOW)


def test_spool_replays_only_the_reports_that_were_new(tmp_path: Path) -> None:
    alerts = [
        {
            "status": "firing",
            "labels": {"alertname": "Down", "instance": f"h{n}:1", "job": "s"},
            "fingerprint": f"f{n}",
        }
        for n in range(3)
    ]
    body = json.dumps({"version": "4", "status": "firing", "alerts": alerts}).encode()
    Spool(tmp_path / "spool").append([Entry("alerts", body, NOW, keep=[0, 2])], 2)
    assert reports_of(Spool(tmp_path / "spool").load()) == [["h0", "h2"]]


def test_a_torn_last_record_is_left_out_and_a_refused_one_set_aside(tmp_path: Path) -> None:
    spool = Spool(tmp_path / "spool")
    segment = spool.append([Entry("events", b'{"source": "a"}', NOW), Entry.of_report(report(1))], 1)
    torn = Entry.of_report(report(2)).encode()
    with segment.path.open("r+b") as out:  # a crash in the middle of the next commit, before its fdatasync
        out.seek(spool.used)
        out.write(torn[: len(torn) // 2])
    assert reports_of(Spool(tmp_path / "spool").load()) == [["h1"]]
    bad = segment.path.with_name(segment.path.name + ".bad")
    assert b'{"source": "a"}' in bad.read_bytes() and bad.stat().st_mode & 0o777 == 0o600


def test_handled_reports_are_skipped_on_replay_and_done_segments_go(tmp_path: Path) -> None:
    spool = Spool(tmp_path / "spool", segment_bytes=600)
    segments = [spool.append([Entry.of_report(report(n))], 1) for n in range(1, 5)]
    assert len({s.path for s in segments}) > 1  # rotated
    first = segments[0]
    spool.handled(first)
    assert not first.path.exists()  # sealed and done: removed
    spool.handled(segments[1])
    spool.save_progress()
    again = Spool(tmp_path / "spool")
    loaded = again.load()
    assert [host for hosts in reports_of(loaded) for host in hosts] == ["h3", "h4"]
    for segment, reports in loaded:
        for _ in reports:
            again.handled(segment)
    assert again.pending() == 0 and again.segment_files() == []


def test_a_new_segment_never_takes_an_old_name(tmp_path: Path) -> None:
    spool = Spool(tmp_path / "spool")
    segment = spool.append([Entry.of_report(report(1))], 1)
    spool.handled(segment)
    spool.save_progress()
    spool.close()
    assert not segment.path.exists() and list(spool.folder.iterdir()) == []  # nothing to replay, no progress
    again = Spool(tmp_path / "spool")
    assert again.load() == []
    assert again.append([Entry.of_report(report(2))], 1).path.name > segment.path.name


def test_spool_files_of_the_earlier_layout_are_replayed(tmp_path: Path) -> None:
    folder = tmp_path / "spool"
    folder.mkdir()
    legacy = folder / "01796436378834969377-23530-00000000.json"
    legacy.write_text(json.dumps([report_to_json(report(7))]))
    spool = Spool(folder)
    ((segment, reports),) = spool.load()
    assert [r.host for r in reports] == ["h7"]
    spool.handled(segment)
    assert not legacy.exists()


def test_recent_keys_survive_a_restart_within_their_window(tmp_path: Path) -> None:
    saved = tmp_path / "recent.json"
    recent = RecentKeys(window=60)
    recent.add("old", time.time() - 120)
    recent.add("a")
    recent.add("b")
    RecentKeys.save(saved, recent.snapshot())
    again = RecentKeys(window=60, limit=1)
    again.load(saved)
    assert "b" in again and "a" not in again and "old" not in again  # the newest within the bound
    saved.write_text("[[1, 2, 3], {]")
    RecentKeys(window=60).load(saved)  # torn: no keys, no error


def test_deadman_fires_once_and_resolves_once(tmp_path: Path) -> None:
    store = MemoryStore(tmp_path)
    state = store.path(STATE_FILE)
    state.parent.mkdir(parents=True)
    state.write_text("{}")
    sent: list[Report] = []
    now = time.time()
    os.utime(state, (now - 100, now - 100))
    man = DeadMan(store, interval=60, emit=sent.append, started=now)
    assert man.period == 6
    assert man.check(now) is None  # 100 s < 2 x 60 s
    os.utime(state, (now - 130, now - 130))
    assert man.check(now) == "firing"
    assert man.check(now) is None and man.check(now + 600) is None  # once
    # A restart remembers that it fired: no second page, and it still resolves.
    man = DeadMan(store, interval=60, emit=sent.append, started=now)
    assert man.check(now + 700) is None
    os.utime(state, (now, now))
    assert man.check(now + 1) == "resolved"
    assert man.check(now + 2) is None
    assert [(r.status, r.fingerprint, r.source) for r in sent] == [
        ("firing", "deadman-heartbeat", "intake"),
        ("resolved", "deadman-heartbeat", "intake"),
    ]
    assert sent[0].summary == "no heartbeat has finished for 2 min"


def test_deadman_without_any_heartbeat_counts_from_the_start(tmp_path: Path) -> None:
    sent: list[Report] = []
    man = DeadMan(MemoryStore(tmp_path), interval=1800, emit=sent.append, started=1000.0)
    assert man.period == 60
    assert man.check(1000.0 + 3500) is None
    assert man.check(1000.0 + 3700) == "firing"
    assert "intake" in SOURCES
    firing = deadman_report("firing", 3700)
    assert (firing.host, firing.service, firing.check, firing.severity, firing.category) == (
        "controller",
        "heartbeat",
        "heartbeat finished",
        "critical",
        "ops",
    )
    assert firing.received <= dt.datetime.now(dt.UTC)

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
from opsrunner.intake.spool import Entry, Spool
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


def test_spool_round_trip_in_order_and_private(tmp_path: Path) -> None:
    spool = Spool(tmp_path / "spool")
    first = spool.write([Entry.of_report(report(1)), Entry.of_report(report(2))])
    spool.write([Entry("events", event_body(3), dt.datetime(2026, 12, 5, 1, 2, 3, tzinfo=dt.UTC))])
    assert oct(first.stat().st_mode & 0o777) == "0o600"
    loaded = Spool(tmp_path / "spool").load()
    assert [[r.host for r in reports] for _, reports in loaded] == [["h1", "h2"], ["h3"]]
    assert loaded[0][1][0] == report(1).__class__(
        **{**report(1).__dict__, "received": loaded[0][1][0].received}
    )
    assert loaded[0][1][0].received.tzinfo is not None
    replayed = loaded[1][1][0]  # parsed again from its body, with the time it was received
    assert (replayed.source, replayed.labels, replayed.received.second) == ("agent", {"sender": "agent-1"}, 3)
    (tmp_path / "spool" / "0-torn.json").write_bytes(b'{"kind":"events","received":"x","size":900}\n{')
    loaded = spool.load()
    assert len(loaded) == 2 and (tmp_path / "spool" / "0-torn.json.bad").exists()
    spool.remove(first)
    spool.remove(first)
    assert len(spool.files()) == 1


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
    spool = Spool(tmp_path / "spool")
    spool.write([Entry("alerts", body, dt.datetime.now(dt.UTC), keep=[0, 2])])
    ((_, reports),) = spool.load()
    assert [r.host for r in reports] == ["h0", "h2"]


def test_a_spooled_request_todays_parser_refuses_is_set_aside(tmp_path: Path) -> None:
    spool = Spool(tmp_path / "spool")
    path = spool.write([Entry("events", b'{"source": "a"}', dt.datetime.now(dt.UTC))])
    assert spool.load() == []
    assert not path.exists() and path.with_name(path.name + ".bad").exists()


def test_a_graceful_stop_records_how_far_the_file_in_hand_got(tmp_path: Path) -> None:
    spool = Spool(tmp_path / "spool")
    first = spool.write([Entry.of_report(report(n)) for n in (1, 2, 3)])
    spool.write([Entry.of_report(report(4))])
    spool.save_progress(first, 2)
    loaded = spool.load()
    assert [[r.host for r in reports] for _, reports in loaded] == [["h3"], ["h4"]]
    assert [len(reports) for _, reports in spool.load()] == [3, 1]  # taken once: a crash replays in full
    spool.save_progress(first, 3)  # all of it: the file goes
    assert [[r.host for r in reports] for _, reports in spool.load()] == [["h4"]]
    assert not first.exists()


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

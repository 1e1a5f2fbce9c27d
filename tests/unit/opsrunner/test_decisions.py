"""Decision records: the Markdown round trip, file names in decisions/, and the recorder hook
(opsrunner/decisions.py) on a Recorder fed hand-built aitbc.ops.decision results.

The action's own validation is tested in tests/unit/plugins/action/test_decision.py."""

from __future__ import annotations

import datetime as dt
import subprocess
import sys
from pathlib import Path

import pytest

from opsrunner.decisions import ACTION, decision_hooks
from opsrunner.memory import Decision, MemoryStore
from opsrunner.recorder import Recorder
from opsrunner.redact import MASK, Redactor

WHEN = dt.datetime(2026, 11, 23, 22, 15, 3, tzinfo=dt.UTC)

WRITER = """
import datetime as dt, sys
from opsrunner.memory import Decision, MemoryStore
store = MemoryStore(sys.argv[1])
for n in range(int(sys.argv[3])):
    store.write_decision(Decision(
        decision="Deploy 1.4.2", date=dt.datetime(2026, 11, 23, 22, 15, 3, tzinfo=dt.UTC), kind="deploy",
        context="x " * 2000, run_id=f"{sys.argv[2]}-{n}"))
"""


def decision(**overrides) -> Decision:
    fields = dict(
        decision="Restore the wallet database from last night's backup",
        date=WHEN,
        kind="restore",
        context="The ledger is corrupt after the disk filled up.\n\n# Not a heading: a line of the text\n"
        "\\ a line that starts with a backslash",
        rationale="The backup is 6 hours old and verified.",
        impact="Wallet operations stop for about 5 minutes.",
        hosts=["t1", "t2"],
        outcome="ok",
        run_id="20261123T221503Z-abcdef",
        details=["backup set: 2026-11-23T000000Z", "sha256: 0f3a"],
    )
    fields.update(overrides)
    return Decision(**fields)


def ev(name: str, **data) -> dict:
    return {"event": name, "event_data": data}


def decision_result(host: str = "localhost", **fields) -> dict:
    values = dict(
        decision="Reset the devnet",
        kind="devnet-reset",
        context="Chain stalled at block 1200.",
        rationale="Faster than a resync.",
        impact="Devnet history is gone.",
        outcome="ok",
        details=["genesis: 2026-11-23"],
    )
    values.update(fields)
    return ev(
        "runner_on_ok",
        host=host,
        task="Record the reset",
        task_action=ACTION,
        res={"changed": False, "decision": values},
    )


def stats(*hosts: str) -> dict:
    ok = dict.fromkeys(hosts, 1)
    empty: dict = {}
    return ev(
        "playbook_on_stats",
        ok=ok,
        changed=empty,
        failures=empty,
        dark=empty,
        skipped=empty,
        rescued=empty,
        ignored=empty,
        processed=ok,
    )


def recorder_for(store: MemoryStore | None, redactor: Redactor | None = None, **kwargs) -> Recorder:
    recorder = Recorder(store, redactor, source="test", playbook="reset.yml", **kwargs)
    decision_hooks(recorder)
    return recorder


# -- the record --------------------------------------------------------------------------------------


def test_decision_round_trips_through_markdown() -> None:
    original = decision()
    text = original.to_markdown()
    assert text.startswith("# Decision: Restore the wallet database from last night's backup\n")
    assert "- **Date:** 2026-11-23T22:15:03Z\n" in text
    assert "- **Hosts:** t1, t2\n" in text
    assert "\n## Context\n" in text and "\n## Details\n\n- backup set: 2026-11-23T000000Z\n" in text
    assert "\n\\# Not a heading" in text  # escaped, so it reads as text, not as a section
    assert Decision.from_markdown(text) == original


def test_empty_fields_round_trip() -> None:
    original = decision(context="", rationale="", impact="", hosts=[], run_id="", details=[])
    text = original.to_markdown()
    assert "## Details" not in text
    assert Decision.from_markdown(text) == original


def test_one_line_fields_are_folded() -> None:
    parsed = Decision.from_markdown(decision(decision="two\nlines", details=["a\nb"]).to_markdown())
    assert (parsed.decision, parsed.details) == ("two ⏎ lines", ["a ⏎ b"])


def test_not_a_decision_record() -> None:
    with pytest.raises(ValueError, match="not a decision record"):
        Decision.from_markdown("# Notes\n\nsomething else\n")
    with pytest.raises(ValueError, match="lacks field Date"):
        Decision.from_markdown("# Decision: x\n\n- **Kind:** deploy\n")


# -- the store ---------------------------------------------------------------------------------------


def test_write_decision_never_overwrites(tmp_path: Path) -> None:
    store = MemoryStore(tmp_path)
    first = decision()
    paths = [store.write_decision(first), store.write_decision(first), store.write_decision(first)]
    stem = "2026-11-23-221503-restore-restore-the-wallet-database-from-last-night-s"
    assert [p.name for p in paths] == [f"{stem}.md", f"{stem}-2.md", f"{stem}-3.md"]
    assert all(p.parent == tmp_path / "decisions" for p in paths)
    assert all(p.read_text() == first.to_markdown() for p in paths)
    assert not list((tmp_path / "decisions").glob(".*"))  # no temporary file left behind


def test_concurrent_writers_get_distinct_files(tmp_path: Path) -> None:
    """6 processes write 20 records each with the same name at once: 120 files, none torn or replaced."""
    writers = [
        subprocess.Popen([sys.executable, "-c", WRITER, str(tmp_path), str(w), "20"]) for w in range(6)
    ]
    try:
        assert [p.wait(timeout=120) for p in writers] == [0] * 6
    finally:
        for p in writers:
            if p.poll() is None:
                p.kill()
    found = MemoryStore(tmp_path).decisions()
    assert sorted(d.run_id for d in found) == sorted(f"{w}-{n}" for w in range(6) for n in range(20))
    assert {d.context for d in found} == {("x " * 2000).strip()}
    assert len(list((tmp_path / "decisions").iterdir())) == 120


def test_decisions_are_read_back_sorted_by_date(tmp_path: Path) -> None:
    store = MemoryStore(tmp_path)
    later = decision(decision="Roll back coordinator-api", kind="rollback", date=WHEN + dt.timedelta(hours=1))
    earlier = decision(
        decision="Deploy coordinator-api 1.4.2", kind="deploy", date=WHEN - dt.timedelta(days=1)
    )
    store.write_decision(later)
    store.write_decision(decision())
    store.write_decision(earlier)
    (tmp_path / "decisions" / "README.md").write_text("# Decisions\n\nKept by people, not parsed.\n")
    assert store.decisions() == [earlier, decision(), later]
    assert MemoryStore(tmp_path / "empty").decisions() == []


# -- the recorder hook -------------------------------------------------------------------------------


def test_hook_writes_one_record_per_result(tmp_path: Path) -> None:
    store = MemoryStore(tmp_path)
    recorder = recorder_for(store)
    recorder.handle(ev("runner_on_ok", host="t1", task="Ping", task_action="ansible.builtin.ping", res={}))
    recorder.handle(decision_result("t1"))
    recorder.handle(decision_result("t2", decision="Reset the devnet again", outcome="failed", details=[]))
    recorder.handle(
        ev("runner_on_failed", host="t3", task="Bad", task_action=ACTION, res={"msg": "kind must be ..."})
    )
    recorder.handle(stats("t1", "t2"))
    record = recorder.finish(rc=0)

    first, second = sorted(store.decisions(), key=lambda d: d.hosts)
    assert first == Decision(
        decision="Reset the devnet",
        date=first.date,
        kind="devnet-reset",
        context="Chain stalled at block 1200.",
        rationale="Faster than a resync.",
        impact="Devnet history is gone.",
        hosts=["t1"],
        outcome="ok",
        run_id=record.run_id,
        details=["genesis: 2026-11-23"],
    )
    assert (second.hosts, second.decision, second.outcome, second.details) == (
        ["t2"],
        "Reset the devnet again",
        "failed",
        [],
    )
    assert record.started <= first.date <= record.finished
    files = sorted(p.name for p in (tmp_path / "decisions").glob("*.md"))
    assert len(files) == 2
    recorded = [d for d in record.details if d.startswith("decision recorded: ")]
    assert sorted(recorded) == [f"decision recorded: decisions/{name}" for name in files]
    [entry] = store.read_daily(record.finished.date())
    assert sorted(d for d in entry.details if d.startswith("decision recorded")) == sorted(recorded)


def test_secrets_never_reach_the_record(tmp_path: Path) -> None:
    store = MemoryStore(tmp_path)
    recorder = recorder_for(store, Redactor(["PLANTED-S3CRET-1"]))
    recorder.handle(
        decision_result(
            context="Rotated HMAC key PLANTED-S3CRET-1 after the leak.",
            details=["old token PLANTED-S3CRET-2"],
        )
    )
    # A secret learned after the result came in (the recorder redacted the event before knowing it).
    recorder.redactor.add("PLANTED-S3CRET-2")
    recorder.handle(stats("localhost"))
    recorder.finish(rc=0)

    [written] = store.decisions()
    assert written.context == f"Rotated HMAC key {MASK} after the leak."
    assert written.details == [f"old token {MASK}"]
    for path in tmp_path.rglob("*"):
        if path.is_file():
            assert "PLANTED-S3CRET" not in path.read_text(errors="replace"), path


def test_check_mode_writes_no_record(tmp_path: Path) -> None:
    store = MemoryStore(tmp_path)
    recorder = recorder_for(store, check_mode=True)
    recorder.handle(decision_result())
    recorder.handle(stats("localhost"))
    record = recorder.finish(rc=0)
    assert store.decisions() == []
    assert not list((tmp_path / "decisions").iterdir())
    assert record.details == ["decision not recorded (check mode): Reset the devnet"]


def test_no_log_decision_is_not_recorded(tmp_path: Path) -> None:
    store = MemoryStore(tmp_path)
    recorder = recorder_for(store)
    event = decision_result(context="hidden")
    event["event_data"]["res"]["_ansible_no_log"] = True
    recorder.handle(event)
    record = recorder.finish(rc=0)
    assert store.decisions() == []
    assert record.details == ["decision not recorded (no_log): localhost · Record the reset"]


def test_runs_without_a_store_write_nothing() -> None:
    recorder = recorder_for(None)
    recorder.handle(decision_result())
    assert recorder.finish(rc=0).details == []

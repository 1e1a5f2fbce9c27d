"""The recorder on hand-built event streams: outcomes, failures, hooks, redaction, exit codes."""

from __future__ import annotations

from pathlib import Path

from opsrunner.memory import MemoryStore
from opsrunner.recorder import Recorder, failure_message
from opsrunner.redact import Redactor


def ev(name: str, **data) -> dict:
    return {"event": name, "event_data": data}


def stats(**per_column) -> dict:
    columns = {
        c: {} for c in ("ok", "changed", "failures", "dark", "skipped", "rescued", "ignored", "processed")
    }
    columns.update(per_column)
    return ev("playbook_on_stats", **columns)


def test_failed_run_is_recorded_once_with_redacted_message(tmp_path: Path) -> None:
    recorder = Recorder(
        MemoryStore(tmp_path), Redactor(["hunter2-secret"]), source="test", playbook="x/site.yml"
    )
    recorder.handle(ev("runner_on_ok", host="a", task="t", task_action="ansible.builtin.ping", res={}))
    recorder.handle(
        ev(
            "runner_on_failed",
            host="b",
            task="Deploy",
            task_action="ansible.builtin.fail",
            res={"msg": "bad token hunter2-secret"},
        )
    )
    recorder.handle(
        ev(
            "runner_on_failed",
            host="a",
            task="Soft",
            task_action="ansible.builtin.fail",
            res={"msg": "ignored"},
            ignore_errors=True,
        )
    )
    recorder.handle(stats(ok={"a": 1}, failures={"b": 1}, ignored={"a": 1}, processed={"a": 1, "b": 1}))
    record = recorder.finish(rc=2)
    assert (record.outcome, record.exit_code, record.playbook) == ("failed", 1, "site.yml")
    assert [f.describe() for f in record.failures] == [
        "b · Deploy (ansible.builtin.fail) · bad token ********"
    ]
    [entry] = MemoryStore(tmp_path).read_daily(record.finished.date())
    assert entry.details == ["b · Deploy (ansible.builtin.fail) · bad token ********"]
    assert recorder.finish() is record  # finishing twice writes nothing more
    assert len(MemoryStore(tmp_path).read_daily(record.finished.date())) == 1


def test_outcomes_and_exit_codes() -> None:
    unreachable = Recorder(None, source="t")
    unreachable.handle(
        ev(
            "runner_on_unreachable",
            host="a",
            task="Ping",
            task_action="ping",
            res={"msg": "ssh: connect to host a port 22: Connection refused"},
        )
    )
    unreachable.handle(stats(dark={"a": 1}, processed={"a": 1}))
    assert (unreachable.finish(rc=4).outcome, unreachable.record.exit_code) == ("unreachable", 3)

    parse_error = Recorder(None, source="t")
    assert (parse_error.finish(rc=4).outcome, parse_error.record.exit_code) == ("error", 2)

    canceled = Recorder(None, source="t")
    assert canceled.finish(rc=-15, canceled=True).exit_code == 130


def test_hooks_see_aitbc_results_and_can_add_incidents() -> None:
    recorder = Recorder(None, source="t")
    seen = []
    recorder.result_hooks.append(lambda rec, result: seen.append((result.host, result.action)))
    recorder.finish_hooks.append(lambda rec, record: record.incidents.append("INC-7"))
    recorder.handle(
        ev("runner_on_ok", host="a", task="h", task_action="aitbc.ops.health", res={"healthy": True})
    )
    recorder.handle(ev("runner_on_ok", host="a", task="p", task_action="ansible.builtin.ping", res={}))
    recorder.handle(stats(ok={"a": 2}, processed={"a": 1}))
    record = recorder.finish(rc=0)
    assert seen == [("a", "aitbc.ops.health")]
    assert record.incidents == ["INC-7"] and record.daily_entry().incidents == ["INC-7"]
    assert [r.action for r in record.results_for("aitbc.ops.health")] == ["aitbc.ops.health"]


def test_events_are_redacted_in_place_for_the_artifact_writer() -> None:
    recorder = Recorder(None, Redactor(["pl4nted-value"]), source="t")
    event = ev(
        "runner_on_ok",
        host="a",
        task="t",
        task_action="x",
        res={"stdout": "pl4nted-value", "API_TOKEN": "z1"},
    )
    event["stdout"] = "ok: [a] => pl4nted-value"
    recorder.handle(event)
    assert "pl4nted-value" not in str(event) and event["event_data"]["res"]["API_TOKEN"] == "********"


def test_a_failed_loop_says_which_item_failed_and_why() -> None:
    res = {
        "msg": "One or more items failed",
        "results": [
            {"item": "redis", "failed": False, "msg": "ok"},
            {"item": "coordinator-api", "failed": True, "msg": "cannot start: port 18011 held by pid 7 (x)"},
        ],
    }
    assert failure_message(res) == "coordinator-api: cannot start: port 18011 held by pid 7 (x)"
    assert failure_message({"msg": "One or more items failed", "results": []}) == "One or more items failed"

"""Decision records, controller side: a recorder hook over aitbc.ops.decision results.

A playbook states why it changes something with an `aitbc.ops.decision` task (an action that runs on the
controller and only returns the fields). `decision_hooks(recorder)` registers

- a result hook that collects the run's successful decision results, in the order they came, and
- a finish hook that writes one record per result to decisions/ of the memory store (date = the end of
  the run, hosts = the task's host, run = this run) and adds `decision recorded: decisions/<file>` to
  the run's details.

In check mode nothing is written; the run's details say `decision not recorded (check mode): <title>`.
A `no_log` decision task hides its fields from the recorder too, so it is not recorded either.
The recorder redacted the results already; every text field passes its redactor once more on the way
to disk, so no secret reaches a decision record.
"""

from __future__ import annotations

import datetime as dt

from .memory import Decision, utcnow
from .recorder import KEPT_ACTION_PREFIX, Recorder, RunRecord, TaskResult

ACTION = f"{KEPT_ACTION_PREFIX}decision"


class DecisionHooks:
    """Collects a run's decision results and writes them when the run finishes."""

    def __init__(self, recorder: Recorder) -> None:
        self.results: list[TaskResult] = []
        recorder.result_hooks.append(self.on_result)
        recorder.finish_hooks.append(self.on_finish)

    def on_result(self, recorder: Recorder, result: TaskResult) -> None:
        if result.action != ACTION or result.failed:
            return
        if isinstance(result.result.get("decision"), dict):
            self.results.append(result)
        elif result.result.get("censored"):
            # no_log hid the fields from the recorder too: there is nothing to write.
            recorder.record.details.append(f"decision not recorded (no_log): {result.host} · {result.task}")

    def on_finish(self, recorder: Recorder, record: RunRecord) -> None:
        if not self.results:
            return
        now = utcnow()
        for result in self.results:
            decision = to_decision(recorder, result, record, now)
            if record.check_mode:
                record.details.append(f"decision not recorded (check mode): {decision.decision}")
                continue
            if recorder.store is None:
                continue
            recorder.store.ensure_layout()
            path = recorder.store.write_decision(decision)
            record.details.append(f"decision recorded: {path.relative_to(recorder.store.root).as_posix()}")


def decision_hooks(recorder: Recorder) -> DecisionHooks:
    """Register the decision record hooks on a recorder (every run does)."""
    return DecisionHooks(recorder)


def to_decision(recorder: Recorder, result: TaskResult, record: RunRecord, now: dt.datetime) -> Decision:
    """The Decision one result stands for, every text field redacted."""
    fields = result.result["decision"]
    details = fields.get("details") or []
    if not isinstance(details, list):
        details = [details]

    def text(key: str, default: str = "") -> str:
        value = fields.get(key)
        return recorder.redactor.redact_text(default if value is None else str(value))

    return Decision(
        decision=text("decision"),
        date=now,
        kind=text("kind"),
        context=text("context"),
        rationale=text("rationale"),
        impact=text("impact"),
        hosts=[result.host],
        outcome=text("outcome", "ok") or "ok",
        run_id=record.run_id,
        details=[recorder.redactor.redact_text(str(d)) for d in details if d is not None],
    )

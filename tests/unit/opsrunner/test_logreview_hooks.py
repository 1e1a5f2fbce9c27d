"""opsrunner/logreview.py: the log_review hooks on a Recorder fed a hand-built log_review result (the host
side, plugins/module_utils/log_review.py, is tested in tests/unit/plugins/module_utils/test_log_review.py)."""

from __future__ import annotations

from pathlib import Path

from opsrunner.logreview import PROPOSAL_FOOTER, PROPOSALS, review_hooks
from opsrunner.memory import MemoryStore
from opsrunner.recorder import Recorder
from opsrunner.redact import MASK, Redactor

# ------------------------------------------------------------------------------------------ controller


def log_review_event(host: str, reviews: list[dict]) -> dict:
    return {
        "event": "runner_on_ok",
        "event_data": {
            "host": host,
            "task": "Review new log lines since the last review",
            "task_action": "aitbc.ops.log_review",
            "res": {"changed": True, "reviews": reviews},
        },
    }


SECRET = "s3cr3t-Planted-Value"


def sample_reviews() -> list[dict]:
    sig = {
        "id": "5b0f3c2a9d41",
        "template": "ERROR payment id=<id> failed: <str>",
        "count": 3,
        "examples": [f"2025-05-01 10:00:01 ERROR payment id=42 failed: 'token {SECRET}'"],
    }
    known = {
        "id": "aaaabbbbcccc",
        "template": "ERROR known thing",
        "count": 1,
        "examples": ["ERROR known thing"],
    }
    return [
        {"service": "coordinator-api", "path": "/x/c.log", "new_lines": 120, "errors": 4, "warnings": 1,
         "signatures": [sig, known], "reset": None, "more": False, "error": None},
        {"service": "redis", "path": "/x/r.log", "new_lines": 0, "errors": 0, "warnings": 0, "signatures": [],
         "reset": None, "more": False, "error": "log file not found: /x/r.log"},
    ]  # fmt: skip


def run_review(store: MemoryStore, events: list[dict]):
    recorder = Recorder(store, Redactor([SECRET]), source="test", playbook="playbooks/logs_review.yml")
    review_hooks(recorder)
    for event in events:
        recorder.handle(event)
    recorder.handle(
        {
            "event": "playbook_on_stats",
            "event_data": {"ok": {"t1": 1}, "changed": {"t1": 1}, "processed": {"t1": 1}},
        }
    )
    return recorder.finish(rc=0)


def test_hook_writes_details_and_proposes_new_signatures_once(tmp_path: Path) -> None:
    store = MemoryStore(tmp_path / "ai-memory")
    store.ensure_layout()
    store.append("failures/failure-archive.md", "\n## Known thing\n\n- **Signature id:** aaaabbbbcccc\n")
    # The secret as the event carries it (the recorder masks events on the way in; the hook masks again).
    record = run_review(store, [log_review_event("t1", sample_reviews())])
    assert record.event == "log review"
    assert record.details[:2] == [
        "t1 coordinator-api: 4 errors, 1 warning in 120 new lines",
        "t1 redis: not reviewed (log file not found: /x/r.log)",
    ]
    proposals = store.path(PROPOSALS).read_text()
    assert proposals.count("## ") == 1
    assert "## coordinator-api: `ERROR payment id=<id> failed: <str>`" in proposals
    assert "- **Signature id:** 5b0f3c2a9d41" in proposals and "- **Count:** 3" in proposals
    assert "- **First seen (UTC):** " in proposals and "- **Seen on:** t1 (coordinator-api)" in proposals
    assert PROPOSAL_FOOTER in proposals
    assert "aaaabbbbcccc" not in proposals  # already in the archive
    assert SECRET not in proposals and f"token {MASK}" in proposals
    [entry] = store.read_daily(record.finished.date())
    assert (
        entry.event == "log review"
        and "t1 coordinator-api: 4 errors, 1 warning in 120 new lines" in entry.details
    )

    # Second run with the same signatures: nothing proposed twice.
    run_review(store, [log_review_event("t1", sample_reviews()), log_review_event("t2", sample_reviews())])
    assert store.path(PROPOSALS).read_text() == proposals


def test_secret_in_a_log_line_is_masked_even_when_the_event_was_not(tmp_path: Path) -> None:
    # Hooks may be fed results that bypassed event redaction; the proposal text is masked on its own.
    store = MemoryStore(tmp_path / "ai-memory")
    recorder = Recorder(store, Redactor([SECRET]), source="test", playbook="site.yml")
    review_hooks(recorder)
    recorder.handle(log_review_event("t1", []))
    recorder.record.results[0].result["reviews"] = sample_reviews()  # unredacted
    record = recorder.finish(rc=0)
    text = store.path(PROPOSALS).read_text()
    assert SECRET not in text and MASK in text
    assert record.event == "log review"


def test_other_runs_are_left_alone(tmp_path: Path) -> None:
    store = MemoryStore(tmp_path / "ai-memory")
    recorder = Recorder(store, source="test", playbook="site.yml")
    review_hooks(recorder)
    recorder.handle(
        {
            "event": "runner_on_ok",
            "event_data": {"host": "a", "task": "h", "task_action": "aitbc.ops.health", "res": {}},
        }
    )
    record = recorder.finish(rc=0)
    assert record.event == "run" and record.details == [] and not store.path(PROPOSALS).exists()

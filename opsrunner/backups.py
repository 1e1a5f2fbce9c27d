"""The backup capability's controller side: what backup, verify, prune and restore results mean.

`BackupHooks` is registered on every run (runner and memory callback alike). It turns the results of
`aitbc.ops.backup*` and `aitbc.ops.restore` into daily-memory details, and keeps one incident per host
for failed verification: a failed `backup_verify` opens it (or notes it), a passing one resolves it.
The heartbeat's backup freshness check needs nothing here: it is a probe, and the heartbeat decides it.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from .incidents import Incident, IncidentChange, IncidentStore, settle
from .recorder import Recorder, RunRecord, TaskResult
from .report import size_text
from .respond import record_incident_changes

BACKUP_SERVICE = "backup"
VERIFY_CHECK = "backup verify"


@dataclass
class VerifyOutcome:
    host: str
    ok: bool
    failed: list[str] = field(default_factory=list)
    sets: list[str] = field(default_factory=list)


class BackupHooks:
    def __init__(self, recorder: Recorder) -> None:
        self.recorder = recorder
        self.verifications: list[VerifyOutcome] = []
        self.listings: dict[str, dict[str, Any]] = {}
        self.taken: dict[str, dict[str, Any]] = {}
        recorder.result_hooks.append(self.on_result)
        recorder.finish_hooks.append(self.on_finish)

    def on_result(self, recorder: Recorder, result: TaskResult) -> None:
        action = result.action.rsplit(".", 1)[-1]
        handler = getattr(self, f"_on_{action}", None)
        if handler is not None and not result.result.get("skipped"):
            handler(recorder.record, result)

    def _on_backup(self, record: RunRecord, result: TaskResult) -> None:
        backup = result.result.get("backup") or {}
        if result.failed or not backup.get("set"):
            return
        self.taken[result.host] = backup
        label = f" ({backup['label']})" if backup.get("label") else ""
        record.details.append(
            f"{result.host}: backup set {backup['set']}{label}: {len(backup.get('files') or [])} file(s), "
            f"{size_text(backup.get('bytes') or 0)}"
        )

    def _on_backup_verify(self, record: RunRecord, result: TaskResult) -> None:
        res = result.result
        sets = res.get("sets") or []
        if not sets and not result.failed:
            return
        failed = [str(item) for item in res.get("failed_checks") or []]
        if result.failed and not failed:
            failed = [str(res.get("msg") or "verification failed")]
        outcome = VerifyOutcome(result.host, not result.failed, failed, [str(s.get("set")) for s in sets])
        self.verifications.append(outcome)
        if outcome.ok:
            record.details.append(f"{result.host}: verified {', '.join(outcome.sets)}")

    def _on_backup_prune(self, record: RunRecord, result: TaskResult) -> None:
        deleted = result.result.get("deleted") or []
        leftovers = result.result.get("deleted_leftovers") or []
        if deleted or leftovers:
            record.details.append(
                f"{result.host}: retention deleted {', '.join(deleted + leftovers)}"
                + (" (check mode)" if record.check_mode else "")
            )

    def _on_backup_info(self, record: RunRecord, result: TaskResult) -> None:
        self.listings[result.host] = result.result

    def _on_restore(self, record: RunRecord, result: TaskResult) -> None:
        res = result.result
        # A plan (a task in check mode, such as the restore role's) lists the files too: not a restore.
        if result.failed or record.check_mode or res.get("check_mode") or not res.get("changed"):
            return
        files = ", ".join(str(item.get("file")) for item in res.get("restored") or [])
        into = f" into {res['dest']}" if res.get("dest") else ""
        record.details.append(f"{result.host}: restored {files} from {res.get('set')}{into}")
        aside = [str(path) for path in res.get("set_aside") or []]
        if aside:
            record.details.append(f"{result.host}: stale SQLite files set aside (kept): {', '.join(aside)}")

    def on_finish(self, recorder: Recorder, record: RunRecord) -> None:
        if not self.verifications or record.check_mode:
            return
        redact = recorder.redactor.redact_text

        def decide(incidents: IncidentStore, active: dict[str, Incident]) -> list[IncidentChange]:
            changes = (
                _apply(incidents, active, outcome, redact) for outcome in _per_host(self.verifications)
            )
            return [change for change in changes if change is not None]

        record_incident_changes(recorder, record, decide)


def _per_host(outcomes: list[VerifyOutcome]) -> list[VerifyOutcome]:
    """One outcome per host: failed if any verification of the host failed in this run."""
    merged: dict[str, VerifyOutcome] = {}
    for outcome in outcomes:
        seen = merged.setdefault(outcome.host, VerifyOutcome(outcome.host, True))
        seen.ok = seen.ok and outcome.ok
        seen.failed += outcome.failed
        seen.sets += outcome.sets
    return list(merged.values())


def _apply(
    incidents: IncidentStore,
    active: dict[str, Incident],
    outcome: VerifyOutcome,
    redact: Callable[[str], str],
) -> IncidentChange | None:
    return settle(
        incidents,
        active,
        outcome.host,
        BACKUP_SERVICE,
        VERIFY_CHECK,
        ok=outcome.ok,
        detail=f"{', '.join(outcome.sets)} verified" if outcome.ok else redact("; ".join(outcome.failed)),
        summary=f"{outcome.host} backup verification failing",
        default_cause="damaged backup set",
        resolution="a later set passed verification",
    )

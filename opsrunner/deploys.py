"""The deploy capability's controller side: incidents for automatic rollbacks, and the releases report.

The deploy role labels the release switch it makes when a health gate fails
(`labels: {deploy: automatic-rollback, service: S, version: V}`). `DeployHooks` opens one incident per
host and service for it and alerts, so both adapters (runner and memory callback) behave the same. A
later deploy that passes its gate on that host resolves it.
"""

from __future__ import annotations

import re
from typing import Any

from .failures import DEPLOY_CHECK
from .incidents import Incident, IncidentChange, IncidentStore, settle
from .recorder import Recorder, RunRecord, TaskResult
from .respond import record_incident_changes

# The release module's rule for a version (plugins/module_utils/release.py VERSION_RE; a unit test keeps
# them equal): the CLI checks it before a version becomes a path in the first copy.
VERSION_RE = re.compile(r"\A[A-Za-z0-9][A-Za-z0-9._+-]{0,199}\Z")
# A batch size: a positive number of hosts, or 1% to 100% of them. 0 would mean every host at once.
SERIAL_RE = re.compile(r"\A(?:[1-9][0-9]{0,5}|(?:[1-9][0-9]?|100)%)\Z")

ROLLBACK_LABEL = "automatic-rollback"
DEPLOYED_LABEL = "deployed"


def request_error(version: str, serial: str) -> str | None:
    """Why a deploy request is bad input, or None."""
    if not VERSION_RE.match(version):
        rule = "letters, digits, '.', '_', '+' and '-', starting with a letter or digit"
        return f"bad version {version!r}: {rule}"
    if not SERIAL_RE.match(serial):
        return f"bad --serial {serial!r}: a number of hosts (1 or more) or a percentage (1% to 100%)"
    return None


class DeployHooks:
    def __init__(self, recorder: Recorder) -> None:
        self.events: list[tuple[str, str, dict[str, Any], str]] = []  # (kind, host, labels, text)
        recorder.result_hooks.append(self.on_result)
        recorder.finish_hooks.append(self.on_finish)

    def on_result(self, recorder: Recorder, result: TaskResult) -> None:
        if not result.action.endswith(".release") or result.failed:
            return
        res = result.result
        labels = res.get("labels") or {}
        switched = res.get("switched") or {}
        if not switched or not labels.get("deploy"):
            return
        move = f"{switched.get('from')} -> {switched.get('to')}"
        text = f"{result.host}: {labels.get('service', '?')} switched {move}"
        if labels["deploy"] == ROLLBACK_LABEL:
            text += f" (automatic rollback: {labels.get('reason', 'health gate failed')})"
        recorder.record.details.append(text)
        self.events.append((labels["deploy"], result.host, labels, text))

    def on_finish(self, recorder: Recorder, record: RunRecord) -> None:
        if not self.events or record.check_mode:
            return
        redact = recorder.redactor.redact_text
        failed_hosts = {failure.host for failure in record.failures}

        def decide(incidents: IncidentStore, active: dict[str, Incident]) -> list[IncidentChange]:
            changes = []
            for kind, host, labels, text in self.events:
                if kind == DEPLOYED_LABEL and host in failed_hosts:
                    continue  # switched, then failed its gate: the rollback event tells the rest
                change = _apply(incidents, active, kind, host, labels, redact(text))
                if change is not None:
                    changes.append(change)
            return changes

        record_incident_changes(recorder, record, decide)


def _apply(
    incidents: IncidentStore,
    active: dict[str, Incident],
    kind: str,
    host: str,
    labels: dict[str, Any],
    text: str,
) -> IncidentChange | None:
    if kind not in (DEPLOYED_LABEL, ROLLBACK_LABEL):
        return None
    service = str(labels.get("service") or "?")
    return settle(
        incidents,
        active,
        host,
        service,
        DEPLOY_CHECK,
        ok=kind == DEPLOYED_LABEL,
        detail=text,
        summary=f"{host} deploy of {service} {labels.get('version', '?')} failed and was rolled back",
        cause=str(labels.get("reason") or ""),
        default_cause="a release failed its health gate",
        resolution=f"release {labels.get('version')} deployed and healthy",
        repeat="again",
        detail_in_run=True,  # on_result put the switch in the run's details
    )


def release_rows(record: RunRecord) -> list[dict[str, Any]]:
    """One row per host and deployable service from `aitbc.ops.release_info` loop results."""
    rows = []
    for result in record.results_for("aitbc.ops.release_info"):
        for item in result.result.get("results") or [result.result]:
            if item.get("skipped") or item.get("failed"):
                continue
            history = item.get("history") or []
            last = history[-1] if history else {}
            rows.append(
                {
                    "host": result.host,
                    "service": item.get("item") or "-",
                    "current": item.get("current"),
                    "previous": item.get("previous"),
                    "deployed_at": last.get("at"),
                    "deployed_by": last.get("by"),
                    "releases": [r.get("version") for r in item.get("releases") or []],
                }
            )
    return rows

"""The read tools' work and the incident tools: the same Python each CLI command calls, returning data
(the server masks it and records the call). Runs go through Runner like the CLI's, with the same playbooks,
events and hooks; no tool starts the opsrunner command."""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from .. import diagnose as bundles
from .. import recorder, report
from ..deploys import release_rows
from ..heartbeat import HeartbeatHooks, run_lock
from ..hooks import playbook_event
from ..incidents import STATUSES, Incident, IncidentError, IncidentStore
from ..memory import MemoryStore, utcnow
from ..respond import respond_from_inventory
from ..runner import Runner, RunOutcome, RunRequest
from ..settings import BadInput, Settings
from . import memoryfiles

MEMORY_SHOW_MAX = 200


@dataclass
class Ops:
    settings: Settings
    inventory: Path

    @property
    def store(self) -> MemoryStore:
        return MemoryStore(self.settings.memory_dir)

    # -- runs ------------------------------------------------------------------------------------------

    def request(
        self,
        name: str,
        *,
        limit: str | None = None,
        extra_vars: dict[str, Any] | None = None,
        event: str | None = None,
    ) -> RunRequest:
        """As the CLI's playbook_request: the playbook's event from the hook table unless given."""
        playbook = self.settings.playbook_path(name)
        return RunRequest(
            playbook=playbook,
            inventory=self.inventory,
            limit=limit or None,
            extra_vars=dict(extra_vars or {}),
            event=event or playbook_event(playbook.name),
        )

    def run(self, request: RunRequest) -> RunOutcome:
        """Run it; a configuration mistake, an unknown service or a limit matching no host is bad input."""
        outcome = Runner(self.settings, self.store).run(request)
        record = outcome.record
        if record.config_error is not None:
            raise BadInput(record.config_error)
        message = recorder.first_bad_request(record.failures)
        if message:
            raise BadInput(message)
        if request.limit and not record.hosts and not record.failures:
            raise BadInput(f"limit {request.limit}: no host of the inventory matches it")
        return outcome

    @staticmethod
    def summary(outcome: RunOutcome, **extra: Any) -> dict[str, Any]:
        record = outcome.record
        data = {
            "run_id": record.run_id,
            "outcome": record.outcome,
            "exit_code": record.exit_code,
            "failures": [failure.describe() for failure in record.failures],
            "details": list(record.details),
            "incidents": list(record.incidents),
        }
        data.update(extra)
        return data

    # -- read tools ------------------------------------------------------------------------------------

    def fleet_status(self, limit: str | None = None) -> dict[str, Any]:
        """Every check of a heartbeat, as a look only: no restart, no incident, page or count (read-only)."""
        extra_vars = {"heartbeat_remediate": False, "heartbeat_record": False}
        request = self.request("heartbeat.yml", limit=limit, extra_vars=extra_vars)
        with run_lock(self.store):
            outcome = self.run(request)
        watch = outcome.hooks.get(HeartbeatHooks)
        checks = [
            dict(zip(("host", "service", "status", "detail"), row, strict=True))
            for row in report.heartbeat_rows(watch.hosts)
        ]
        code = 3 if watch.unreachable() else outcome.record.exit_code
        return self.summary(outcome, exit_code=code, healthy=code == 0, checks=checks)

    def backups_list(self, limit: str | None = None) -> dict[str, Any]:
        outcome = self.run(self.request("backups_list.yml", limit=limit))
        return self.summary(outcome, sets=report.backup_set_rows(outcome.record))

    def releases(self, limit: str | None = None) -> dict[str, Any]:
        outcome = self.run(self.request("releases.yml", limit=limit))
        return self.summary(outcome, releases=release_rows(outcome.record))

    def diagnose(
        self, host: str, service: str = "", log_lines: int = bundles.DEFAULT_LOG_LINES
    ) -> dict[str, Any]:
        if not bundles.PLAIN_HOST_RE.match(host):
            raise BadInput(f"diagnose takes one host name, not {host[:60]!r}")
        if not 0 <= log_lines <= 10000:
            raise BadInput("log_lines: 0 to 10000")
        bundles.check_host(host, self.inventory)
        request = self.request(
            "diagnose.yml",
            limit=host,
            extra_vars={bundles.SERVICE_VAR: service, "diagnose_log_lines": log_lines},
        )
        outcome = Runner(self.settings, self.store).run(request)
        bundles.check_input(outcome.record, host, self.inventory)
        taken = outcome.hooks.get(bundles.DiagnoseHooks).bundles
        return self.summary(outcome, bundles=[bundle.to_json() for bundle in taken])

    def logs_review(self, limit: str | None = None) -> dict[str, Any]:
        return self.summary(self.run(self.request("logs_review.yml", limit=limit)))

    def environment(self) -> str:
        path = self.store.path("knowledge", "environment.md")
        if not path.is_file():
            return "no knowledge/environment.md yet: `opsrunner env sync` writes it from the inventory"
        return path.read_text(errors="replace")

    def incidents_list(self, status: str = "") -> list[dict[str, Any]]:
        if status and status not in (*STATUSES, "active"):
            raise BadInput(f"status {status[:40]!r}: one of {', '.join((*STATUSES, 'active'))}")
        found = IncidentStore(self.store).all()
        if status == "active":
            found = [i for i in found if i.active]
        elif status:
            found = [i for i in found if i.status == status]
        return [i.to_dict() for i in found]

    def incident_show(self, incident_id: str) -> dict[str, Any]:
        return incident_action(lambda: IncidentStore(self.store).get(incident_id)).to_dict()

    def memory_show(self, day: str = "", last: int = 20) -> list[dict[str, Any]]:
        try:
            date = dt.date.fromisoformat(day) if day else utcnow().date()
        except ValueError:
            raise BadInput(f"bad date {day[:40]!r}: use YYYY-MM-DD") from None
        entries = self.store.read_daily(date)
        count = max(1, min(last or MEMORY_SHOW_MAX, MEMORY_SHOW_MAX))
        return [report.entry_json(entry) for entry in entries[-count:]]

    def memory_search(self, query: str, max_matches: int = 50) -> list[dict[str, Any]]:
        try:
            found = memoryfiles.search(self.store, query, max_matches)
        except memoryfiles.MemoryNameError as exc:
            raise BadInput(str(exc)) from None
        return [{"uri": m.uri, "line": m.line, "text": m.text} for m in found]

    # -- incident tools (as opsrunner incidents ack|note|ask|answer|open) -------------------------------

    def incident_ack(self, incident_id: str, note: str, by: str) -> dict[str, Any]:
        return incident_action(
            lambda: IncidentStore(self.store).acknowledge(incident_id, note, by=by)
        ).to_dict()

    def incident_note(self, incident_id: str, text: str, by: str) -> dict[str, Any]:
        return incident_action(lambda: IncidentStore(self.store).add_note(incident_id, text, by=by)).to_dict()

    def incident_ask(self, incident_id: str, question: str, by: str) -> dict[str, Any]:
        incident = incident_action(lambda: IncidentStore(self.store).ask(incident_id, question, by=by))
        sent = self.respond("needs-guidance", incident, f"{incident.id} needs guidance: {question}")
        return {**incident.to_dict(), "responses": sent}

    def incident_answer(self, incident_id: str, text: str, by: str) -> dict[str, Any]:
        return incident_action(lambda: IncidentStore(self.store).answer(incident_id, text, by=by)).to_dict()

    def incident_open(
        self, host: str, service: str, check: str, summary: str, severity: str, category: str, by: str
    ) -> dict[str, Any]:
        """An agent's report: opens the incident of host + service + check, or joins the one open."""
        from ..triage import firsthand_report, take_report

        report = firsthand_report(
            "agent", by, host=host, service=service, check=check, summary=summary, severity=severity,
            category=category,
        )  # fmt: skip
        triage = take_report(self.store, report)
        assert triage is not None  # a firing report always lands on an incident
        sent = self.respond(triage.kind, triage.incident, triage.text)
        return {"kind": triage.kind, **triage.incident.to_dict(), "responses": sent}

    def respond(self, kind: str, incident: Incident, text: str) -> list[str]:
        """Pages and tickets by the inventory's policy, as the CLI's incident commands send them."""
        return respond_from_inventory(self.settings, self.inventory, kind, incident, text)


def incident_action(action: Any) -> Incident:
    """An unknown id or a transition that makes no sense is bad input."""
    try:
        return action()
    except IncidentError as exc:
        raise BadInput(str(exc)) from None

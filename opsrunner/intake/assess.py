"""The intake's incident work: what happens to each accepted report, one at a time.

1. Triage (opsrunner.triage): the report opens or joins the incident of its host + service + check, in the
   heartbeat's own store, under its lock; its text is masked first (it came from the network). A host
   named by its address (Prometheus's `instance` is usually `ansible_host:port`) becomes the inventory
   host of that `ansible_host` first, so the alert keys the incident a heartbeat would; the report keeps
   the host it named in labels["reported_host"].
2. Respond (opsrunner.respond): pages and tickets by the inventory's policy (read at start, vault
   included, through the same discovery a run uses; read again, at most once per `assess_interval`, when
   a report names a host it lacks: the inventory may have gained it).
3. Assess: a firing (or reported-resolved) problem of a service we run gets a scoped heartbeat run on its
   host: that service's probes, diagnostics and the debugging-notes section, and remediation by the
   heartbeat's own rules against the same restart budget (the alert counts as the first failed check).
   At most one firing assessment per incident per `assess_interval`; never two runs at once (the
   heartbeat's run lock). Security problems and incidents waiting for guidance are probed, never
   restarted. A problem none of our probes covers is put to a person (needs-guidance), and so, at once and
   without a run, is a problem of a host the inventory does not have (ansible-playbook would match no
   host; when the inventory could not be read, the run is tried).
4. The daily memory gets one entry per report; the scoped run writes its own.
"""

from __future__ import annotations

import dataclasses
import logging
import time
from collections.abc import Callable
from typing import Any

from ..heartbeat import HOST_SERVICE, HeartbeatHooks, run_lock
from ..incidents import Incident, IncidentError, IncidentStore
from ..memory import DailyEntry, MemoryStore, one_line, utcnow
from ..reports import Report
from ..respond import InventoryPolicy, Responder
from ..runner import Runner, RunRequest
from ..settings import Settings
from ..triage import Triage, take_report

log = logging.getLogger("opsrunner.intake")

ASSESS_INTERVAL_S = 60.0
HEARTBEAT_PLAYBOOK = "heartbeat.yml"


class Assessor:
    """The handler the intake server calls with each report (see module doc)."""

    def __init__(
        self,
        settings: Settings,
        store: MemoryStore,
        inventory: Any,
        assess_interval_s: float = ASSESS_INTERVAL_S,
        policy: InventoryPolicy | None = None,
    ) -> None:
        self.settings = settings
        self.store = store
        self.inventory = inventory
        self.interval_s = assess_interval_s
        self.policy = policy or InventoryPolicy.load(settings, inventory)
        if self.policy.error:
            log.warning("%s", self.policy.error)
        self._assessed: dict[str, float] = {}  # incident id -> monotonic time of its last firing assessment
        # A policy read here is read again (at most once per interval) when a report names a host it lacks:
        # the inventory may have gained that host since.
        self._reloadable = policy is None
        self._loaded = time.monotonic()

    def __call__(self, report: Report) -> None:
        report = self._on_inventory(self._masked(report))
        triage = take_report(self.store, report)
        details: list[str] = []
        outside = self._outside(triage.incident) if triage is not None else None
        asked = False
        if triage is not None:
            self._respond(triage, details)
            if outside and triage.kind == "opened":  # asked once, when it opens; repeats change nothing
                details.append(self._ask(triage.incident, outside))
                asked = True
        # The report's entry first: the assessment run writes its own entry after it, in order.
        self._record(report, triage, details, outcome="needs-guidance" if asked else "")
        if triage is not None and outside is None:
            found = self._assess(triage)
            if any("needs guidance" in line for line in found):
                self._record(report, triage, found, outcome="needs-guidance")

    # -- steps ----------------------------------------------------------------------------------------

    def _masked(self, report: Report) -> Report:
        mask = self.policy.redactor.redact_text
        labels = {key: mask(value) for key, value in report.labels.items()}
        return dataclasses.replace(report, summary=mask(report.summary), labels=labels)

    def _on_inventory(self, report: Report) -> Report:
        """The report of a host named by its address, on the inventory host of that address."""
        unknown = self.policy.hosts is not None and not self.policy.hosts_known_as(report.host)
        if unknown and report.source != "intake":
            self._reload()
        name = self.policy.inventory_host(report.host)
        if name is None or name == report.host:
            return report
        return dataclasses.replace(report, host=name, labels={**report.labels, "reported_host": report.host})

    def _reload(self) -> None:
        if not self._reloadable or time.monotonic() - self._loaded < self.interval_s:
            return
        self._loaded = time.monotonic()
        policy = InventoryPolicy.load(self.settings, self.inventory)
        if policy.error:  # the policy read at the start stands
            log.warning("%s", policy.error)
        else:
            self.policy = policy

    def _outside(self, incident: Incident) -> str | None:
        """Why no run of ours can look at the incident's host (it is not in the inventory), else None.
        None too when the inventory could not be read (the run is tried) and for the intake's own reports
        (its dead-man's switch names the controller)."""
        if self.policy.hosts is None or incident.source == "intake" or incident.host in self.policy.hosts:
            return None
        shared = self.policy.hosts_known_as(incident.host)
        if shared:
            return f"{incident.host} is the address of several inventory hosts ({', '.join(shared)})"
        return f"{incident.host} is not a host of the inventory"

    def _respond(self, triage: Triage, details: list[str]) -> None:
        if triage.news:
            Responder(self.policy.context, self.policy.redactor, self.store, details)(
                _page_kind(triage), triage.incident, triage.text
            )

    def _assess(self, triage: Triage) -> list[str]:
        incident = triage.incident
        if not incident.active or incident.source == "intake" or incident.service == HOST_SERVICE:
            return []
        if triage.kind in ("opened", "joined", "security", "repeated"):
            last = self._assessed.get(incident.id)
            if last is not None and time.monotonic() - last < self.interval_s:
                return [f"{incident.id}: assessed {time.monotonic() - last:.0f} s ago; not again yet"]
            self._assessed[incident.id] = time.monotonic()
        elif triage.kind != "reported-resolved":
            return []
        return self.assess(incident)

    def assess(self, incident: Incident) -> list[str]:
        """A scoped heartbeat run of the incident's service on its host; returns what it found."""
        remediate = incident.category != "security" and incident.status != "needs-guidance"
        request = RunRequest(
            playbook=self.settings.playbook_path(HEARTBEAT_PLAYBOOK),
            inventory=self.inventory,
            limit=incident.host,
            extra_vars={
                "heartbeat_scope": [incident.service],
                "heartbeat_failure_threshold": 1,  # the report was the first failed check
                "heartbeat_remediate": remediate,
            },
            event="heartbeat",
        )
        with run_lock(self.store):
            outcome = Runner(self.settings, self.store).run(request)
        record = outcome.record
        watch = outcome.hooks.get(HeartbeatHooks)
        report = watch.hosts.get(incident.host) if watch else None
        probed = report is not None and any(
            p.get("service") == incident.service for p in report.final.values()
        )
        found = [f"assessed {incident.id} in run {record.run_id}: {record.outcome}"]
        if record.hosts and not probed and report is not None and not report.unreachable:
            found.append(
                self._ask(incident, f"no probe of ours covers {incident.service} on {incident.host}")
            )
        elif not record.hosts:
            found.append(self._ask(incident, f"{incident.host} is not a host of the inventory"))
        return found

    def _ask(self, incident: Incident, why: str) -> str:
        question = f"{why}: what should ops do about '{incident.summary}'?"
        try:
            asked = IncidentStore(self.store).ask(incident.id, question, by="ops")
        except IncidentError as exc:
            return f"{incident.id}: {exc}"
        details: list[str] = []
        Responder(self.policy.context, self.policy.redactor, self.store, details)(
            "needs-guidance", asked, f"{asked.id} needs guidance: {question}"
        )
        return f"{incident.id} needs guidance: {why}" + (f" ({'; '.join(details)})" if details else "")

    def _record(self, report: Report, triage: Triage | None, details: list[str], outcome: str = "") -> None:
        reported = report.labels.get("reported_host")
        named = f", host named {reported}" if reported else ""
        entry = DailyEntry(
            time=utcnow(),
            event="intake",
            title=one_line(
                f"{report.source} {report.status}: {report.host} {report.service}: {report.summary}"
            ),
            outcome=outcome or (triage.kind if triage else "no open incident"),
            hosts=[report.host],
            actions=f"{report.source} report {report.check} ({report.severity}, {report.category})" + named,
            details=[
                self.policy.redactor.redact_text(d) for d in ([triage.text] if triage else []) + details
            ],
            incidents=[triage.incident.id] if triage else [],
            source="intake",
        )
        self.store.append_daily(entry)


def _page_kind(triage: Triage) -> str:
    return "security" if triage.kind == "security" else triage.kind


def build_handler(ctx: Any, inventory: str | None) -> Callable[[Report], None]:
    """The intake server's handler for the command line's context and inventory."""
    return Assessor(ctx.settings, ctx.store, ctx.inventory_path(inventory))

"""Reports from outside the heartbeat become incident work, in the heartbeat's own incident store.

A firing report opens the incident of its host + service + check, or joins the one already open: the
same fingerprint (Alertmanager re-sends firing alerts), the same key, or another check of the same service
(one cause usually fails several checks; the heartbeat groups them the same way). A repeat changes
nothing, so a sender's retries are harmless. A resolved report is recorded; it resolves the incident only
where nothing of ours can check it (the intake's own dead-man incident). Everything else waits for our
probes to agree (heartbeat.py `_reported`).

The caller (the intake, `opsrunner incidents open`) pages through respond.Responder with the returned
kind, and runs the assessment.
"""

from __future__ import annotations

from dataclasses import dataclass

from .incidents import STATE_FILE, Incident, IncidentStore, close, debugging_section, incident_key
from .memory import MemoryStore, one_line, utcnow
from .reports import CATEGORIES, NAME_RE, SEVERITIES, Report
from .settings import BadInput

# Incidents no probe of ours can confirm: their reporter's resolved is the last word.
UNPROBED_SOURCES = ("intake",)
# Reports the intake acknowledges and assesses (a person's own report is theirs to follow).
ASSESSED_SOURCES = ("alertmanager", "agent")


@dataclass
class Triage:
    kind: str  # opened | joined | repeated | security | reported-resolved | resolved
    incident: Incident
    text: str

    @property
    def news(self) -> bool:
        """A change people hear of (the Responder decides whether it pages)."""
        return self.kind in ("opened", "security", "resolved")


def firsthand_report(
    source: str,
    by: str,
    *,
    host: str,
    service: str,
    check: str,
    summary: str,
    severity: str = "critical",
    category: str = "ops",
) -> Report:
    """The report of a person (CLI) or an agent (MCP), checked: names that can key an incident, a summary
    that says something, known severity and category; anything else is BadInput naming the field."""
    for name, value in (("host", host), ("service", service), ("check", check)):
        if not NAME_RE.match(value):
            raise BadInput(f"{name} {value[:60]!r}: letters, digits, '_.:@ -' only")
    if not summary.strip():
        raise BadInput("summary must say what is wrong")
    if severity not in SEVERITIES or category not in CATEGORIES:
        raise BadInput(f"severity: {', '.join(SEVERITIES)}; category: {', '.join(CATEGORIES)}")
    fields = {"host": host, "service": service, "check": check, "severity": severity, "category": category}
    return Report(source=source, summary=summary.strip(), labels={"sender": by}, **fields)


def take_report(store: MemoryStore, report: Report) -> Triage | None:
    """Apply one report to the incident store under the incident lock; None when it changes nothing (a
    resolved report of a problem we have no open incident for)."""
    store.ensure_layout()
    incidents = IncidentStore(store)
    with store.locked(STATE_FILE):
        active = incidents.active()
        incident = _match(active, report)
        if report.firing:
            triage = _firing(incidents, incident, report)
        elif incident is None:
            return None
        else:
            triage = _resolved(incident, report)
        incidents.save(triage.incident)
    return triage


def _match(active: dict[str, Incident], report: Report) -> Incident | None:
    candidates = [i for i in active.values() if i.active]
    if report.fingerprint:
        found = next((i for i in candidates if report.fingerprint in i.fingerprints), None)
        if found is not None:
            return found
    found = active.get(incident_key(report.host, report.service, report.check))
    if found is not None and found.active:
        return found
    return next((i for i in candidates if i.host == report.host and i.service == report.service), None)


def _firing(incidents: IncidentStore, incident: Incident | None, report: Report) -> Triage:
    now = utcnow()
    sender = report.labels.get("sender") or report.source
    what = f"{sender} ({report.source}) {report.check}: {report.summary}"
    if incident is None:
        incident = incidents.open(
            report.host,
            report.service,
            report.check,
            one_line(report.summary, 200) or f"{report.host} {report.check} firing",
            f"opened by {what}",
            now,
            debugging_notes=debugging_section(incidents.store, report.service, report.check),
        )
        incident.source, incident.category = report.source, report.category
        incident.severity, incident.reported = report.severity, "firing"
        _add_fingerprint(incident, report)
        if report.category == "security":
            incident.note("security: paged to a person at once; no automatic remediation", now)
        elif report.source in ASSESSED_SOURCES:
            incident.note("acknowledged by ops: assessing its scope", now)
        return Triage("opened", incident, f"{incident.id} opened: {incident.summary} ({report.source})")
    kind = "repeated"
    if report.fingerprint and report.fingerprint not in incident.fingerprints:
        _add_fingerprint(incident, report)
        incident.note(f"joined by {what}", now)
        kind = "joined"
    elif incident.reported == "resolved":
        incident.note(f"firing again: {what}", now)
        kind = "joined"
    incident.reported = "firing"
    if _rank(report.severity) > _rank(incident.severity):
        incident.severity = report.severity
    if report.category != "ops" and incident.category == "ops":
        incident.category = report.category
        incident.note(f"now category {report.category}: {what}", now)
        kind = "security" if report.category == "security" else kind
    return Triage(kind, incident, f"{incident.id} {kind}: {report.summary}")


def _resolved(incident: Incident, report: Report) -> Triage:
    now = utcnow()
    if incident.reported == "resolved":
        return Triage("repeated", incident, f"{incident.id}: resolved again by {report.source}")
    incident.reported = "resolved"
    incident.note(f"{report.source} reports resolved: {report.check}", now)
    if incident.source in UNPROBED_SOURCES and report.source in UNPROBED_SOURCES:
        close(incident, f"resolved by {report.source}", resolution="the reporter resolved it")
        return Triage("resolved", incident, f"{incident.id} resolved: {incident.summary}")
    return Triage("reported-resolved", incident, f"{incident.id}: {report.source} reports resolved")


def _add_fingerprint(incident: Incident, report: Report) -> None:
    if report.fingerprint and report.fingerprint not in incident.fingerprints:
        incident.fingerprints = [*incident.fingerprints, report.fingerprint][-20:]


def _rank(severity: str) -> int:
    return {"info": 0, "warning": 1, "critical": 2}.get(severity, 0)

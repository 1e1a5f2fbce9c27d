"""Where an incident change reaches people: pages through apprise and tickets for developers.

One policy for every capability that changes incidents (the heartbeat, backups, deploys, the intake, the
CLI), read from the run's inventory variables (the recorder's context, vault included):

- `aitbc_alert_urls`: the ops route. `aitbc_paging`: when to page (`PagingPolicy`), and the security route.
- `aitbc_tracker`: where tickets go (opsrunner.tickets); escalations, rolled-back deploys, failures that
  recur and reports of category `code` open or note one, deduplicated by failure signature.

Deliveries and tickets are best effort: a failure is recorded in the run's details, never raised.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import logging
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from . import failures
from .ansible_secrets import INVENTORY_HOSTS, SecretDiscoveryError, discover_secrets, hosts_known_as
from .failures import DEPLOY_CHECK, REACHABILITY_CHECK
from .incidents import STATE_FILE, Incident, IncidentChange, IncidentStore
from .memory import MemoryStore, format_time, one_line, utcnow
from .recorder import Recorder, RunRecord
from .redact import Redactor
from .settings import Settings

log = logging.getLogger(__name__)

# The playbook whose variables hold the policy (every host of the heartbeat sees the inventory's settings).
POLICY_PLAYBOOK = "heartbeat.yml"

SEVERITIES = ("critical", "warning", "info")
# Kinds of change that page whatever the incident's severity.
ALWAYS_PAGED = ("escalated", "resolved", "reminder", "needs-guidance", "security")


class PolicyError(ValueError):
    """A paging or tracker setting that makes no sense: a configuration error, named by its variable."""


def _urls(value: Any, name: str) -> list[str]:
    if value in (None, ""):
        return []
    if isinstance(value, str):
        return [value]
    if isinstance(value, list | tuple) and all(isinstance(v, str) for v in value):
        return list(value)
    raise PolicyError(f"{name} must be a URL or a list of URLs")


def _urls_or_none(value: Any) -> list[str]:
    try:
        return _urls(value, "aitbc_alert_urls")
    except PolicyError:
        return []


@dataclass
class PagingPolicy:
    """When incidents page, and where to."""

    urls: list[str] = field(default_factory=list)  # aitbc_alert_urls: the ops route
    security_urls: list[str] = field(default_factory=list)  # aitbc_paging.security_urls
    open_severities: tuple[str, ...] = ("critical",)  # severities paged as soon as an incident opens
    reminder_interval_s: float = 3600.0  # re-page while nobody acknowledged it; 0: never

    @classmethod
    def from_context(cls, context: Mapping[str, Any]) -> PagingPolicy:
        paging = context.get("aitbc_paging") or {}
        if not isinstance(paging, Mapping):
            raise PolicyError("aitbc_paging must be a mapping")
        unknown = set(paging) - {"security_urls", "open_severities", "reminder_interval"}
        if unknown:
            raise PolicyError(f"aitbc_paging: unknown setting(s) {', '.join(sorted(unknown))}")
        severities = paging.get("open_severities", ["critical"])
        if isinstance(severities, str):
            severities = [severities]
        if not isinstance(severities, list) or not set(severities) <= set(SEVERITIES):
            raise PolicyError(f"aitbc_paging.open_severities: a list of {', '.join(SEVERITIES)}")
        try:
            interval = float(paging.get("reminder_interval", 3600))
        except (TypeError, ValueError):
            raise PolicyError("aitbc_paging.reminder_interval must be a number of seconds") from None
        if interval < 0:
            raise PolicyError("aitbc_paging.reminder_interval must be 0 (off) or more seconds")
        return cls(
            urls=_urls(context.get("aitbc_alert_urls"), "aitbc_alert_urls"),
            security_urls=_urls(paging.get("security_urls"), "aitbc_paging.security_urls"),
            open_severities=tuple(severities),
            reminder_interval_s=interval,
        )

    def pages(self, kind: str, incident: Incident) -> bool:
        if kind in ALWAYS_PAGED or incident.category == "security":
            return True
        if kind in ("opened", "unreachable"):
            return incident.check == REACHABILITY_CHECK or incident.severity in self.open_severities
        return False

    def route(self, incident: Incident) -> list[str]:
        """Security goes to its own route (and the ops route when it has none: a human must hear)."""
        if incident.category == "security":
            return self.security_urls or self.urls
        return self.urls

    def reminder_due(self, incident: Incident, now: dt.datetime) -> bool:
        """Paged before, nobody took it since, and the interval has passed."""
        if not self.reminder_interval_s or not incident.active or incident.paged is None:
            return False
        if incident.acknowledged_by and incident.status != "needs-guidance":
            return False
        return (now - incident.paged).total_seconds() >= self.reminder_interval_s


@dataclass
class TicketPolicy:
    """When failures become tickets: aitbc_tracker's recurrence settings (the backend is the tracker's)."""

    settings: dict[str, Any] = field(default_factory=dict)
    recurrence_count: int = 3  # a failure signature seen this many times ...
    recurrence_days: float = 7.0  # ... within this many days opens a ticket

    @classmethod
    def from_context(cls, context: Mapping[str, Any]) -> TicketPolicy:
        settings = context.get("aitbc_tracker") or {}
        if not isinstance(settings, Mapping):
            raise PolicyError("aitbc_tracker must be a mapping")
        settings = dict(settings)
        try:
            count = int(settings.pop("recurrence_count", 3))
            days = float(settings.pop("recurrence_days", 7))
        except (TypeError, ValueError):
            raise PolicyError("aitbc_tracker.recurrence_count/_days must be numbers") from None
        if count < 1 or days <= 0:
            raise PolicyError("aitbc_tracker.recurrence_count must be 1 or more, recurrence_days above 0")
        return cls(settings=settings, recurrence_count=count, recurrence_days=days)


def ticket_signature(incident: Incident) -> str:
    """One ticket per failure pattern of a service, whatever host it hit: the failure archive's
    normalisation of service + check (its cause is not known while the incident is open)."""
    if incident.source != "heartbeat" and incident.fingerprints:
        return "T-" + hashlib.sha1(f"{incident.service}|{incident.check}".encode()).hexdigest()[:8]
    return failures.entry_id(failures.signature(incident.service, incident.check, ""))


class Responder:
    """Pages and tickets for incident changes: `responder(kind, incident, text)`.

    `details` receives one line per delivery and ticket (the run's details); the incident is saved again
    when a page or ticket changed it (its Paged time, its Ticket).
    """

    def __init__(
        self,
        context: Mapping[str, Any],
        redactor: Redactor,
        store: MemoryStore | None,
        details: list[str] | None = None,
    ) -> None:
        self.context = context
        self.redactor = redactor
        self.store = store
        self.details = details if details is not None else []
        # A bad setting must not silence the pages: the defaults stand in, and the run says why.
        try:
            self.paging = PagingPolicy.from_context(context)
        except PolicyError as exc:
            self.details.append(f"paging settings ignored, defaults used: {exc}")
            self.paging = PagingPolicy(urls=_urls_or_none(context.get("aitbc_alert_urls")))
        try:
            self.tickets = TicketPolicy.from_context(context)
        except PolicyError as exc:
            self.details.append(f"tracker settings ignored, the file tracker used: {exc}")
            self.tickets = TicketPolicy()

    @classmethod
    def for_run(cls, recorder: Recorder) -> Responder:
        return cls(recorder.context, recorder.redactor, recorder.store, recorder.record.details)

    def __call__(self, kind: str, incident: Incident, text: str) -> None:
        changed = False
        if self.paging.pages(kind, incident) and not self._unpaged_resolve(kind, incident):
            # The change's own failure (a rolled-back deploy) is what its window is for: never held.
            window = None if incident.check == DEPLOY_CHECK else self._window(incident)
            if window is None:
                changed |= self.page(kind, incident, text)
            elif kind != "resolved":
                self.details.append(f"page {kind} {incident.id} held: maintenance window {window.id}")
                incident.note(f"page held: maintenance window {window.id} ({window.change}) is open")
                changed = True
        if self._wants_ticket(kind, incident):
            changed |= self.ticket(incident, text)
        elif kind == "resolved" and incident.ticket:
            self._note_ticket(incident, f"{incident.id} resolved: {incident.resolution or text}")
        if kind == "resolved" and incident.archive:
            changed |= self._recurrence(incident)
        if changed:
            self._save(incident)

    # -- pages ----------------------------------------------------------------------------------------

    def page(self, kind: str, incident: Incident, text: str) -> bool:
        """Send one page on the incident's route; True when a delivery went out (Paged is set)."""
        urls = self.paging.route(incident)
        if not urls:
            return False
        from .notify import Alert, Notifier  # deferred: apprise is slow to import, and most runs send nothing

        unreachable = incident.check == REACHABILITY_CHECK and kind == "opened"
        label = "security" if incident.category == "security" and kind == "opened" else kind
        alert = Alert(
            kind="unreachable" if unreachable else label,
            title=one_line(f"[aitbc-ops] {label}: {incident.summary}", 200),
            body=self.redactor.redact_text(page_body(incident, text)),
            incident_id=incident.id,
            host=incident.host,
            service=incident.service,
            severity="info" if kind == "resolved" else incident.severity,
        )
        sent = False
        for delivery in Notifier(urls).send(alert):
            outcome = "sent" if delivery.ok else f"NOT sent: {delivery.error}"
            self.details.append(f"page {label} {incident.id} to {delivery.target}: {outcome}")
            sent |= delivery.ok
        if sent:
            incident.paged = utcnow()
        return sent

    def _window(self, incident: Incident) -> Any:
        """The open maintenance window holding the incident's host and service (its pages wait), or None."""
        if self.store is None:
            return None
        from .windows import Windows

        return Windows(self.store).covering(incident.host, incident.service)

    @staticmethod
    def _unpaged_resolve(kind: str, incident: Incident) -> bool:
        """A resolve of something never paged (held in a window, or below the paging severity) is not news."""
        return kind == "resolved" and incident.paged is None and incident.category != "security"

    def held(self, incidents: list[Incident]) -> list[Incident]:
        """Incidents whose page at open never went out (held in a maintenance window since closed, or a
        delivery that failed) and that still fail: paged now, late."""
        late = []
        for incident in incidents:
            if incident.paged is not None or not incident.active or not self.paging.pages("opened", incident):
                continue
            if not self.paging.route(incident) or self._window(incident) is not None:
                continue
            if self.page("opened", incident, f"{incident.id} is still failing after its page was held"):
                self._save(incident)
                late.append(incident)
        return late

    def remind(self, incidents: list[Incident]) -> list[Incident]:
        """Re-page the incidents nobody took within the reminder interval, and send the pages held earlier;
        returns those reminded."""
        self.held(incidents)
        now = utcnow()
        due = [i for i in incidents if self.paging.reminder_due(i, now) and self._window(i) is None]
        for incident in due:
            since = format_time(incident.paged) if incident.paged else "?"
            waiting = "an answer" if incident.status == "needs-guidance" else "acknowledgement"
            if self.page("reminder", incident, f"{incident.id} still waits for {waiting} (paged {since})"):
                self._save(incident)
        return due

    # -- tickets --------------------------------------------------------------------------------------

    def _wants_ticket(self, kind: str, incident: Incident) -> bool:
        """Code must change: the restart budget did not help, a release failed its gate, a report said so."""
        if kind == "escalated":
            return incident.category != "security"  # a person has it already; no public ticket for it
        return kind == "opened" and (incident.category == "code" or incident.check == DEPLOY_CHECK)

    def _desk(self) -> Any:
        from .tickets import TicketDesk, tracker_from_settings  # deferred: a tracker client is heavy

        assert self.store is not None
        return TicketDesk(self.store, tracker_from_settings(self.tickets.settings, self.store))

    def ticket(self, incident: Incident, text: str, signature: str = "") -> bool:
        """Open (or note) the developers' ticket of this failure; True when the incident now names one."""
        if self.store is None:
            return False
        from .tickets import TicketRequest

        request = TicketRequest(
            signature=signature or ticket_signature(incident),
            title=one_line(f"{incident.service} on {incident.host}: {incident.summary}", 160),
            body=self.redactor.redact_text(page_body(incident, text)),
            incident=incident.id,
            failure=incident.archive,
        )
        try:
            outcome = self._desk().raise_ticket(request)
        except Exception as exc:  # noqa: BLE001 - a tracker is never fatal to the run that found the failure
            self.details.append(f"ticket for {incident.id} NOT opened: {self._clean(exc)}")
            return False
        if outcome.ticket is None:
            self.details.append(
                f"ticket for {incident.id} pending (will retry): {self._clean(outcome.error)}"
            )
            return False
        ticket = f"{outcome.ticket.tracker}:{outcome.ticket.id}"
        self.details.append(f"ticket {ticket} {outcome.action} for {incident.id}")
        if incident.ticket == ticket:
            return False
        incident.ticket = ticket
        incident.note(f"ticket {ticket} {outcome.action}")
        return True

    def _note_ticket(self, incident: Incident, text: str) -> None:
        if self.store is None:
            return
        try:
            outcome = self._desk().note(incident.ticket.partition(":")[2], self.redactor.redact_text(text))
        except Exception as exc:  # noqa: BLE001 - as above
            self.details.append(f"ticket {incident.ticket} NOT noted: {self._clean(exc)}")
            return
        if outcome.action == "pending":
            self.details.append(
                f"ticket {incident.ticket} note pending (will retry): {self._clean(outcome.error)}"
            )
        else:
            self.details.append(f"ticket {incident.ticket} noted: {incident.id} resolved")

    def retry_tickets(self) -> None:
        """Tickets and notes a tracker refused earlier, tried again (each heartbeat does)."""
        if self.store is None or not self.store.path("tickets", ".pending.jsonl").is_file():
            return
        try:
            outcomes = self._desk().retry_pending()
        except Exception as exc:  # noqa: BLE001 - as above
            self.details.append(f"pending tickets NOT retried: {self._clean(exc)}")
            return
        for outcome in outcomes:
            if outcome.action != "pending":
                self.details.append(f"pending ticket {outcome.action}: {outcome.ticket_id or '?'}")

    def _recurrence(self, incident: Incident) -> bool:
        """A failure pattern seen recurrence_count times within recurrence_days is for developers."""
        if self.store is None:
            return False
        entry = failures.read_archive(self.store).find(incident.archive)
        if entry is None:
            return False
        since = utcnow() - dt.timedelta(days=self.tickets.recurrence_days)
        recent = [o for o in entry.occurrences if o.time >= since]
        if len(recent) < self.tickets.recurrence_count:
            return False
        why = f"{incident.archive} recurred {len(recent)} times in {self.tickets.recurrence_days:g} days"
        return self.ticket(incident, why, signature=incident.archive)

    def _save(self, incident: Incident) -> None:
        if self.store is None:
            return
        saved = IncidentStore(self.store)
        with self.store.locked(STATE_FILE):
            try:
                current = saved.get(incident.id)
            except Exception:  # noqa: BLE001 - it is gone or broken: save ours
                current = incident
            current.paged, current.ticket = incident.paged or current.paged, incident.ticket or current.ticket
            for entry in incident.timeline[len(current.timeline) :]:
                current.timeline.append(entry)
            saved.save(current)

    def _clean(self, error: object) -> str:
        return one_line(self.redactor.redact_text(str(error)), 300)


@dataclass
class InventoryPolicy:
    """What the inventory says about pages and tickets, the secrets to mask, and its hosts, read once."""

    context: dict[str, Any]
    redactor: Redactor
    error: str = ""  # why the inventory could not be read (pages then go nowhere, and the log says so)

    @property
    def hosts(self) -> dict[str, list[str]] | None:
        """{inventory name: [name, ansible_host]}; None when the inventory could not be read."""
        hosts = self.context.get(INVENTORY_HOSTS)
        return None if self.error or not isinstance(hosts, dict) else hosts

    def hosts_known_as(self, name: str) -> list[str]:
        """The inventory hosts of that name or address (several when they share the address)."""
        return hosts_known_as(self.hosts or {}, name)

    def inventory_host(self, name: str) -> str | None:
        """The inventory name of the one host named (by name or ansible_host) `name`, else None."""
        found = self.hosts_known_as(name)
        return found[0] if len(found) == 1 else None

    @classmethod
    def load(cls, settings: Settings, inventory: Path) -> InventoryPolicy:
        redactor = Redactor()
        try:
            secrets, context = discover_secrets(
                settings.playbook_path(POLICY_PLAYBOOK), inventory, settings.vault_password_files
            )
        except SecretDiscoveryError as exc:
            return cls({}, redactor, f"cannot read the inventory's paging settings: {exc}")
        redactor.add(secrets)
        return cls(context, redactor)


def respond_from_inventory(
    settings: Settings, inventory: Path, kind: str, incident: Incident, text: str
) -> list[str]:
    """Pages and tickets for a change made by hand (the CLI), by the inventory's policy; the lines say what
    went where (nothing when the inventory names no route)."""
    policy = InventoryPolicy.load(settings, inventory)
    details: list[str] = [policy.error] if policy.error else []
    Responder(policy.context, policy.redactor, MemoryStore(settings.memory_dir), details)(
        kind, incident, text
    )
    return details


def page_body(incident: Incident, text: str) -> str:
    lines = [text, "", f"Host: {incident.host}", f"Service: {incident.service}", f"Check: {incident.check}"]
    lines += [
        f"Severity: {incident.severity}",
        f"Category: {incident.category}",
        f"Source: {incident.source}",
    ]
    if incident.question:
        lines += [
            f"Question: {incident.question}",
            f"Answer with: opsrunner incidents answer {incident.id} TEXT",
        ]
    lines += ["", "Timeline:"] + [f"- {t.text}" for t in incident.timeline[-5:]]
    return "\n".join(lines)


def record_incident_changes(
    recorder: Recorder,
    record: RunRecord,
    decide: Callable[[IncidentStore, dict[str, Incident]], list[IncidentChange]],
) -> None:
    """Run `decide` (incidents, active by key) under the incident lock, then note each change in the run
    and respond to every one but a note. Backup verification and deploy rollbacks share this."""
    store = recorder.store
    if store is None:
        return
    store.ensure_layout()
    incidents = IncidentStore(store)
    with store.locked(STATE_FILE):
        changes = decide(incidents, incidents.active())
    respond = Responder.for_run(recorder)
    for kind, incident, text in changes:
        record.details.append(text)
        if incident.id not in record.incidents:
            record.incidents.append(incident.id)
        if kind != "noted":
            respond(kind, incident, text)

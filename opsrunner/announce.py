"""Announcements of changes: the start and end of every change (and each freeze override) go to the
inventory's announcements route, `aitbc_announce_urls` (apprise URLs, like aitbc_alert_urls), and into
the daily memory (event "change").

Best effort, as pages are: a bad setting or a failed delivery becomes a detail line, never an exception,
so an announcement can neither stop a change nor hide its outcome. Everything sent or written passes the
caller's Redactor.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from .memory import DailyEntry, MemoryStore, one_line, utcnow
from .redact import Redactor

ANNOUNCE_VAR = "aitbc_announce_urls"
PHASES = ("start", "end", "override")
EVENT = "change"


def announce_urls(context: Mapping[str, Any]) -> tuple[list[str], str]:
    """The announcement URLs, and a problem with the setting ("" when none)."""
    value = context.get(ANNOUNCE_VAR)
    if value in (None, "", []):
        return [], ""
    if isinstance(value, str):
        return [value], ""
    if isinstance(value, list | tuple) and all(isinstance(v, str) for v in value):
        return list(value), ""
    return [], f"{ANNOUNCE_VAR} ignored: it must be a URL or a list of URLs"


def announce(
    store: MemoryStore,
    context: Mapping[str, Any],
    redactor: Redactor,
    phase: str,
    change: str,
    text: str,
    hosts: list[str] | None = None,
) -> list[str]:
    """Announce one phase ("start" | "end" | "override") of a change; the lines say what went where."""
    text = redactor.redact_text(text)
    change = redactor.redact_text(change)
    details = send(context, redactor, phase, change, text)
    entry = DailyEntry(
        time=utcnow(),
        event=EVENT,
        title=text,
        outcome=phase,
        hosts=list(hosts or []),
        actions=f"{phase}: {change}",
        details=details,
        source="announce",
    )
    try:
        store.append_daily(entry)
    except OSError as exc:
        details.append(f"announcement {phase} of {change} NOT written to the daily memory: {exc.strerror}")
    return details


def send(context: Mapping[str, Any], redactor: Redactor, phase: str, change: str, text: str) -> list[str]:
    urls, problem = announce_urls(context)
    if problem or not urls:
        return [problem] if problem else []
    from .notify import Alert, Notifier  # deferred: apprise is slow to import

    alert = Alert(
        kind="announcement",
        title=one_line(f"[aitbc-ops] change {phase}: {text}", 200),
        body=f"{text}\n\nChange: {change}\nPhase: {phase}",
        severity="info",
    )
    try:
        deliveries = Notifier(urls).send(alert)
    except Exception as exc:  # noqa: BLE001 - Notifier does not raise for deliveries; anything else is not fatal
        return [one_line(redactor.redact_text(f"announcement {phase} NOT sent: {type(exc).__name__}: {exc}"))]
    return [
        one_line(
            redactor.redact_text(
                f"announcement {phase} to {d.target}: {'sent' if d.ok else f'NOT sent: {d.error}'}"
            )
        )
        for d in deliveries
    ]

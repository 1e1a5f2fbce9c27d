"""Alert delivery for incidents through apprise (email, Matrix, webhooks).

The notification URLs come from the inventory or the vault and usually carry credentials, so nothing
derived from a URL leaves this module unmasked: `Delivery.target` drops the user info and the query,
and error texts pass through a Redactor that knows the URL's password, secret-named query values and
whatever parts apprise itself hides in its privacy URL (tokens in the host or path).

Delivery is best effort. A bad URL, a refused connection, a timeout or a rejection becomes a
`Delivery(ok=False, error=...)`; `send()` never raises for them, so a dead endpoint cannot break the
heartbeat. All URLs are sent to concurrently (apprise's own worker pool) under one deadline.
"""

from __future__ import annotations

import logging
import re
from dataclasses import dataclass
from urllib.parse import parse_qsl, unquote, urlsplit

import apprise

from opsrunner.memory import one_line
from opsrunner.redact import Redactor

INVALID_URL = "invalid notification URL"
DEFAULT_TIMEOUT_S = 10.0
# Apprise's HTTP default is 4 s and its SMTP default 15 s; a dead host should not use the whole budget.
CONNECT_TIMEOUT_S = 4.0
ERROR_LIMIT = 240

SEVERITY_TYPES: dict[str, apprise.NotifyType] = {
    "info": apprise.NotifyType.INFO,
    "warning": apprise.NotifyType.WARNING,
    "critical": apprise.NotifyType.FAILURE,
}

# Query parameters whose values are credentials (?token=, ?apikey=, ?secret=, ?pass=, ...).
SECRET_PARAM_RE = re.compile(r"secret|token|key|pass|pwd|auth|sig|credential", re.IGNORECASE)
# What apprise can parse at all; anything else is refused before apprise logs it.
URL_SHAPE_RE = re.compile(r"^[A-Za-z][A-Za-z0-9+.-]*://\S")
# Belt and braces for any URL that slips into a log line: drop its user info.
USERINFO_RE = re.compile(r"(?<=://)[^/\s@]+@")

# Apprise logs to the "apprise" logger. Its DEBUG records carry request payloads (a Matrix login
# holds the password), and without a handler of its own every record would reach the root logger or
# logging's last-resort stderr handler. So: no records below WARNING unless someone set a level, and
# none leave the logger. Apprise's per-service capture (NotifyResult.logs) is attached to this logger
# during a send, so the errors we report are still seen.
_apprise_log: logging.Logger = apprise.logger
if _apprise_log.level == logging.NOTSET:
    _apprise_log.setLevel(logging.WARNING)
_apprise_log.propagate = False
if not any(isinstance(h, logging.NullHandler) for h in _apprise_log.handlers):
    _apprise_log.addHandler(logging.NullHandler())


@dataclass(frozen=True)
class Alert:
    kind: str  # "escalated" | "unreachable" | "resolved" | "opened" | ...
    title: str
    body: str  # Markdown; already redacted by the caller
    incident_id: str = ""
    host: str = ""
    service: str = ""
    severity: str = "warning"  # info | warning | critical


@dataclass
class Delivery:
    target: str  # the URL with credentials masked, e.g. "mailto://127.0.0.1:2525"
    ok: bool
    error: str = ""


def notify_type(alert: Alert) -> apprise.NotifyType:
    if alert.kind == "resolved":
        return apprise.NotifyType.SUCCESS
    return SEVERITY_TYPES.get(alert.severity, apprise.NotifyType.WARNING)


def alert_body(alert: Alert) -> str:
    """The body with a context footer, so an alert read on a phone says what and where."""
    context = [
        f"{label} {value}"
        for label, value in (
            ("incident", alert.incident_id),
            ("host", alert.host),
            ("service", alert.service),
        )
        if value
    ]
    footer = " · ".join([f"{alert.kind}, {alert.severity}", *context])
    body = alert.body.strip() or alert.title
    return f"{body}\n\n_{footer}_"


def url_secrets(url: str) -> list[str]:
    """Credential values visible in the URL itself: password, a bare user (often a token), secret params."""
    parts = urlsplit(url.strip())
    userinfo, at, _ = parts.netloc.rpartition("@")
    found: list[str] = []
    if at:
        user, colon, password = userinfo.partition(":")
        found += [password] if colon else [user]
    found += [value for name, value in parse_qsl(parts.query) if SECRET_PARAM_RE.search(name)]
    return [text for value in found if value for text in {value, unquote(value)}]


def privacy_secrets(plugin: apprise.NotifyBase) -> list[str]:
    """Values apprise masks in its privacy URL: it knows which host/path parts of each service are tokens."""
    try:
        plain, private = urlsplit(plugin.url(privacy=False)), urlsplit(plugin.url(privacy=True))
    except Exception:  # a plugin's url() is not part of delivery; never let it break send()
        return []
    pairs = list(zip(plain.path.split("/"), private.path.split("/"), strict=False))
    pairs.append((plain.netloc.rpartition("@")[2], private.netloc.rpartition("@")[2]))
    pairs += [(plain.password or "", private.password or "")]
    private_query = dict(parse_qsl(private.query))
    pairs += [(value, private_query.get(name, "")) for name, value in parse_qsl(plain.query)]
    return [text for real, shown in pairs if real != shown for text in {real, unquote(real)}]


def mask_url(url: str, redactor: Redactor | None = None) -> str:
    """scheme://host[:port][/path]: no user info, no query (where tokens live), known secrets masked."""
    parts = urlsplit(url.strip())
    host = parts.netloc.rpartition("@")[2]
    if not parts.scheme or not host:
        return "(unparseable URL)"  # without structure nothing in it can be told safe to show
    masked = f"{parts.scheme}://{host}{parts.path.rstrip('/')}"
    return redactor.redact_text(masked) if redactor else masked


class Notifier:
    """Sends an Alert to every configured apprise URL; one Delivery per URL, in order."""

    def __init__(self, urls: list[str], timeout_s: float = DEFAULT_TIMEOUT_S) -> None:
        self.urls = list(urls)
        self.timeout_s = float(timeout_s)

    def send(self, alert: Alert) -> list[Delivery]:
        # Memory storage: the Matrix plugin caches access tokens in apprise's persistent store, and
        # secrets never reach disk. Result logs stay in memory for the same reason.
        asset = apprise.AppriseAsset(
            storage_mode="memory",
            service_timeout=self.timeout_s,
            result_log_disk_size=0,
        )
        deliveries: list[Delivery] = []
        pending: list[tuple[Delivery, Redactor]] = []
        batch = apprise.Apprise(asset=asset)
        for url in self.urls:
            redactor = Redactor(url_secrets(url))
            plugin = self._instantiate(url, asset)
            if plugin is not None:
                redactor.add(privacy_secrets(plugin))
            delivery = Delivery(target=mask_url(url, redactor), ok=False)
            deliveries.append(delivery)
            if plugin is None:
                delivery.error = INVALID_URL
                continue
            batch.add(plugin)
            pending.append((delivery, redactor))
        if pending:
            self._deliver(batch, alert, pending)
        return deliveries

    def _instantiate(self, url: str, asset: apprise.AppriseAsset) -> apprise.NotifyBase | None:
        if not URL_SHAPE_RE.match(url):
            return None  # apprise would log it verbatim ("Unsupported URL: ..."), password and all
        try:
            plugin = apprise.Apprise.instantiate(url, asset=asset, suppress_exceptions=True)
        except Exception:  # apprise should return None for bad URLs; a plugin bug must not escape
            return None
        if not isinstance(plugin, apprise.NotifyBase):
            return None
        # Defaults only where the URL leaves them out (?cto= / ?rto= in the URL win).
        query = dict(parse_qsl(urlsplit(url).query))
        if "cto" not in query:
            plugin.socket_connect_timeout = min(CONNECT_TIMEOUT_S, self.timeout_s)
        if "rto" not in query:
            plugin.socket_read_timeout = self.timeout_s
        return plugin

    def _deliver(
        self, batch: apprise.Apprise, alert: Alert, pending: list[tuple[Delivery, Redactor]]
    ) -> None:
        try:
            outcome = batch.notify(
                body=alert_body(alert),
                title=alert.title,
                notify_type=notify_type(alert),
                body_format=apprise.NotifyFormat.MARKDOWN,
                timeout=self.timeout_s,
            )
            results = list(outcome)
        except Exception as exc:  # apprise reports per service; anything else is still not fatal
            for delivery, redactor in pending:
                delivery.error = clean(f"notification failed: {type(exc).__name__}: {exc}", redactor)
            return
        if len(results) != len(pending):
            # Services are untagged, so apprise notifies all of them, in order; anything else is a
            # failure of the whole call (e.g. the message itself was refused before dispatch).
            reason = one_line("; ".join(entry.message for entry in outcome.logs()) or "not dispatched")
            for delivery, redactor in pending:
                delivery.error = clean(reason, redactor)
            return
        for (delivery, redactor), result in zip(pending, results, strict=True):
            delivery.ok = bool(result)
            if not delivery.ok:
                delivery.error = clean(self._reason(result), redactor)

    def _reason(self, result: apprise.NotifyResult) -> str:
        if result.status == apprise.AppriseResultStatus.TIMEOUT:
            return f"timed out after {self.timeout_s:g} s"
        messages = list(dict.fromkeys(entry.message for entry in result.logs()))
        reason = "; ".join(messages) or "delivery failed"
        # Apprise reports a read timeout as a plain "connection error"; the time tells them apart.
        return f"{reason} (gave up after {result.elapsed:.1f} s)" if result.elapsed >= 1 else reason


def clean(text: str, redactor: Redactor) -> str:
    return one_line(redactor.redact_text(USERINFO_RE.sub("", text)), ERROR_LIMIT)

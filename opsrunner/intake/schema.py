"""Request bodies of the intake, validated, and their reports.

Two stages: pydantic checks the shape (types, lengths, enums, no unknown fields), then the conversion to
reports.Report checks what the shape cannot (a host derived from labels.instance, the NAME_RE of derived
names). Either way a bad request raises FieldError naming the field, in the form `alerts[3].labels.host`.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, StringConstraints, ValidationError

from ..memory import utcnow
from ..reports import CATEGORIES, FINGERPRINT_RE, NAME_RE, SEVERITIES, Report

SUMMARY_MAX = 500
LABELS_MAX = 64
LABEL_VALUE_MAX = 1024
ANNOTATION_VALUE_MAX = 4096
ALERTS_MAX = 1000

LabelName = Annotated[str, StringConstraints(pattern=r"^[A-Za-z_][A-Za-z0-9_]{0,127}$")]
LabelValue = Annotated[str, StringConstraints(max_length=LABEL_VALUE_MAX)]
Name = Annotated[str, StringConstraints(pattern=NAME_RE.pattern)]
Fingerprint = Annotated[str, StringConstraints(pattern=FINGERPRINT_RE.pattern)]
Summary = Annotated[str, StringConstraints(min_length=1, max_length=SUMMARY_MAX)]
Status = Literal["firing", "resolved"]
# Alertmanager's severities are free text; these map to ours, anything else is info.
CRITICAL_SEVERITIES = ("critical", "page", "error")


class FieldError(ValueError):
    """A bad request: what is wrong, and the field (a path like `alerts[3].labels.host`)."""

    def __init__(self, field: str, message: str, status: int = 422) -> None:
        super().__init__(f"{field}: {message}")
        self.field = field
        self.message = message
        self.status = status


class Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", strict=True, frozen=True)


class Alert(Strict):
    status: Status
    labels: dict[LabelName, LabelValue] = Field(max_length=LABELS_MAX)
    annotations: dict[LabelName, Annotated[str, StringConstraints(max_length=ANNOTATION_VALUE_MAX)]] = Field(
        default_factory=dict, max_length=LABELS_MAX
    )
    startsAt: Annotated[str, StringConstraints(max_length=64)] = ""  # noqa: N815 (Alertmanager's names)
    endsAt: Annotated[str, StringConstraints(max_length=64)] = ""  # noqa: N815
    generatorURL: Annotated[str, StringConstraints(max_length=2048)] = ""  # noqa: N815
    fingerprint: Fingerprint


class AlertmanagerPayload(Strict):
    """Alertmanager's webhook payload, version 4: one POST is one alert group."""

    version: Literal["4"]
    receiver: Annotated[str, StringConstraints(max_length=256)] = ""
    status: Status
    alerts: list[Alert] = Field(min_length=1, max_length=ALERTS_MAX)
    groupLabels: dict[LabelName, LabelValue] = Field(default_factory=dict, max_length=LABELS_MAX)  # noqa: N815
    commonLabels: dict[LabelName, LabelValue] = Field(default_factory=dict, max_length=LABELS_MAX)  # noqa: N815
    commonAnnotations: dict[  # noqa: N815
        LabelName, Annotated[str, StringConstraints(max_length=ANNOTATION_VALUE_MAX)]
    ] = Field(default_factory=dict, max_length=LABELS_MAX)
    externalURL: Annotated[str, StringConstraints(max_length=2048)] = ""  # noqa: N815
    groupKey: Annotated[str, StringConstraints(max_length=4096)] = ""  # noqa: N815
    truncatedAlerts: int = Field(default=0, ge=0)  # noqa: N815


class AgentEvent(Strict):
    """An agent's report of one problem (POST /events)."""

    source: Name
    host: Name
    service: Name
    check: Name
    summary: Summary
    severity: Literal[SEVERITIES] = "critical"  # type: ignore[valid-type]
    category: Literal[CATEGORIES] = "ops"  # type: ignore[valid-type]
    fingerprint: Fingerprint | None = None
    status: Status = "firing"


@dataclass(frozen=True)
class Parsed:
    """The reports of one request, and for each alert the key Alertmanager's retries repeat."""

    reports: list[Report]
    dedup_keys: list[str | None]
    received: dt.datetime


def field_path(loc: Sequence[int | str]) -> str:
    """pydantic's error location as a path: ('alerts', 3, 'labels', 'host') -> alerts[3].labels.host."""
    path = ""
    for part in loc:
        if isinstance(part, int):
            path += f"[{part}]"
        else:
            path += f".{part}" if path else str(part)
    return path or "body"


def first_error(exc: ValidationError) -> FieldError:
    error = exc.errors(include_url=False)[0]
    loc = [p for p in error["loc"] if not (isinstance(p, str) and p.startswith("function-"))]
    message = error["msg"]
    if loc and loc[-1] == "[key]":  # a bad label name: the label is the field
        loc.pop()
        message = f"bad name: {message}"
    if error["type"] == "extra_forbidden":
        message = "unknown field"
    elif error["type"] == "missing":
        message = "required field is missing"
    return FieldError(field_path(loc), message)


def validate(model: type[Strict], body: bytes) -> Any:
    """The body as `model`; pydantic parses the JSON itself (in Rust: about half the time of json.loads
    and then validating)."""
    try:
        return model.model_validate_json(body)
    except ValidationError as exc:
        error = exc.errors(include_url=False)[0]
        if error["type"] == "json_invalid":
            raise FieldError("body", f"not JSON: {error['msg']}", status=400) from None
        if error["type"] == "model_type" and not error["loc"]:
            raise FieldError("body", "a JSON object is expected", status=400) from None
        raise first_error(exc) from None


# -- Alertmanager --------------------------------------------------------------------------------------


def host_of(labels: dict[str, str]) -> tuple[str, str]:
    """(host, the label it came from): labels.host, else labels.instance without its :port."""
    if labels.get("host"):
        return labels["host"], "host"
    instance = labels.get("instance", "")
    if instance.startswith("["):  # [::1]:9100
        return instance[1:].partition("]")[0], "instance"
    if instance.count(":") == 1:
        return instance.partition(":")[0], "instance"
    return instance, "instance" if instance else "host"


def pick(labels: dict[str, str], *names: str) -> tuple[str, str]:
    """The first of the labels that is set, and its name (the first name when none is)."""
    for name in names:
        if labels.get(name):
            return labels[name], name
    return "", names[0]


# Names seen valid lately: hosts and services repeat in every alert group, so most checks are a lookup.
VALID_NAMES: set[str] = set()
VALID_NAMES_MAX = 10_000


def check_name(value: str, where: str, what: str) -> None:
    if value in VALID_NAMES:
        return
    if not value:
        raise FieldError(where, f"{what} is missing")
    if not NAME_RE.fullmatch(value):  # fullmatch: `$` would let a trailing newline in
        raise FieldError(
            where, f"{what} {value[:60]!r} is not a valid name (letters, digits, _.:@ - and space)"
        )
    if len(VALID_NAMES) >= VALID_NAMES_MAX:
        VALID_NAMES.clear()
    VALID_NAMES.add(value)


def severity_of(text: str) -> str:
    text = text.strip().lower()
    if text in CRITICAL_SEVERITIES:
        return "critical"
    return "warning" if text == "warning" else "info"


def bounded_summary(text: str) -> str:
    flat = " ".join(text.split())
    return flat if len(flat) <= SUMMARY_MAX else flat[: SUMMARY_MAX - 1] + "…"


def alert_report(alert: Alert, index: int, received: dt.datetime) -> Report:
    labels = alert.labels  # the model is discarded: its dict is the report's, no copy
    host, host_label = host_of(labels)
    service, service_label = pick(labels, "service", "job")
    check, check_label = pick(labels, "check", "alertname")
    if not (host in VALID_NAMES and service in VALID_NAMES and check in VALID_NAMES):
        where = f"alerts[{index}].labels"  # built only when a name is new: most alerts repeat them
        check_name(host, f"{where}.{host_label}", "host (labels.host or labels.instance)")
        check_name(service, f"{where}.{service_label}", "service (labels.service or labels.job)")
        check_name(check, f"{where}.{check_label}", "check (labels.check or labels.alertname)")
    annotations = alert.annotations
    summary = annotations.get("summary") or annotations.get("description") or labels.get("alertname", "")
    category = labels.get("category", "ops")
    return Report(
        source="alertmanager",
        host=host,
        service=service,
        check=check,
        summary=bounded_summary(summary) or check,
        severity=severity_of(labels.get("severity", "")),
        category=category if category in CATEGORIES else "ops",
        fingerprint=alert.fingerprint,
        status=alert.status,
        labels=labels,
        received=received,
    )


def parse_alerts(body: bytes, received: dt.datetime | None = None) -> Parsed:
    """An Alertmanager v4 webhook body, split per alert. Raises FieldError."""
    payload: AlertmanagerPayload = validate(AlertmanagerPayload, body)
    received = received or utcnow()  # once per request: the clock costs as much as the rest of an alert
    reports = [alert_report(alert, n, received) for n, alert in enumerate(payload.alerts)]
    keys: list[str | None] = [f"{a.fingerprint}|{a.status}|{a.startsAt}" for a in payload.alerts]
    return Parsed(reports, keys, received)


# -- agents --------------------------------------------------------------------------------------------


def parse_event(body: bytes, received: dt.datetime | None = None) -> Parsed:
    """An agent's event: one report, source "agent", the sender's own name in labels["sender"]."""
    event: AgentEvent = validate(AgentEvent, body)
    received = received or utcnow()
    report = Report(
        source="agent",
        host=event.host,
        service=event.service,
        check=event.check,
        summary=event.summary,
        severity=event.severity,
        category=event.category,
        fingerprint=event.fingerprint or "",
        status=event.status,
        labels={"sender": event.source},
        received=received,
    )
    return Parsed([report], [None], received)


# The request kinds, by the name the spool records: the same parser reads a request again on replay.
Parser = Callable[[bytes, dt.datetime | None], Parsed]
PARSERS: dict[str, Parser] = {"alerts": parse_alerts, "events": parse_event}

"""The intake's request parsing: Alertmanager v4 payloads split per alert, agents' events, and the field a
bad request names (opsrunner/intake/schema.py)."""

from __future__ import annotations

import json
from typing import Any

import pytest

from opsrunner.intake.schema import SUMMARY_MAX, FieldError, host_of, parse_alerts, parse_event, severity_of


def alert(**over: Any) -> dict[str, Any]:
    base = {
        "status": "firing",
        "labels": {"alertname": "InstanceDown", "instance": "node1:8082", "job": "blockchain-node"},
        "annotations": {"summary": "node1 is down"},
        "startsAt": "2026-12-04T20:00:00.000Z",
        "endsAt": "0001-01-01T00:00:00Z",
        "generatorURL": "http://prom:9090/graph",
        "fingerprint": "a1b2c3d4e5f60718",
    }
    return {**base, **over}


def payload(*alerts: dict[str, Any], **over: Any) -> bytes:
    body = {
        "version": "4",
        "receiver": "intake",
        "status": "firing",
        "alerts": list(alerts) or [alert()],
        "groupLabels": {"alertname": "InstanceDown"},
        "commonLabels": {},
        "commonAnnotations": {},
        "externalURL": "http://am:9093",
        "groupKey": '{}:{alertname="InstanceDown"}',
        "truncatedAlerts": 0,
        **over,
    }
    return json.dumps(body).encode()


def event(**over: Any) -> bytes:
    base = {
        "source": "build-agent",
        "host": "web1",
        "service": "coordinator-api",
        "check": "api errors",
        "summary": "5xx rate above 5 %",
        "severity": "warning",
        "category": "code",
        "fingerprint": "agent-5xx-web1",
        "status": "firing",
    }
    return json.dumps({**base, **over}).encode()


def refused(parse: Any, body: bytes) -> FieldError:
    with pytest.raises(FieldError) as caught:
        parse(body)
    return caught.value


def test_an_alert_group_is_split_per_alert_with_derived_fields() -> None:
    second = alert(
        labels={
            "alertname": "ChainStalled",
            "host": "node2",
            "instance": "10.0.0.2:8082",
            "service": "blockchain-node",
            "check": "chain height",
            "severity": "page",
            "category": "security",
        },
        annotations={"description": "height did not move"},
        fingerprint="ffff0000",
        status="resolved",
    )
    parsed = parse_alerts(payload(alert(), second))
    first, other = parsed.reports
    assert (first.source, first.host, first.service, first.check) == (
        "alertmanager",
        "node1",
        "blockchain-node",
        "InstanceDown",
    )
    assert (first.summary, first.severity, first.category, first.status) == (
        "node1 is down",
        "info",
        "ops",
        "firing",
    )
    assert first.labels["instance"] == "node1:8082"
    assert (other.host, other.service, other.check, other.summary) == (
        "node2",
        "blockchain-node",
        "chain height",
        "height did not move",
    )
    assert (other.severity, other.category, other.status, other.fingerprint) == (
        "critical",
        "security",
        "resolved",
        "ffff0000",
    )
    assert parsed.dedup_keys == [
        "a1b2c3d4e5f60718|firing|2026-12-04T20:00:00.000Z",
        "ffff0000|resolved|2026-12-04T20:00:00.000Z",
    ]


def test_summary_falls_back_to_the_alertname_and_is_bounded() -> None:
    assert parse_alerts(payload(alert(annotations={}))).reports[0].summary == "InstanceDown"
    long = parse_alerts(payload(alert(annotations={"summary": "x" * 3000}))).reports[0].summary
    assert len(long) == SUMMARY_MAX


@pytest.mark.parametrize(
    ("instance", "host"),
    [("node1:9100", "node1"), ("node1", "node1"), ("[::1]:9100", "::1"), ("10.1.2.3:80", "10.1.2.3")],
)
def test_host_from_instance_without_port(instance: str, host: str) -> None:
    assert host_of({"instance": instance})[0] == host


@pytest.mark.parametrize(
    ("given", "ours"),
    [
        ("critical", "critical"),
        ("Error", "critical"),
        ("page", "critical"),
        ("warning", "warning"),
        ("none", "info"),
        ("", "info"),
    ],
)
def test_severity_mapping(given: str, ours: str) -> None:
    assert severity_of(given) == ours


def test_unknown_category_is_ops() -> None:
    labels = {**alert()["labels"], "category": "finance"}
    assert parse_alerts(payload(alert(labels=labels))).reports[0].category == "ops"


@pytest.mark.parametrize(
    ("alerts", "field"),
    [
        (
            [alert(), alert(), alert(), alert(labels={"alertname": "X", "host": "a/b", "job": "j"})],
            "alerts[3].labels.host",
        ),
        ([alert(labels={"alertname": "X", "job": "j"})], "alerts[0].labels.host"),
        ([alert(labels={"alertname": "X", "instance": "h:1"})], "alerts[0].labels.service"),
        ([alert(labels={"instance": "h:1", "job": "j"})], "alerts[0].labels.check"),
        (
            [alert(labels={"alertname": "X", "instance": "<script>:1", "job": "j"})],
            "alerts[0].labels.instance",
        ),
        ([alert(), alert(fingerprint="../../etc")], "alerts[1].fingerprint"),
        ([alert(status="pending")], "alerts[0].status"),
        ([alert(surprise=1)], "alerts[0].surprise"),
        ([alert(labels={"bad-name": "x", "alertname": "X"})], "alerts[0].labels.bad-name"),
        (
            [alert(labels={"alertname": "X", "job": "j", "host": "h", "big": "v" * 5000})],
            "alerts[0].labels.big",
        ),
    ],
)
def test_a_bad_alert_names_its_field(alerts: list[dict[str, Any]], field: str) -> None:
    error = refused(parse_alerts, payload(*alerts))
    assert error.field == field, error
    assert error.status == 422


def test_a_bad_payload_names_its_field() -> None:
    assert refused(parse_alerts, payload(version="3")).field == "version"
    assert refused(parse_alerts, payload(extra=True)).field == "extra"
    assert refused(parse_alerts, payload(alerts=[])).field == "alerts"
    not_json = refused(parse_alerts, b"{nope")
    assert (not_json.field, not_json.status) == ("body", 400)
    assert refused(parse_alerts, b"[1, 2]").status == 400


def test_an_agent_event_is_one_agent_report_with_its_sender() -> None:
    (report,) = parse_event(event()).reports
    assert (report.source, report.host, report.service, report.check) == (
        "agent",
        "web1",
        "coordinator-api",
        "api errors",
    )
    assert (report.severity, report.category, report.status, report.fingerprint) == (
        "warning",
        "code",
        "firing",
        "agent-5xx-web1",
    )
    assert report.labels == {"sender": "build-agent"}
    minimal = json.loads(event())
    for key in ("severity", "category", "fingerprint", "status"):
        del minimal[key]
    (report,) = parse_event(json.dumps(minimal).encode()).reports
    assert (report.severity, report.category, report.status, report.fingerprint) == (
        "critical",
        "ops",
        "firing",
        "",
    )


@pytest.mark.parametrize(
    ("over", "field"),
    [
        ({"host": "web1\n"}, "host"),
        ({"service": "../etc"}, "service"),
        ({"summary": "x" * (SUMMARY_MAX + 1)}, "summary"),
        ({"summary": ""}, "summary"),
        ({"severity": "urgent"}, "severity"),
        ({"category": "finance"}, "category"),
        ({"status": "open"}, "status"),
        ({"fingerprint": "a b"}, "fingerprint"),
        ({"host": 5}, "host"),
        ({"labels": {"a": "b"}}, "labels"),
    ],
)
def test_a_bad_event_names_its_field(over: dict[str, Any], field: str) -> None:
    assert refused(parse_event, event(**over)).field == field


def test_a_missing_event_field_is_named() -> None:
    body = json.loads(event())
    del body["check"]
    error = refused(parse_event, json.dumps(body).encode())
    assert (error.field, error.message) == ("check", "required field is missing")

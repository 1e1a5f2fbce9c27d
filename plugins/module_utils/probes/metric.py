# -*- coding: utf-8 -*-
# Copyright: (c) 2026, aitbc-ops developers
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""The metric probe: one sample of a Prometheus text endpoint, its bounds, and whether it rose.

The endpoint is fetched as the http probe fetches (one deadline for the whole exchange, at most 1 MiB read)
and parsed with prometheus_client, a requirement of this probe only: it is imported when the probe runs, so
hosts without it can still run every other probe. "Has it risen since the previous check" needs the
previous value: it is kept on the host, one small JSON file per probe in ``state_dir``.
"""

from __future__ import annotations

import hashlib
import json
import math
import os
import re
import time
from collections.abc import Callable, Iterable
from dataclasses import asdict, dataclass
from typing import Any

from ansible_collections.aitbc.ops.plugins.module_utils._files import atomic_write
from ansible_collections.aitbc.ops.plugins.module_utils._text import human_bytes
from ansible_collections.aitbc.ops.plugins.module_utils.probes.base import (
    Outcome,
    ProbeError,
    remaining,
)
from ansible_collections.aitbc.ops.plugins.module_utils.probes.http import BODY_LIMIT, HttpProbe

DEFAULT_STATE_DIR = "~/.cache/aitbc-ops/probe-state"
MISSING_LIBRARY = (
    "the metric probe needs the Python package prometheus_client on the host "
    "(pip install prometheus-client, or the Debian package python3-prometheus-client)"
)
STATE_VERSION = 1
_METRIC_NAME_RE = re.compile(r"^[a-zA-Z_:][a-zA-Z0-9_:]*$")
_LABEL_NAME_RE = re.compile(r"^[a-zA-Z_][a-zA-Z0-9_]*$")
# The http probe's settings that a metric probe does not expose: a plain GET that must answer 200.
_HTTP_FIXED = {
    "method": "GET",
    "status": [200],
    "json": None,
    "body_contains": None,
    "max_latency_ms": None,
    "tls_min_days": None,
}

Sample = tuple[str, dict[str, str], float]  # (name, labels, value)


def text_parser() -> Callable[[str], Iterable[Any]]:
    """prometheus_client's text parser, imported only now; ProbeError naming the package when missing."""
    try:
        from prometheus_client.parser import text_string_to_metric_families
    except ImportError:
        raise ProbeError(MISSING_LIBRARY) from None
    return text_string_to_metric_families


def matching_samples(families: Iterable[Any], metric: str, labels: dict[str, str]) -> list[Sample]:
    """Samples named ``metric`` (the sample's own name: ``x_total``, ``x_bucket``) whose labels include
    ``labels``. Iterating ``families`` parses the text, so a parse error surfaces here."""
    found: list[Sample] = []
    for family in families:
        for sample in family.samples:
            name, sample_labels, value = sample[0], dict(sample[1]), float(sample[2])
            if name == metric and all(sample_labels.get(k) == v for k, v in labels.items()):
                found.append((name, sample_labels, value))
    return found


def selector(metric: str, labels: dict[str, str]) -> str:
    """PromQL-like text for messages: up{job="node"}."""
    if not labels:
        return metric
    return metric + "{" + ",".join(f'{key}="{value}"' for key, value in sorted(labels.items())) + "}"


def show_value(value: float) -> str:
    """42 rather than 42.0; else the shortest exact text; NaN and infinities as Prometheus writes them."""
    value = float(value)
    if math.isnan(value):
        return "NaN"
    if math.isinf(value):
        return "+Inf" if value > 0 else "-Inf"
    if value.is_integer() and abs(value) < 1e15:
        return str(int(value))
    return repr(value)


def show_age(seconds: float) -> str:
    seconds = max(seconds, 0.0)
    if seconds < 120:
        return f"{seconds:.0f} s"
    if seconds < 7200:
        return f"{seconds / 60:.0f} min"
    return f"{seconds / 3600:.1f} h"


# --------------------------------------------------------------------------------------------------
# "Has it risen since the previous check": the state file and the decision
# --------------------------------------------------------------------------------------------------


@dataclass
class Seen:
    """What the previous check saw: the value, when (epoch seconds), and when it last rose (or was first
    seen). ``rose`` lets a quick re-check (right after a restart) pass within ``increased_within``."""

    value: float
    seen: float
    rose: float


def load_seen(path: str) -> Seen | None:
    """The previous check's record, or None when there is none or it cannot be read (first sight again)."""
    try:
        with open(path, encoding="utf-8") as handle:
            doc = json.load(handle)
        seen = Seen(float(doc["value"]), float(doc["seen"]), float(doc["rose"]))
    except (OSError, ValueError, TypeError, KeyError):
        return None
    if not all(math.isfinite(x) for x in (seen.value, seen.seen, seen.rose)):
        return None
    return seen


def save_seen(path: str, seen: Seen, about: dict[str, Any]) -> None:
    """Write the record atomically (0600) in its folder, created 0700 when missing."""
    folder = os.path.dirname(path)
    if not os.path.isdir(folder):
        os.makedirs(folder, mode=0o700, exist_ok=True)
    doc = {"version": STATE_VERSION, **about, **asdict(seen)}
    atomic_write(path, (json.dumps(doc, sort_keys=True) + "\n").encode("utf-8"), mode=0o600)


def judge_increase(value: float, previous: Seen | None, now: float, within: float) -> tuple[bool, str, Seen]:
    """(ok, text, record to save). First sight is a baseline; a value lower than before is a reset (a
    restarted exporter, a re-created chain) and a new baseline; an unchanged value passes only while its
    last rise is at most ``within`` seconds old (0: it must be higher than at the previous check)."""
    if previous is None:
        return True, "baseline (first check)", Seen(value, now, now)
    ago = show_age(now - previous.seen)
    if value > previous.value:
        return True, f"increased from {show_value(previous.value)} ({ago} ago)", Seen(value, now, now)
    if value < previous.value:
        text = f"went down from {show_value(previous.value)} ({ago} ago): a reset, new baseline"
        return True, text, Seen(value, now, now)
    quiet = max(now - previous.rose, 0.0)
    record = Seen(value, now, previous.rose)
    if quiet <= within:
        return True, f"unchanged for {show_age(quiet)} (allowed {show_age(within)})", record
    return (
        False,
        f"not increased since the previous check {ago} ago (unchanged for {show_age(quiet)})",
        record,
    )


# --------------------------------------------------------------------------------------------------
# The probe
# --------------------------------------------------------------------------------------------------


class MetricProbe(HttpProbe):
    """An http probe underneath (fetch, deadline, TLS); its own options and checks on top."""

    type_name = "metric"
    options = {
        "url": {"type": "str", "required": True},
        "metric": {"type": "str", "required": True},
        "metric_labels": {"type": "dict"},
        "min": {"type": "float"},
        "max": {"type": "float"},
        "increased": {"type": "bool", "default": False},
        "increased_within": {"type": "float", "default": 0.0},
        # No default here: AnsibleModule would expand "~" in it, and build_probe would then take the filled-in
        # default for an option the user set (on every probe type). setup() applies it.
        "state_dir": {"type": "path"},
        "validate_certs": {"type": "bool", "default": True},
        "headers": {"type": "dict"},
    }

    def setup(self) -> None:
        self.params = {**_HTTP_FIXED, **self.params}
        super().setup()
        p = self.params
        if not _METRIC_NAME_RE.match(p["metric"]):
            raise ValueError(f"metric '{p['metric']}' is not a Prometheus metric name")
        labels = p.get("metric_labels") or {}
        for key, value in labels.items():
            if not _LABEL_NAME_RE.match(str(key)):
                raise ValueError(f"metric_labels: '{key}' is not a Prometheus label name")
            if isinstance(value, (dict, list)) or value is None:
                raise ValueError(f"metric_labels: the value of {key} must be a string")
        self.labels = {str(key): str(value) for key, value in labels.items()}
        if p.get("min") is not None and p.get("max") is not None and p["min"] > p["max"]:
            raise ValueError(f"min ({p['min']:g}) is greater than max ({p['max']:g})")
        if p["increased_within"] < 0:
            raise ValueError("increased_within must not be negative")
        if p["increased_within"] > 0 and not p["increased"]:
            raise ValueError("increased_within needs increased=true")
        if p.get("state_dir") == "":
            raise ValueError("state_dir must not be empty")
        p["state_dir"] = p.get("state_dir") or os.path.expanduser(DEFAULT_STATE_DIR)

    def default_name(self) -> str:
        return f"metric:{self.public_url}#{selector(self.params['metric'], self.labels)}"

    def state_path(self) -> str:
        """One file per probe: the name says whose it is, the hash keeps two probes' files apart."""
        key = json.dumps([self.name, self.public_url, self.params["metric"], self.labels], sort_keys=True)
        digest = hashlib.sha256(key.encode("utf-8")).hexdigest()[:16]
        slug = re.sub(r"[^A-Za-z0-9_.-]+", "-", self.name).strip("-.")[:48] or "metric"
        return os.path.join(self.params["state_dir"], f"{slug}-{digest}.json")

    def run(self, deadline: float) -> Outcome:
        parse = text_parser()  # before the request: a host without the library fails at once
        status, body, truncated, latency, _days = self._fetch(deadline)
        data: dict[str, Any] = {"status": status, "bytes": len(body)}
        head = f"{status} in {latency * 1000:.0f} ms"
        if status != 200:
            return False, f"{head}, expected 200", data
        if truncated:
            return False, f"{head}; the metrics text is larger than {human_bytes(BODY_LIMIT)}", data
        wanted = selector(self.params["metric"], self.labels)
        try:
            samples = matching_samples(parse(body.decode("utf-8")), self.params["metric"], self.labels)
        except (ValueError, TypeError, IndexError, KeyError) as exc:  # the parser's errors on bad text
            return (
                False,
                f"{head}; cannot parse the metrics text: {str(exc)[:120] or type(exc).__name__}",
                data,
            )
        remaining(deadline)
        if not samples:
            return False, f"{head}; no sample {wanted} in the metrics text", data
        if len(samples) > 1:
            shown = ", ".join(selector(name, labels) for name, labels, _v in samples[:3])
            more = ", ..." if len(samples) > 3 else ""
            return (
                False,
                f"{head}; {len(samples)} samples match {wanted} ({shown}{more}): add metric_labels",
                data,
            )
        _name, labels, value = samples[0]
        data.update(value=value if math.isfinite(value) else show_value(value), labels=labels)
        return self._judge(value, data, f"{wanted} = {show_value(value)}")

    def _judge(self, value: float, data: dict[str, Any], head: str) -> Outcome:
        p = self.params
        passed: list[str] = []
        failed: list[str] = []
        checks = p.get("min") is not None or p.get("max") is not None or p["increased"]
        if checks and math.isnan(value):
            return False, f"{head}; NaN cannot be compared", data
        if p.get("min") is not None:
            ok = value >= p["min"]
            (passed if ok else failed).append(f"{'at least' if ok else 'below the minimum'} {p['min']:g}")
        if p.get("max") is not None:
            ok = value <= p["max"]
            (passed if ok else failed).append(f"{'at most' if ok else 'above the maximum'} {p['max']:g}")
        if p["increased"]:
            ok, text = self._increase(value, data)
            (passed if ok else failed).append(text)
        return not failed, "; ".join([head] + (failed or passed)), data

    def _increase(self, value: float, data: dict[str, Any]) -> tuple[bool, str]:
        path = self.state_path()
        previous = load_seen(path)
        now = time.time()
        ok, text, record = judge_increase(value, previous, now, self.params["increased_within"])
        if previous is not None:
            data.update(previous=previous.value, previous_age_s=round(max(now - previous.seen, 0.0), 1))
        try:
            about = {"name": self.name, "url": self.public_url, "metric": self.params["metric"]}
            save_seen(path, record, dict(about, labels=self.labels))
        except OSError as exc:
            return False, f"{text}, but the value cannot be kept for the next check: {exc.strerror or exc}"
        return ok, text

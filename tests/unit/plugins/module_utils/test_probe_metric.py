"""The metric probe against a real local http.server serving Prometheus text: bounds, "increased since the
previous check" with its state file, baselines, missing samples and a host without prometheus_client."""

from __future__ import annotations

import http.server
import json
import os
import stat
import subprocess
import sys
import threading
from collections.abc import Iterator
from pathlib import Path

import pytest
from ansible_collections.aitbc.ops.plugins.module_utils.probes import metric as metric_probes
from ansible_collections.aitbc.ops.plugins.module_utils.probes.base import ProbeConfigError, coerce
from ansible_collections.aitbc.ops.plugins.module_utils.probes.http import BODY_LIMIT
from ansible_collections.aitbc.ops.plugins.module_utils.probes.metric import (
    MISSING_LIBRARY,
    Seen,
    judge_increase,
    show_value,
)
from ansible_collections.aitbc.ops.plugins.module_utils.probes.registry import (
    argument_spec,
    build_probes,
    check_health,
)

# The folder holding ansible_collections/, for a child python that imports the probes.
COLLECTIONS = str(Path(metric_probes.__file__).parents[6])

TEXT = """# HELP aitbc_chain_height Height of the chain head.
# TYPE aitbc_chain_height gauge
aitbc_chain_height {height}
# TYPE aitbc_blocks counter
aitbc_blocks_total 7
# TYPE up gauge
up{{job="node",instance="a"}} 1
up{{job="node",instance="b"}} 0
up{{job="rpc",instance="a"}} 1
# TYPE temperature gauge
temperature NaN
"""


class Exporter(http.server.ThreadingHTTPServer):
    """Serves /metrics from ``height``; /down answers 503, /broken is not Prometheus text, /big is too big."""

    daemon_threads = True
    height = 42


class Handler(http.server.BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    server: Exporter

    def log_message(self, *args: object) -> None:
        pass

    def do_GET(self) -> None:  # noqa: N802 - http.server naming
        status, body = 200, TEXT.format(height=self.server.height).encode()
        if self.path == "/down":
            status = 503
        elif self.path == "/broken":
            body = b"aitbc_chain_height forty-two\n"
        elif self.path == "/big":
            body = b"# padding\n" * (BODY_LIMIT // 10 + 1)
        self.send_response(status)
        self.send_header("Content-Type", "text/plain; version=0.0.4")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)


@pytest.fixture(scope="module")
def exporter() -> Iterator[Exporter]:
    server = Exporter(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)
    thread.start()
    try:
        yield server
    finally:
        server.shutdown()
        server.server_close()


def url(server: Exporter, path: str = "/metrics") -> str:
    return f"http://127.0.0.1:{server.server_address[1]}{path}"


def run_one(spec: dict) -> dict:
    return check_health([spec])["results"][0]


# ------------------------------------------------------------------------------------ values and bounds


def test_bounds_pass_and_fail_with_the_value_in_data(exporter: Exporter) -> None:
    exporter.height = 42
    spec = {"type": "metric", "url": url(exporter), "metric": "aitbc_chain_height"}
    result = run_one({**spec, "min": 1, "max": 100})
    assert result["ok"] is True, result
    assert result["detail"] == "aitbc_chain_height = 42; at least 1; at most 100"
    assert result["data"]["value"] == 42.0 and result["data"]["status"] == 200
    assert result["name"] == f"metric:{url(exporter)}#aitbc_chain_height"
    assert result["target"] == f"{url(exporter)}#aitbc_chain_height"
    low = run_one({**spec, "min": 50})
    assert low["ok"] is False and low["detail"] == "aitbc_chain_height = 42; below the minimum 50"
    high = run_one({**spec, "max": 10.5})
    assert high["ok"] is False and high["detail"] == "aitbc_chain_height = 42; above the maximum 10.5"
    present = run_one(spec)
    assert present["ok"] is True and present["detail"] == "aitbc_chain_height = 42"


def test_counter_samples_and_labels_select_one_sample(exporter: Exporter) -> None:
    counter = run_one({"type": "metric", "url": url(exporter), "metric": "aitbc_blocks_total", "min": 7})
    assert counter["ok"] is True, counter
    spec = {"type": "metric", "url": url(exporter), "metric": "up"}
    down = run_one({**spec, "metric_labels": {"job": "node", "instance": "b"}, "min": 1})
    assert down["ok"] is False
    assert down["detail"] == 'up{instance="b",job="node"} = 0; below the minimum 1'
    assert down["data"]["labels"] == {"job": "node", "instance": "b"}
    ambiguous = run_one({**spec, "metric_labels": {"instance": "a"}})
    assert ambiguous["ok"] is False
    assert ambiguous["detail"].endswith(
        '2 samples match up{instance="a"} (up{instance="a",job="node"}, up{instance="a",job="rpc"}): '
        "add metric_labels"
    )


def test_missing_sample_bad_text_non_200_and_too_big(exporter: Exporter) -> None:
    missing = run_one({"type": "metric", "url": url(exporter), "metric": "aitbc_peers"})
    assert missing["ok"] is False and missing["detail"].endswith(
        "; no sample aitbc_peers in the metrics text"
    )
    wrong_label = run_one(
        {"type": "metric", "url": url(exporter), "metric": "up", "metric_labels": {"job": "wallet"}}
    )
    assert wrong_label["detail"].endswith('; no sample up{job="wallet"} in the metrics text')
    broken = run_one({"type": "metric", "url": url(exporter, "/broken"), "metric": "aitbc_chain_height"})
    assert broken["ok"] is False and "cannot parse the metrics text" in broken["detail"]
    down = run_one({"type": "metric", "url": url(exporter, "/down"), "metric": "aitbc_chain_height"})
    assert (
        down["ok"] is False
        and down["detail"].startswith("503 in ")
        and down["detail"].endswith("expected 200")
    )
    big = run_one({"type": "metric", "url": url(exporter, "/big"), "metric": "aitbc_chain_height"})
    assert big["ok"] is False and big["detail"].endswith("the metrics text is larger than 1.0 MiB")


def test_nan_is_reported_and_fails_any_comparison(exporter: Exporter) -> None:
    spec = {"type": "metric", "url": url(exporter), "metric": "temperature"}
    assert run_one(spec)["ok"] is True and run_one(spec)["data"]["value"] == "NaN"
    result = run_one({**spec, "max": 90})
    assert result["ok"] is False and result["detail"] == "temperature = NaN; NaN cannot be compared"


def test_refused_connection_is_a_failure(tmp_path: Path) -> None:
    import socket

    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    result = run_one({"type": "metric", "url": f"http://127.0.0.1:{port}/metrics", "metric": "up"})
    assert result["ok"] is False and result["detail"] == "connection refused"


# ---------------------------------------------------------------------- increased, and its state file


def test_increased_keeps_a_private_state_file_and_compares_with_the_previous_check(
    exporter: Exporter, tmp_path: Path
) -> None:
    state = tmp_path / "aitbc" / "probe-state"
    spec = {
        "type": "metric", "name": "chain height increased", "url": url(exporter),
        "metric": "aitbc_chain_height", "increased": True, "state_dir": str(state),
    }  # fmt: skip
    exporter.height = 10
    first = run_one(spec)
    assert first["ok"] is True and first["detail"] == "aitbc_chain_height = 10; baseline (first check)"
    assert stat.S_IMODE(state.stat().st_mode) == 0o700
    [record] = list(state.iterdir())
    assert record.name.startswith("chain-height-increased-") and record.suffix == ".json"
    assert stat.S_IMODE(record.stat().st_mode) == 0o600
    saved = json.loads(record.read_text())
    assert saved["value"] == 10 and saved["metric"] == "aitbc_chain_height" and saved["version"] == 1

    stalled = run_one(spec)
    assert stalled["ok"] is False
    assert stalled["detail"].startswith("aitbc_chain_height = 10; not increased since the previous check ")
    assert stalled["data"]["previous"] == 10 and stalled["data"]["previous_age_s"] >= 0

    exporter.height = 12
    rose = run_one(spec)
    assert rose["ok"] is True and rose["detail"].startswith("aitbc_chain_height = 12; increased from 10 (")

    exporter.height = 0  # the chain was re-created: a new baseline, not a failure
    reset = run_one(spec)
    assert (
        reset["ok"] is True and "went down from 12" in reset["detail"] and "new baseline" in reset["detail"]
    )


def test_increased_within_lets_a_quick_recheck_pass(exporter: Exporter, tmp_path: Path) -> None:
    spec = {
        "type": "metric", "url": url(exporter), "metric": "aitbc_chain_height", "increased": True,
        "increased_within": 3600, "state_dir": str(tmp_path),
    }  # fmt: skip
    exporter.height = 5
    assert run_one(spec)["detail"].endswith("baseline (first check)")
    again = run_one(spec)
    assert again["ok"] is True and "unchanged for 0 s (allowed 60 min)" in again["detail"]


def test_missing_or_corrupt_state_is_a_baseline(exporter: Exporter, tmp_path: Path) -> None:
    spec = {
        "type": "metric", "url": url(exporter), "metric": "aitbc_chain_height", "increased": True,
        "state_dir": str(tmp_path),
    }  # fmt: skip
    exporter.height = 3
    run_one(spec)
    [record] = list(tmp_path.iterdir())
    for garbage in ("{not json", '{"value": "x", "seen": 1, "rose": 1}', "[]", ""):
        record.write_text(garbage)
        result = run_one(spec)
        assert result["ok"] is True and result["detail"].endswith("baseline (first check)"), garbage


def test_two_probes_of_one_sample_keep_separate_state(exporter: Exporter, tmp_path: Path) -> None:
    base = {"type": "metric", "url": url(exporter), "metric": "aitbc_chain_height", "increased": True}
    specs = [{**base, "name": name, "state_dir": str(tmp_path)} for name in ("a", "b")]
    exporter.height = 20
    assert check_health(specs)["healthy"] is True
    assert len(list(tmp_path.iterdir())) == 2


def test_unwritable_state_dir_fails_the_probe(exporter: Exporter, tmp_path: Path) -> None:
    blocker = tmp_path / "file"
    blocker.write_text("not a folder")
    spec = {
        "type": "metric", "url": url(exporter), "metric": "aitbc_chain_height", "increased": True,
        "state_dir": str(blocker / "state"),
    }  # fmt: skip
    result = run_one(spec)
    assert result["ok"] is False and "cannot be kept for the next check" in result["detail"]


def test_judge_increase_rules() -> None:
    assert judge_increase(5, None, 100.0, 0) == (True, "baseline (first check)", Seen(5, 100.0, 100.0))
    previous = Seen(5, 100.0, 40.0)
    ok, text, record = judge_increase(5, previous, 130.0, 0)
    assert (ok, record) == (False, Seen(5, 130.0, 40.0))
    assert text == "not increased since the previous check 30 s ago (unchanged for 90 s)"
    assert judge_increase(5, previous, 130.0, 90)[0] is True
    assert judge_increase(6, previous, 130.0, 0)[2] == Seen(6, 130.0, 130.0)


def test_show_value() -> None:
    assert [show_value(v) for v in (42.0, 0.25, float("nan"), float("inf"), 1e20)] == [
        "42", "0.25", "NaN", "+Inf", "1e+20",
    ]  # fmt: skip


# ----------------------------------------------------------------------------------- definitions


@pytest.mark.parametrize(
    ("spec", "message"),
    [
        ({}, "option url is required for metric probes"),
        ({"url": "http://h/metrics"}, "option metric is required for metric probes"),
        ({"url": "http://h/", "metric": "chain-height"}, "'chain-height' is not a Prometheus metric name"),
        ({"url": "ftp://h/", "metric": "up"}, "is not an http:// or https:// URL"),
        ({"url": "http://h/", "metric": "up", "min": 5, "max": 1}, "min (5) is greater than max (1)"),
        ({"url": "http://h/", "metric": "up", "increased_within": 5}, "needs increased=true"),
        ({"url": "http://h/", "metric": "up", "metric_labels": {"a-b": "x"}}, "not a Prometheus label name"),
        ({"url": "http://h/", "metric": "up", "json": ["a == 1"]}, "option(s) json do not apply to metric"),
    ],
)  # fmt: skip
def test_bad_definitions(spec: dict, message: str) -> None:
    with pytest.raises(ProbeConfigError, match=None) as excinfo:
        build_probes([{"type": "metric", **spec}])
    assert message in str(excinfo.value)


# -------------------------------------------------------------------- a host without prometheus_client


def test_a_host_without_prometheus_client_fails_with_the_package_named(exporter: Exporter) -> None:
    """A real interpreter without site-packages (-S): the other probes still load, this one says what to
    install."""
    code = (
        "import importlib.util, json, sys; sys.path.insert(0, sys.argv[1]); "
        "assert importlib.util.find_spec('prometheus_client') is None, 'prometheus_client is importable'; "
        "from ansible_collections.aitbc.ops.plugins.module_utils.probes.registry import check_health; "
        "print(json.dumps(check_health([{'type': 'metric', 'url': sys.argv[2], 'metric': 'up'},"
        " {'type': 'load', 'max_load_per_cpu': 10000}])))"
    )
    done = subprocess.run(
        [sys.executable, "-S", "-c", code, COLLECTIONS, url(exporter)],
        capture_output=True, text=True, timeout=60, check=False, env={**os.environ, "PYTHONPATH": ""},
    )  # fmt: skip
    if "prometheus_client is importable" in done.stderr:
        pytest.skip("prometheus_client is importable without site-packages here")
    assert done.returncode == 0, done.stderr
    metric, load = json.loads(done.stdout)["results"]
    assert metric["ok"] is False and metric["detail"] == MISSING_LIBRARY
    assert (
        "pip install prometheus-client" in MISSING_LIBRARY and "python3-prometheus-client" in MISSING_LIBRARY
    )
    assert load["ok"] is True


def test_module_defaults_of_every_option_are_accepted_by_a_metric_probe(exporter: Exporter) -> None:
    """AnsibleModule fills each suboption with its merged default (and expands "~" in path options) before
    build_probe sees it: those values must read as "not given" for a metric probe and for the others."""
    filled = {key: spec["default"] for key, spec in argument_spec().items() if "default" in spec}
    assert not any(
        spec.get("type") == "path"
        and "default" in spec
        and str(spec["default"]) != coerce(spec["default"], "path")
        for spec in argument_spec().values()
    ), "a path default that AnsibleModule would rewrite"
    spec = {**filled, "type": "metric", "url": url(exporter), "metric": "aitbc_chain_height"}
    other = {**filled, "type": "load", "max_load_per_cpu": 10_000}
    assert check_health([spec, other])["healthy"] is True

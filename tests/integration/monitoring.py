"""Real Prometheus and Alertmanager (Debian's `prometheus` and `prometheus-alertmanager`) for tests.

Each runs on a free loopback port with its config and data in a folder of the test's, and is stopped by
PID. Recipes and measured timings: /work/shared/notes/real-parts.md.

    with start_alertmanager(tmp / "am", webhook_url, credentials_file) as am, \\
         start_prometheus(tmp / "prom", [Target(addr, "node1", "blockchain-rpc")],
                          fast_rules(tmp / "rules.yml"), am.address) as prom:
        prom.wait_for_targets(1)

`fast_rules` rewrites the shipped monitoring/prometheus-rules.yml for a 1 s scrape (short `for:` and range
windows); `WebhookReceiver` is a tiny real HTTP receiver that records what Alertmanager delivers.
`missing_binaries()` says why a test must skip.
"""

from __future__ import annotations

import contextlib
import http.server
import json
import os
import re
import shutil
import signal
import subprocess
import threading
import time
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml
from ports import free_port
from stack import REPO

RULES = REPO / "monitoring" / "prometheus-rules.yml"
PROMETHEUS = "prometheus"
ALERTMANAGER = "prometheus-alertmanager"
PROMTOOL = "promtool"
READY_TIMEOUT = 20.0
STOP_TIMEOUT = 10.0
_RANGE_RE = re.compile(r"\[\d+(?:ms|[smhdwy])\]")


def missing_binaries() -> str | None:
    """Why the monitoring tests cannot run here, or None."""
    absent = [name for name in (PROMETHEUS, ALERTMANAGER, PROMTOOL) if shutil.which(name) is None]
    if absent:
        return (
            f"{' and '.join(absent)} not installed (Debian packages prometheus and prometheus-alertmanager; "
            "`make deb-deps` installs them)"
        )
    return None


def wait_until(check: Callable[[], Any], what: str, timeout: float, interval: float = 0.2) -> Any:
    """The first truthy value of ``check()``; AssertionError after ``timeout`` seconds."""
    deadline = time.monotonic() + timeout
    while True:
        value = check()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout:g} s waiting for {what}")
        time.sleep(interval)


# --------------------------------------------------------------------------------------------- rules


def fast_rules(target: Path, for_: str = "0s", window: str = "5s", source: Path = RULES) -> Path:
    """The shipped rules with every `for:` set to ``for_`` and every range window ([5m]) to ``window``:
    the shipped values suit a 15 s scrape, a test scrapes every second. Returns ``target``."""
    doc = yaml.safe_load(source.read_text())
    for group in doc["groups"]:
        for rule in group["rules"]:
            if "alert" in rule:
                rule["for"] = for_
            rule["expr"] = _RANGE_RE.sub(f"[{window}]", str(rule["expr"]))
    target.parent.mkdir(parents=True, exist_ok=True)
    target.write_text(yaml.safe_dump(doc, sort_keys=False))
    return target


# ------------------------------------------------------------------------------------------- servers


@dataclass
class Server:
    """A started Prometheus or Alertmanager: its process, port and log file."""

    name: str
    proc: subprocess.Popen[bytes]
    port: int
    log: Path

    @property
    def address(self) -> str:
        return f"127.0.0.1:{self.port}"

    @property
    def url(self) -> str:
        return f"http://{self.address}"

    def log_tail(self, lines: int = 30) -> str:
        text = self.log.read_text(errors="replace") if self.log.exists() else ""
        return "\n".join(text.splitlines()[-lines:])

    def get_json(self, path: str, **query: str) -> Any:
        url = f"{self.url}{path}" + (f"?{urllib.parse.urlencode(query)}" if query else "")
        with urllib.request.urlopen(url, timeout=5) as response:
            return json.load(response)

    def ready(self) -> bool:
        try:
            with urllib.request.urlopen(f"{self.url}/-/ready", timeout=2) as response:
                return response.status == 200
        except (OSError, urllib.error.URLError):
            return False

    def stop(self) -> None:
        """SIGTERM by PID, SIGKILL if it lingers."""
        if self.proc.poll() is not None:
            return
        with contextlib.suppress(ProcessLookupError):
            os.kill(self.proc.pid, signal.SIGTERM)
        try:
            self.proc.wait(timeout=STOP_TIMEOUT)
        except subprocess.TimeoutExpired:
            with contextlib.suppress(ProcessLookupError):
                os.kill(self.proc.pid, signal.SIGKILL)
            self.proc.wait(timeout=STOP_TIMEOUT)


@contextlib.contextmanager
def _run(name: str, workdir: Path, args: list[str], port: int) -> Iterator[Server]:
    log = workdir / f"{name}.log"
    with log.open("wb") as out:
        proc = subprocess.Popen(args, stdout=out, stderr=subprocess.STDOUT, cwd=workdir)
    server = Server(name, proc, port, log)
    try:
        deadline = time.monotonic() + READY_TIMEOUT
        while not server.ready():
            if proc.poll() is not None or time.monotonic() > deadline:
                why = (
                    f"exited {proc.returncode}"
                    if proc.poll() is not None
                    else f"not ready in {READY_TIMEOUT:g} s"
                )
                raise AssertionError(f"{name} {why}:\n{server.log_tail()}")
            time.sleep(0.1)
        yield server
    finally:
        server.stop()


@contextlib.contextmanager
def start_alertmanager(
    workdir: Path, webhook_url: str, credentials_file: Path | None = None
) -> Iterator[Server]:
    """Alertmanager delivering every alert to ``webhook_url`` (resolved ones too), with a bearer token read
    from ``credentials_file``, grouped per alert name and instance and sent after 1 s."""
    workdir.mkdir(parents=True, exist_ok=True)
    webhook: dict[str, Any] = {"url": webhook_url, "send_resolved": True}
    if credentials_file is not None:
        webhook["http_config"] = {
            "authorization": {"type": "Bearer", "credentials_file": str(credentials_file)}
        }
    config = {
        "route": {
            "receiver": "intake",
            "group_by": ["alertname", "instance"],
            "group_wait": "1s",
            "group_interval": "1s",
            "repeat_interval": "1m",
        },
        "receivers": [{"name": "intake", "webhook_configs": [webhook]}],
    }
    (workdir / "alertmanager.yml").write_text(yaml.safe_dump(config, sort_keys=False))
    port = free_port()
    args = [
        shutil.which(ALERTMANAGER) or ALERTMANAGER,
        f"--config.file={workdir / 'alertmanager.yml'}",
        f"--storage.path={workdir / 'data'}",
        f"--web.listen-address=127.0.0.1:{port}",
        "--cluster.listen-address=",  # empty: no clustering (it would bind 0.0.0.0:9094)
    ]
    with _run("alertmanager", workdir, args, port) as server:
        yield server


@dataclass
class Target:
    """A scrape target with the labels that map its alerts to an inventory host and a catalogue service."""

    address: str  # 127.0.0.1:PORT
    host: str
    service: str
    labels: dict[str, str] = field(default_factory=dict)


class Prometheus(Server):
    def query(self, expr: str) -> list[dict[str, Any]]:
        doc = self.get_json("/api/v1/query", query=expr)
        return doc["data"]["result"] if doc.get("status") == "success" else []

    def wait_for_targets(self, count: int, timeout: float = 30.0) -> list[dict[str, Any]]:
        """Until ``count`` targets were scraped successfully (the first scrape comes ~6 s after start)."""
        return wait_until(
            lambda: (up := self.query("up == 1")) and len(up) >= count and up,
            f"{count} target(s) up in Prometheus",
            timeout,
            interval=0.5,
        )

    def firing(self) -> list[dict[str, Any]]:
        return [a for a in self.get_json("/api/v1/alerts")["data"]["alerts"] if a["state"] == "firing"]


@contextlib.contextmanager
def start_prometheus(
    workdir: Path,
    targets: list[Target],
    rules: Path | None = None,
    alertmanager: str | None = None,
    interval: str = "1s",
) -> Iterator[Prometheus]:
    """Prometheus scraping ``targets`` (job aitbc) every ``interval``, evaluating ``rules`` as often, and
    sending alerts to the Alertmanager at ``alertmanager`` (host:port)."""
    workdir.mkdir(parents=True, exist_ok=True)
    config: dict[str, Any] = {
        # A scrape_timeout above the interval is refused; the default is 10 s.
        "global": {"scrape_interval": interval, "scrape_timeout": interval, "evaluation_interval": interval},
        "scrape_configs": [
            {
                "job_name": "aitbc",
                "static_configs": [
                    {"targets": [t.address], "labels": {"host": t.host, "service": t.service, **t.labels}}
                    for t in targets
                ],
            }
        ],
    }
    if rules is not None:
        config["rule_files"] = [str(rules)]
    if alertmanager is not None:
        config["alerting"] = {"alertmanagers": [{"static_configs": [{"targets": [alertmanager]}]}]}
    (workdir / "prometheus.yml").write_text(yaml.safe_dump(config, sort_keys=False))
    port = free_port()
    args = [
        shutil.which(PROMETHEUS) or PROMETHEUS,
        f"--config.file={workdir / 'prometheus.yml'}",
        f"--storage.tsdb.path={workdir / 'data'}",
        f"--web.listen-address=127.0.0.1:{port}",
        "--storage.tsdb.retention.time=1h",
    ]
    with _run("prometheus", workdir, args, port) as server:
        yield Prometheus(server.name, server.proc, server.port, server.log)


# ------------------------------------------------------------------------------- a webhook receiver


def webhook_body(*alerts: dict[str, Any]) -> bytes:
    """An Alertmanager v4 webhook payload (one alert group) carrying `alerts`, as Alertmanager posts it."""
    body = {
        "version": "4",
        "receiver": "intake",
        "status": "firing",
        "alerts": list(alerts),
        "groupLabels": {},
        "commonLabels": {},
        "commonAnnotations": {},
        "externalURL": "http://127.0.0.1:9093",
        "groupKey": "{}:{}",
        "truncatedAlerts": 0,
    }
    return json.dumps(body).encode()


@dataclass
class Delivery:
    """One POST Alertmanager made: its Authorization header and its JSON body."""

    authorization: str
    payload: dict[str, Any]


class WebhookReceiver:
    """A real HTTP server on loopback that records each POST (Alertmanager's webhook) and answers 200."""

    def __init__(self) -> None:
        self.deliveries: list[Delivery] = []
        self._changed = threading.Condition()
        receiver = self

        class Handler(http.server.BaseHTTPRequestHandler):
            def do_POST(self) -> None:  # noqa: N802 - http.server's hook name
                body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
                with receiver._changed:
                    receiver.deliveries.append(
                        Delivery(self.headers.get("Authorization", ""), json.loads(body))
                    )
                    receiver._changed.notify_all()
                self.send_response(200)
                self.send_header("Content-Length", "0")
                self.end_headers()

            def log_message(self, *args: object) -> None:
                return

        self.server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.server.daemon_threads = True
        self.thread = threading.Thread(
            target=self.server.serve_forever, kwargs={"poll_interval": 0.1}, daemon=True
        )

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.server.server_address[1]}/alerts"

    def alerts(self) -> list[tuple[Delivery, dict[str, Any]]]:
        """Every alert delivered so far, each with the delivery it came in, in order."""
        with self._changed:
            return [(d, alert) for d in self.deliveries for alert in d.payload.get("alerts", [])]

    def wait_for_alert(self, what: str, timeout: float, **match: str) -> tuple[Delivery, dict[str, Any]]:
        """The first delivered alert whose status and labels match (``status`` is the alert's status, any
        other key a label); AssertionError after ``timeout`` seconds, listing what did arrive."""

        def found() -> tuple[Delivery, dict[str, Any]] | None:
            for delivery, alert in self.alerts():
                fields = {**alert.get("labels", {}), "status": alert.get("status", "")}
                if all(fields.get(key) == value for key, value in match.items()):
                    return delivery, alert
            return None

        deadline = time.monotonic() + timeout
        with self._changed:
            while (hit := found()) is None:
                left = deadline - time.monotonic()
                if left <= 0:
                    seen = [(a["status"], a["labels"].get("alertname")) for _d, a in self.alerts()]
                    raise AssertionError(f"timed out after {timeout:g} s waiting for {what}; got {seen}")
                self._changed.wait(left)
        return hit

    def __enter__(self) -> WebhookReceiver:
        self.thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.server.shutdown()
        self.server.server_close()

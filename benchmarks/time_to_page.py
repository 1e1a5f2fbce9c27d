"""Time from `kill -9` of a demo service to the first page and to healthy again: the alert path against the
heartbeat-only path with the shipped defaults, measured side by side in one run.

- Alert path (measured): Debian's Prometheus scrapes the demo RPC every 1 s with monitoring/ rules,
  Alertmanager delivers to `opsrunner intake serve`, which opens the incident, pages (a local webhook
  receives it) and assesses it with a scoped heartbeat run that restarts the RPC. Healthy = the RPC's
  /health answers 200 again. Each round kills the RPC once; median over ROUNDS.
- Heartbeat-only path with the shipped defaults (`opsrunner schedule install`: a heartbeat every 1800 s,
  `heartbeat_failure_threshold: 2`): the first failed heartbeat comes on average half an interval after
  the kill, the incident opens (and pages, and the restart happens) at the second one. Its time is that
  schedule wait (1800 x 1.5 s on average) plus the measured duration of the heartbeat run that pages and
  restarts (`opsrunner heartbeat -e heartbeat_failure_threshold=1` on the same site, after the same kill).

Goals (issue 14): the alert path pages within 15 s and is healthy within 30 s.

Usage: python benchmarks/time_to_page.py [ROUNDS]
"""

from __future__ import annotations

import os
import secrets
import signal
import statistics
import sys
import tempfile
import time
import urllib.request
from pathlib import Path

from _common import REPO

sys.path[:0] = [str(REPO / "tests" / "integration"), str(REPO / "tests")]
from ports import free_port  # noqa: E402
from test_alert_chain import HOST, IntakeProcess, opsrunner, write_inventory  # noqa: E402

from monitoring import (  # noqa: E402
    Target,
    WebhookReceiver,
    fast_rules,
    missing_binaries,
    start_alertmanager,
    start_prometheus,
    wait_until,
)
from opsrunner.incidents import IncidentStore  # noqa: E402
from opsrunner.memory import MemoryStore  # noqa: E402

PAGE_GOAL_S = 15.0
HEALTHY_GOAL_S = 30.0
HEARTBEAT_INTERVAL_S = 1800.0  # the shipped schedule
FAILURE_THRESHOLD = 2  # the shipped heartbeat_failure_threshold


def healthy(port: int) -> bool:
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/health", timeout=1) as answer:
            return answer.status == 200
    except OSError:
        return False


def kill(root: Path, service: str) -> None:
    os.kill(int((root / "run" / f"{service}.pid").read_text().split()[0]), signal.SIGKILL)


def opened_pages(pages: WebhookReceiver, since: int) -> list[str]:
    titles = [str(d.payload.get("title", "")) for d in pages.deliveries[since:]]
    return [title for title in titles if title.startswith("[aitbc-ops] opened")]


def settled(memory: Path) -> bool:
    return not IncidentStore(MemoryStore(memory)).active()


def alert_round(root: Path, port: int, pages: WebhookReceiver) -> tuple[float, float]:
    """(seconds to the first new page, seconds to healthy) after one kill of the RPC."""
    before = len(pages.deliveries)
    wait_until(lambda: healthy(port), "the RPC healthy before the kill", 60)
    kill(root, "blockchain-rpc")
    start = time.monotonic()
    wait_until(lambda: not healthy(port), "the RPC down", 10, interval=0.05)
    wait_until(lambda: opened_pages(pages, before), "the first page", 120, interval=0.05)
    paged = time.monotonic() - start
    wait_until(lambda: healthy(port), "the RPC healthy again", 120, interval=0.05)
    return paged, time.monotonic() - start


def heartbeat_round(memory: Path, inventory: Path, root: Path, port: int) -> float:
    """The measured part of the heartbeat-only path: the heartbeat run that opens, pages and restarts."""
    wait_until(lambda: healthy(port), "the RPC healthy before the kill", 60)
    kill(root, "blockchain-rpc")
    wait_until(lambda: not healthy(port), "the RPC down", 10, interval=0.05)
    start = time.monotonic()
    opsrunner(memory, "heartbeat", "-i", str(inventory), "-e", "heartbeat_failure_threshold=1")
    took = time.monotonic() - start
    if not healthy(port):
        raise SystemExit("the heartbeat did not restart the RPC")
    return took


def main(rounds: int) -> None:
    why = missing_binaries()
    if why:
        raise SystemExit(f"cannot run: {why}")
    with tempfile.TemporaryDirectory(prefix="aitbc-ttp-") as tmp, WebhookReceiver() as pages:
        work = Path(tmp)
        memory, root, port = work / "ai-memory", work / "node1", free_port()
        inventory = write_inventory(root, port, pages.url.replace("http://", "json://"))
        token = work / "intake.token"
        token.write_text(secrets.token_hex(16) + "\n")
        token.chmod(0o600)
        for service in ("blockchain-node", "blockchain-rpc"):
            opsrunner(memory, "service", "start", service, "-i", str(inventory))
        intake = IntakeProcess(memory, inventory, token)
        try:
            with (
                start_alertmanager(work / "am", intake.url, token) as alertmanager,
                start_prometheus(
                    work / "prom",
                    [Target(f"127.0.0.1:{port}", HOST, "blockchain-rpc")],
                    fast_rules(work / "rules.yml"),
                    alertmanager.address,
                ) as prometheus,
            ):
                prometheus.wait_for_targets(1, timeout=30)
                alert = []
                for _round in range(rounds):
                    alert.append(alert_round(root, port, pages))
                    wait_until(lambda: settled(memory), "the incident resolved", 120, interval=0.2)
        finally:
            intake.stop()
        try:
            # Then the heartbeat alone, on the same services, with a memory (and restart budget) of its own.
            beat = [
                heartbeat_round(work / "heartbeat-memory", inventory, root, port) for _round in range(rounds)
            ]
        finally:
            for service in ("blockchain-rpc", "blockchain-node"):
                opsrunner(memory, "service", "stop", service, "-i", str(inventory))
    page_s = statistics.median(p for p, _h in alert)
    healthy_s = statistics.median(h for _p, h in alert)
    run_s = statistics.median(beat)
    wait_s = HEARTBEAT_INTERVAL_S * (FAILURE_THRESHOLD - 0.5)
    baseline = wait_s + run_s
    print(f"alert path (median of {rounds}): first page {page_s:.1f} s, healthy {healthy_s:.1f} s")
    page_met = "met" if page_s <= PAGE_GOAL_S else "NOT met"
    healthy_met = "met" if healthy_s <= HEALTHY_GOAL_S else "NOT met"
    print(f"  goals: page <= {PAGE_GOAL_S:g} s: {page_met}; healthy <= {HEALTHY_GOAL_S:g} s: {healthy_met}")
    print(f"heartbeat-only path, shipped defaults: {wait_s:.0f} s schedule wait + {run_s:.1f} s run = "
          f"{baseline:.0f} s to page and to healthy (expected)")  # fmt: skip
    ratios = f"{baseline / page_s:.0f}x to page, {baseline / healthy_s:.0f}x to healthy"
    print(f"ratio heartbeat-only/alert: {ratios}")


if __name__ == "__main__":
    main(int(sys.argv[1]) if len(sys.argv) > 1 else 3)

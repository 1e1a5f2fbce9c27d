"""Intake throughput: accepted alerts per second and the p99 latency of the 202, `opsrunner intake`'s app
(bearer auth, validation, Alertmanager dedup on, spool fsync, queue, a handler that does nothing) against a
bare Starlette handler that only reads the body and answers 202. Both are served by uvicorn on loopback, each
in its own process; one load generator (keep-alive connections, asyncio) drives them in interleaved rounds.

Every request is an Alertmanager v4 group of 5 alerts, each with its own fingerprint and startsAt, so every
alert is new to the dedup and is accepted (the run checks the answers say so). Goal: at least 0.5x.

Usage: python benchmarks/intake.py [ROUNDS] [REQUESTS_PER_ROUND] [CONNECTIONS]
"""

from __future__ import annotations

import asyncio
import json
import os
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from _common import REPO, verdict

GOAL = 0.5
ALERTS_PER_REQUEST = 5
TOKEN = "benchmark-token"

SERVER = r"""
import sys, uvicorn
from pathlib import Path
kind, port, memory = sys.argv[1], int(sys.argv[2]), Path(sys.argv[3])
if kind == "intake":
    from opsrunner.intake.app import IntakeConfig, create_app
    config = IntakeConfig(memory_dir=memory, token=sys.argv[4], queue_size=1_000_000, deadman=False)
    app = create_app(config, lambda report: None)
else:
    from starlette.applications import Starlette
    from starlette.responses import JSONResponse
    from starlette.routing import Route
    async def alerts(request):
        await request.body()
        return JSONResponse({"accepted": 0}, status_code=202)
    app = Starlette(routes=[Route("/alerts", alerts, methods=["POST"])])
uvicorn.run(app, host="127.0.0.1", port=port, log_level="warning", access_log=False)
"""


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def start_server(kind: str, memory: Path) -> tuple[subprocess.Popen[bytes], int]:
    port = free_port()
    proc = subprocess.Popen(
        [sys.executable, "-c", SERVER, kind, str(port), str(memory), TOKEN],
        cwd=REPO,
        env={**os.environ, "PYTHONPATH": str(REPO)},
    )
    deadline = time.monotonic() + 30
    while True:
        try:
            socket.create_connection(("127.0.0.1", port), timeout=1).close()
            return proc, port
        except OSError:
            if proc.poll() is not None or time.monotonic() > deadline:
                raise SystemExit(f"the {kind} server did not start") from None
            time.sleep(0.05)


def alert_group(n: int) -> bytes:
    alerts = [
        {
            "status": "firing",
            "labels": {
                "alertname": "InstanceDown",
                "instance": f"node{m % 20}:8082",
                "job": "blockchain-node",
            },
            "annotations": {"summary": f"node{m % 20} is down"},
            "startsAt": f"2026-12-04T20:00:{m % 60:02d}.{m:09d}Z",
            "endsAt": "0001-01-01T00:00:00Z",
            "generatorURL": "http://127.0.0.1:9090/graph",
            "fingerprint": f"{m:016x}",
        }
        for m in range(n * ALERTS_PER_REQUEST, (n + 1) * ALERTS_PER_REQUEST)
    ]
    body = {
        "version": "4",
        "receiver": "intake",
        "status": "firing",
        "alerts": alerts,
        "groupLabels": {"alertname": "InstanceDown"},
        "commonLabels": {"alertname": "InstanceDown"},
        "commonAnnotations": {},
        "externalURL": "http://127.0.0.1:9093",
        "groupKey": '{}:{alertname="InstanceDown"}',
        "truncatedAlerts": 0,
    }
    return json.dumps(body).encode()


def request_bytes(body: bytes) -> bytes:
    head = (
        "POST /alerts HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/json\r\n"
        f"Authorization: Bearer {TOKEN}\r\nContent-Length: {len(body)}\r\n\r\n"
    )
    return head.encode() + body


async def one_connection(
    port: int, requests: list[bytes], latencies: list[float], accepted: list[int]
) -> None:
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    try:
        for data in requests:
            start = time.perf_counter()
            writer.write(data)
            head = await reader.readuntil(b"\r\n\r\n")
            length = int(head.lower().split(b"content-length:")[1].split(b"\r\n")[0])
            body = await reader.readexactly(length)
            latencies.append(time.perf_counter() - start)
            if not head.startswith(b"HTTP/1.1 202"):
                raise SystemExit(f"unexpected answer: {head[:40]!r} {body[:200]!r}")
            accepted.append(json.loads(body).get("accepted", 0))
    finally:
        writer.close()


async def load(port: int, bodies: list[bytes], connections: int) -> tuple[float, list[float], int]:
    """Send every body once over `connections` keep-alive connections; (seconds, latencies, accepted)."""
    shares = [[request_bytes(b) for b in bodies[c::connections]] for c in range(connections)]
    latencies: list[float] = []
    accepted: list[int] = []
    start = time.perf_counter()
    await asyncio.gather(*(one_connection(port, share, latencies, accepted) for share in shares))
    return time.perf_counter() - start, latencies, sum(accepted)


def p99(values: list[float]) -> float:
    return statistics.quantiles(values, n=100)[98]


def main(rounds: int, per_round: int, connections: int) -> int:
    with tempfile.TemporaryDirectory(prefix="intake-bench-") as work:
        servers = {kind: start_server(kind, Path(work) / kind) for kind in ("intake", "bare")}
        try:
            rates: dict[str, list[float]] = {"intake": [], "bare": []}
            latencies: dict[str, list[float]] = {"intake": [], "bare": []}
            sequence = 0
            asyncio.run(
                load(servers["bare"][1], [alert_group(-1 - n) for n in range(200)], connections)
            )  # warm up
            for n in range(rounds):
                order = ("intake", "bare") if n % 2 == 0 else ("bare", "intake")
                for kind in order:
                    bodies = [alert_group(sequence + i) for i in range(per_round)]
                    sequence += per_round  # new alerts each round: the dedup accepts all of them
                    seconds, lats, accepted = asyncio.run(load(servers[kind][1], bodies, connections))
                    if kind == "intake" and accepted != per_round * ALERTS_PER_REQUEST:
                        raise SystemExit(
                            f"the intake accepted {accepted} of {per_round * ALERTS_PER_REQUEST} alerts"
                        )
                    rates[kind].append(per_round * ALERTS_PER_REQUEST / seconds)
                    latencies[kind] += lats
        finally:
            for proc, _ in servers.values():
                proc.terminate()
                proc.wait(30)
    cand, base = statistics.median(rates["intake"]), statistics.median(rates["bare"])
    p99_cand, p99_base = p99(latencies["intake"]) * 1000, p99(latencies["bare"]) * 1000
    print(f"{rounds} rounds x {per_round} requests of {ALERTS_PER_REQUEST} alerts, {connections} connections")
    print(f"baseline bare Starlette (reads the body, 202): {base:,.0f} alerts/s, 202 p99 {p99_base:.1f} ms")
    print(f"opsrunner intake (auth, schema, dedup, spool): {cand:,.0f} alerts/s, 202 p99 {p99_cand:.1f} ms")
    ratio = cand / base
    result = verdict(ratio, GOAL, lower_is_better=False)
    print(f"ratio intake/bare throughput: {ratio:.2f}x (goal >= {GOAL}x) -> {result}")
    print(f"ratio intake/bare p99 latency: {p99_cand / p99_base:.2f}x")
    return 0 if ratio >= GOAL else 1


if __name__ == "__main__":
    args = [int(a) for a in sys.argv[1:]]
    sys.exit(main(*(args + [5, 2000, 16][len(args) :])))

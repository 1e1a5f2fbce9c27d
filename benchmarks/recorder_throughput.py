"""Recorder throughput on a replayed real event stream.

Runs a real playbook once through ansible-runner (via opsrunner), loads its job_events, scales the
stream to >=100,000 events and feeds them to the Recorder, with a planted secret so redaction does
real work. Baseline, side by side: json.loads of the same events, the least any consumer of
ansible-runner's artifacts must do per event. Goal: >= 20,000 events/s.
"""

from __future__ import annotations

import json
import tempfile
import time
from pathlib import Path

from _common import BIN, REPO, run_quiet, write_playbook

from opsrunner.memory import MemoryStore
from opsrunner.recorder import Recorder
from opsrunner.redact import Redactor

TARGET_EVENTS = 100_000
GOAL_EVENTS_PER_S = 20_000


def real_events(work: Path) -> list[str]:
    playbook = write_playbook(work / "bench.yml", tasks=40)
    run_quiet(
        [str(BIN / "opsrunner"), "run", str(playbook), "-i", str(REPO / "inventory" / "local.yml")], work
    )
    events = sorted(
        (work / ".work" / "opsrunner" / "artifacts").glob("*/job_events/*.json"),
        key=lambda p: int(p.name.split("-")[0]),
    )
    return [p.read_text() for p in events]


def main() -> None:
    with tempfile.TemporaryDirectory() as tmp:
        work = Path(tmp)
        raw = real_events(work)
        stream = (raw * (TARGET_EVENTS // len(raw) + 1))[:TARGET_EVENTS]

        start = time.perf_counter()
        decoded = [json.loads(text) for text in stream]
        baseline_s = time.perf_counter() - start

        recorder = Recorder(MemoryStore(work / "mem"), Redactor(["planted-secret-value"]), source="bench")
        start = time.perf_counter()
        for event in decoded:
            recorder.handle(event)
        recorder.finish(rc=0)
        recorder_s = time.perf_counter() - start

    rate = len(stream) / recorder_s
    print(f"events replayed: {len(stream)} (from a real run of {len(raw)} events)")
    print(f"baseline json.loads: {len(stream) / baseline_s:,.0f} events/s")
    print(f"recorder (redact + record): {rate:,.0f} events/s")
    print(f"ratio recorder/baseline time: {recorder_s / baseline_s:.2f}x")
    print(
        f"ratio rate/goal ({GOAL_EVENTS_PER_S:,}/s): {rate / GOAL_EVENTS_PER_S:.2f}x "
        f"-> {'goal met' if rate >= GOAL_EVENTS_PER_S else 'goal NOT met'}"
    )


if __name__ == "__main__":
    main()

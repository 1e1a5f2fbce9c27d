"""Fault: 8 runs at once writing one memory folder. Every run's daily entry is there, whole, and the
file parses: nothing is lost or torn."""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest
from faultlib import REPO, opsrunner

from opsrunner.memory import MemoryStore, utcnow

pytestmark = pytest.mark.integration

RUNS = 8


def test_eight_concurrent_runs_lose_no_entry(tmp_path: Path) -> None:
    memory = tmp_path / "memory"
    inventory = REPO / "inventory" / "local.yml"

    def one(n: int) -> int:
        work = tmp_path / f"run{n}"
        work.mkdir()
        return opsrunner(
            "--memory-dir", str(memory), "run", "ping", "-i", str(inventory), cwd=work
        ).returncode

    with ThreadPoolExecutor(RUNS) as pool:
        codes = list(pool.map(one, range(RUNS)))
    assert codes == [0] * RUNS
    entries = MemoryStore(memory).read_daily(utcnow().date())
    assert len(entries) == RUNS, [e.title for e in entries]
    assert all(e.outcome for e in entries)

"""Shared benchmark helpers: side-by-side timing in one process, median of interleaved rounds."""

from __future__ import annotations

import os
import statistics
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
BIN = Path(sys.executable).parent


def run_quiet(args: list[str], cwd: Path, env: dict[str, str] | None = None) -> None:
    full_env = {**os.environ, "ANSIBLE_CONFIG": str(REPO / "ansible.cfg"), **(env or {})}
    done = subprocess.run(args, cwd=cwd, env=full_env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    if done.returncode != 0:
        raise SystemExit(
            f"benchmark command failed ({done.returncode}): {' '.join(args)}\n{done.stderr[-2000:]}"
        )


def timed(action: Callable[[], None]) -> float:
    start = time.perf_counter()
    action()
    return time.perf_counter() - start


def side_by_side(
    candidate: Callable[[], None], baseline: Callable[[], None], rounds: int
) -> tuple[float, float]:
    """Median wall time of each, interleaved so both see the same machine noise."""
    cand, base = [], []
    for n in range(rounds):
        # Alternate who goes first to cancel warm-cache bias.
        pair = [(cand, candidate), (base, baseline)] if n % 2 == 0 else [(base, baseline), (cand, candidate)]
        for sink, action in pair:
            sink.append(timed(action))
    return statistics.median(cand), statistics.median(base)


def write_playbook(path: Path, tasks: int, hosts: str = "all") -> Path:
    lines = ["---", "- name: Benchmark playbook", f"  hosts: {hosts}", "  gather_facts: false", "  tasks:"]
    for n in range(tasks):
        lines += [f"    - name: Task {n}", "      ansible.builtin.debug:", f"        msg: step {n}"]
    path.write_text("\n".join(lines) + "\n")
    return path


def verdict(ratio: float, goal: float, lower_is_better: bool = True) -> str:
    met = ratio <= goal if lower_is_better else ratio >= goal
    return "goal met" if met else "goal NOT met"


def config_without_callback(work: Path) -> Path:
    """The repository's ansible.cfg minus the memory callback: the plain-Ansible baseline.

    An empty ANSIBLE_CALLBACKS_ENABLED crashes ansible-core 2.19, so the baseline gets its own file.
    """
    lines = []
    for line in (REPO / "ansible.cfg").read_text().splitlines():
        if line.startswith("callbacks_enabled"):
            continue
        if line.startswith("collections_path"):
            line = f"collections_path = {REPO / 'collections'}"
        lines.append(line)
    target = work / "ansible-baseline.cfg"
    target.write_text("\n".join(lines) + "\n")
    return target

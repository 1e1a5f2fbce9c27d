"""`opsrunner run` versus plain `ansible-playbook` on the same playbook. Goal: <= 1.05x wall time.

The baseline runs without the memory callback: it is what a user would run without opsrunner.
"""

from __future__ import annotations

import sys
import tempfile
from pathlib import Path

from _common import BIN, REPO, config_without_callback, run_quiet, side_by_side, verdict, write_playbook

GOAL = 1.05


def main(rounds: int = 5, tasks: int = 100) -> None:
    with tempfile.TemporaryDirectory() as tmp:
        work = Path(tmp)
        playbook = write_playbook(work / "bench.yml", tasks=tasks)
        inventory = str(REPO / "inventory" / "local.yml")
        baseline_cfg = config_without_callback(work)

        def via_opsrunner() -> None:
            run_quiet([str(BIN / "opsrunner"), "run", str(playbook), "-i", inventory], work)

        def plain() -> None:
            run_quiet(
                [str(BIN / "ansible-playbook"), "-i", inventory, str(playbook)],
                work,
                {"ANSIBLE_CONFIG": str(baseline_cfg)},
            )

        cand, base = side_by_side(via_opsrunner, plain, rounds)
    ratio = cand / base
    print(f"{tasks}-task playbook on localhost, median of {rounds} interleaved rounds")
    print(f"baseline plain ansible-playbook: {base:.2f} s")
    print(f"opsrunner run: {cand:.2f} s")
    print(f"ratio: {ratio:.3f}x (goal <= {GOAL}x) -> {verdict(ratio, GOAL)}")


if __name__ == "__main__":
    main(*(int(a) for a in sys.argv[1:3]))

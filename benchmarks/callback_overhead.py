"""A 300-task playbook with the aitbc.ops.memory callback versus without it. Goal: <= 1.05x wall time."""

from __future__ import annotations

import sys
import tempfile
from pathlib import Path

from _common import BIN, REPO, config_without_callback, run_quiet, side_by_side, verdict, write_playbook

GOAL = 1.05


def main(rounds: int = 5) -> None:
    with tempfile.TemporaryDirectory() as tmp:
        work = Path(tmp)
        playbook = write_playbook(work / "p300.yml", tasks=300)
        inventory = str(REPO / "inventory" / "local.yml")
        baseline_cfg = config_without_callback(work)
        command = [str(BIN / "ansible-playbook"), "-i", inventory, str(playbook)]

        def with_callback() -> None:
            run_quiet(
                command,
                work,
                {"ANSIBLE_CALLBACKS_ENABLED": "aitbc.ops.memory", "OPSRUNNER_MEMORY_DIR": str(work / "mem")},
            )

        def without_callback() -> None:
            run_quiet(command, work, {"ANSIBLE_CONFIG": str(baseline_cfg)})

        cand, base = side_by_side(with_callback, without_callback, rounds)
    ratio = cand / base
    print(f"300-task playbook, median of {rounds} interleaved rounds")
    print(f"baseline ansible-playbook without callback: {base:.2f} s")
    print(f"with aitbc.ops.memory callback: {cand:.2f} s")
    print(f"ratio: {ratio:.3f}x (goal <= {GOAL}x) -> {verdict(ratio, GOAL)}")


if __name__ == "__main__":
    main(int(sys.argv[1]) if len(sys.argv) > 1 else 5)

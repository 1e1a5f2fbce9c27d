"""`opsrunner run` versus plain `ansible-playbook` on the same playbook. Goal: <= 1.05x wall time.

Also measured side by side: bare `ansible_runner.run` on the same playbook, the floor any
ansible-runner based tool pays (its awx_display callback, the pty, one JSON file per event).
The baseline runs without the memory callback: what a user runs without opsrunner.
"""

from __future__ import annotations

import os
import statistics
import sys
import tempfile
from pathlib import Path

from _common import BIN, REPO, config_without_callback, run_quiet, timed, verdict, write_playbook

GOAL = 1.05

BARE_RUNNER = """
import sys, tempfile, ansible_runner
with tempfile.TemporaryDirectory() as private:
    result = ansible_runner.run(private_data_dir=private, playbook=sys.argv[1], inventory=sys.argv[2],
                                quiet=True, settings={"suppress_output_file": True})
sys.exit(0 if result.rc == 0 else 1)
"""


def main(rounds: int = 5, tasks: int = 100) -> None:
    with tempfile.TemporaryDirectory() as tmp:
        work = Path(tmp)
        playbook = str(write_playbook(work / "bench.yml", tasks=tasks))
        inventory = str(REPO / "inventory" / "local.yml")
        baseline_env = {"ANSIBLE_CONFIG": str(config_without_callback(work))}
        cases = {
            "plain ansible-playbook": lambda: run_quiet(
                [str(BIN / "ansible-playbook"), "-i", inventory, playbook], work, baseline_env
            ),
            "bare ansible_runner.run": lambda: run_quiet(
                [sys.executable, "-c", BARE_RUNNER, playbook, inventory],
                work,
                {**baseline_env, "PATH": f"{BIN}:{os.environ['PATH']}"},
            ),
            "opsrunner run": lambda: run_quiet(
                [str(BIN / "opsrunner"), "run", playbook, "-i", inventory], work
            ),
        }
        times: dict[str, list[float]] = {name: [] for name in cases}
        for n in range(rounds):
            order = list(cases) if n % 2 == 0 else list(reversed(cases))
            for name in order:
                times[name].append(timed(cases[name]))
    medians = {name: statistics.median(values) for name, values in times.items()}
    base = medians["plain ansible-playbook"]
    print(f"{tasks}-task playbook on localhost, median of {rounds} interleaved rounds")
    for name, value in medians.items():
        print(f"  {name}: {value:.2f} s ({value / base:.3f}x)")
    ratio = medians["opsrunner run"] / base
    floor = medians["bare ansible_runner.run"] / base
    print(f"ratio opsrunner/plain: {ratio:.3f}x (goal <= {GOAL}x) -> {verdict(ratio, GOAL)}")
    over_bare = medians["opsrunner run"] / medians["bare ansible_runner.run"]
    print(f"ratio opsrunner/bare ansible-runner: {over_bare:.3f}x")
    print(f"ansible-runner floor: {floor:.3f}x of plain")


if __name__ == "__main__":
    main(*(int(a) for a in sys.argv[1:3]))

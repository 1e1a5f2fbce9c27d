"""Running one module ad hoc (`ansible PATTERN -m MODULE -a JSON`) and reading each host's result back."""

from __future__ import annotations

import json
import re
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
BIN = Path(sys.executable).parent
# The default ad-hoc output: `host | STATUS => {json}` (the json callback moved out of ansible-core).
HEADER = re.compile(r"^(?P<host>\S+) \| (?P<status>[A-Z]+!?) => ", re.MULTILINE)


@dataclass
class Run:
    rc: int
    stdout: str
    stderr: str
    seconds: float

    def result(self, host: str = "localhost") -> tuple[str, dict]:
        """(status, module result) of `host` from the ad-hoc output."""
        for match in HEADER.finditer(self.stdout):
            if match["host"] == host:
                doc, _end = json.JSONDecoder().raw_decode(self.stdout, match.end())
                return match["status"], doc
        raise AssertionError(f"no result for {host} in:\n{self.stdout}\n{self.stderr}")


def run_module(
    module: str,
    ansible_env: dict[str, str],
    args: dict,
    *options: str,
    inventory: str = "localhost,",
    pattern: str = "localhost",
    timeout: float = 180,
) -> Run:
    """`ansible` with MODULE on PATTERN; `localhost,` runs over the local connection."""
    argv = [str(BIN / "ansible"), pattern, "-i", inventory, "-m", module, "-a", json.dumps(args), *options]
    if inventory == "localhost,":
        argv += ["-c", "local", "-e", "ansible_python_interpreter=/usr/bin/python3"]
    started = time.monotonic()
    proc = subprocess.run(argv, env=ansible_env, capture_output=True, text=True, timeout=timeout, cwd=REPO)
    return Run(proc.returncode, proc.stdout, proc.stderr, time.monotonic() - started)

"""Shared helpers: run the real opsrunner CLI and ansible-playbook from this checkout."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

REPO = Path(__file__).resolve().parent.parent
BIN = Path(sys.executable).parent


@dataclass
class Completed:
    rc: int
    stdout: str
    stderr: str

    def json(self) -> Any:
        return json.loads(self.stdout)


def run_tool(
    args: list[str], cwd: Path, env: dict[str, str] | None = None, timeout: float = 300
) -> Completed:
    full_env = {**os.environ, "ANSIBLE_CONFIG": str(REPO / "ansible.cfg"), **(env or {})}
    proc = subprocess.run(args, cwd=cwd, env=full_env, capture_output=True, text=True, timeout=timeout)
    return Completed(proc.returncode, proc.stdout, proc.stderr)


@pytest.fixture
def opsrunner(tmp_path: Path):
    """Run `opsrunner ARGS` in tmp_path (so ./ai-memory and ./.work land there)."""

    def call(*args: str, env: dict[str, str] | None = None, timeout: float = 300) -> Completed:
        return run_tool([str(BIN / "opsrunner"), *args], tmp_path, env, timeout)

    return call


@pytest.fixture
def ansible_playbook(tmp_path: Path):
    """Run plain `ansible-playbook ARGS` with the repository's ansible.cfg (memory callback enabled)."""

    def call(*args: str, env: dict[str, str] | None = None, timeout: float = 300) -> Completed:
        return run_tool([str(BIN / "ansible-playbook"), *args], tmp_path, env, timeout)

    return call

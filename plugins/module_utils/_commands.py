# -*- coding: utf-8 -*-
# Copyright: (c) 2026, aitbc-ops developers
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""The one way module_utils runs a short command: C locale, no stdin, a timeout, capped output.

Control and read-only commands (systemctl, supervisorctl, docker, journalctl, redis-check-rdb) answer in a
few lines; the cap keeps a runaway one (a journal dump, a command in a loop) from filling the module's memory
and result. Output past the cap is drained and dropped, so the command never blocks on a full pipe.
"""

from __future__ import annotations

import os
import shlex
import subprocess
import threading
from typing import IO

MAX_OUTPUT = 1024 * 1024  # bytes kept of stdout and of stderr each
_READ = 65536

# No pager, no colours and a C locale: the parsers read English text without escape codes.
_QUIET_ENV = {"LC_ALL": "C", "LANG": "C", "SYSTEMD_PAGER": "", "SYSTEMD_COLORS": "0"}


class CommandError(Exception):
    """The command could not run (not installed) or did not finish in time. The message is one line."""

    def __init__(self, message: str, timed_out: bool = False) -> None:
        super().__init__(message)
        self.timed_out = timed_out


def _drain(stream: IO[bytes], limit: int, kept: list[bytes]) -> None:
    size = 0
    for chunk in iter(lambda: stream.read(_READ), b""):
        if size < limit:
            kept.append(chunk[: limit - size])
            size += len(kept[-1])
    stream.close()


def run_command(
    argv: list[str], timeout: float, max_output: int = MAX_OUTPUT, env: dict[str, str] | None = None
) -> tuple[int, str, str]:
    """(rc, stdout, stderr) of `argv`; CommandError when it is missing or outlives `timeout` seconds."""
    try:
        proc = subprocess.Popen(
            argv,
            stdin=subprocess.DEVNULL,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            env={**os.environ, **_QUIET_ENV, **(env or {})},
        )
    except FileNotFoundError as exc:
        raise CommandError(f"command not found: {argv[0]}") from exc
    out: list[bytes] = []
    err: list[bytes] = []
    readers = [
        threading.Thread(target=_drain, args=(proc.stdout, max_output, out), daemon=True),
        threading.Thread(target=_drain, args=(proc.stderr, max_output, err), daemon=True),
    ]
    for reader in readers:
        reader.start()
    try:
        rc = proc.wait(timeout=max(0.1, timeout))
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait()
        raise CommandError(f"timed out after {timeout:g}s: {shlex.join(argv)}", timed_out=True) from None
    finally:
        for reader in readers:
            reader.join(timeout=1.0)
    return rc, _text(out), _text(err)


def _text(chunks: list[bytes]) -> str:
    # Universal newlines, as subprocess's text mode gives them.
    return b"".join(chunks).decode("utf-8", "replace").replace("\r\n", "\n").replace("\r", "\n")

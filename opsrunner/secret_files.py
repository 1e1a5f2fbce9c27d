"""Secrets kept in files (tokens, signing secrets, API keys): read only from a regular file that its owner
alone can read, owned by us or root. One reader for every such setting, so each refuses the same files
with the same words.
"""

from __future__ import annotations

import os
import stat
from pathlib import Path

from .settings import BadInput


class SecretFileError(BadInput, ValueError):
    """A secret file that must not be used; the message names the setting and the file. A BadInput for
    the command line (exit 2), a ValueError for settings validated with the others."""


def read_secret_file(path: str | os.PathLike[str], what: str) -> str:
    """The file's text, stripped. Raises SecretFileError naming `what` (the option or setting)."""
    target = Path(path).expanduser()
    try:
        info = target.stat()
    except OSError as exc:
        raise SecretFileError(f"{what} {target}: {exc.strerror or exc}") from None
    if not stat.S_ISREG(info.st_mode):
        raise SecretFileError(f"{what} {target} is not a regular file")
    if info.st_mode & 0o077:
        mode = stat.S_IMODE(info.st_mode)
        raise SecretFileError(f"{what} {target} is readable by others (mode {mode:04o}): chmod 600 it")
    if info.st_uid not in (os.geteuid(), 0):
        raise SecretFileError(f"{what} {target} is owned by another user (uid {info.st_uid})")
    try:
        text = target.read_text(encoding="utf-8").strip()
    except (OSError, UnicodeError) as exc:
        reason = exc.strerror if isinstance(exc, OSError) and exc.strerror else type(exc).__name__
        raise SecretFileError(f"{what} {target}: {reason}") from None
    if not text:
        raise SecretFileError(f"{what} {target} is empty")
    return text

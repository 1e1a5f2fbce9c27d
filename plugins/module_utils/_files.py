# -*- coding: utf-8 -*-
# Copyright: (c) 2026, aitbc-ops developers
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Files on the managed host: atomic writes, fsync, checksums, and one-line OS error texts.

Every writer in module_utils goes through here, so a crash leaves the old file or the new one, never half of
one: a temp file in the same folder, fsync, rename, fsync of the folder.
"""

from __future__ import annotations

import contextlib
import errno
import hashlib
import os
import tempfile

CHUNK = 1024 * 1024


def fsync_dir(path: str) -> None:
    """Make a rename or a new entry in folder `path` durable."""
    fd = os.open(path, os.O_RDONLY | os.O_DIRECTORY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def fsync_file(path: str) -> None:
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def write_all(fd: int, data: bytes) -> None:
    """os.write until every byte is written (a single write may be short)."""
    view = memoryview(data)
    while view:
        view = view[os.write(fd, view) :]


def atomic_write(path: str, data: bytes, mode: int = 0o644, tmp: str | None = None) -> None:
    """Replace `path` with `data` (file mode `mode`) so readers see the old content or the new, whole.

    `tmp` fixes the temp file's path (in the folder of `path`) for callers that recognise the leftover of a
    killed run by its name; by default it gets a fresh random name.
    """
    folder = os.path.dirname(os.path.abspath(path))
    if tmp is None:
        fd, tmp = tempfile.mkstemp(prefix=f".{os.path.basename(path)}.", suffix=".tmp", dir=folder)
    else:
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, mode)
    try:
        try:
            os.fchmod(fd, mode)
            write_all(fd, data)
            os.fsync(fd)
        finally:
            os.close(fd)
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(OSError):
            os.unlink(tmp)
        raise
    fsync_dir(folder)


def write_new_private(path: str, data: bytes) -> None:
    """Create `path` (it must not exist) as a 0600 file holding `data`, fsynced."""
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    try:
        write_all(fd, data)
        os.fsync(fd)
    finally:
        os.close(fd)


def sha256_file(path: str) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        for block in iter(lambda: handle.read(CHUNK), b""):
            digest.update(block)
    return digest.hexdigest()


def describe_os_error(exc: OSError, doing: str) -> str:
    """One line for a failed file operation: 'no space left on device while writing X'."""
    if exc.errno == errno.ENOSPC:
        return f"no space left on device while {doing}"
    where = f" ({exc.filename})" if exc.filename else ""
    return f"{exc.strerror or exc} while {doing}{where}"

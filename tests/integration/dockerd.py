"""A real, private Docker engine for integration tests.

`docker_engine` (session fixture) starts dockerd with its own data root, exec root, socket and pidfile
under one temp dir, so it never touches a system daemon, and imports `aitbc-base:test` from a cached
Debian rootfs (minbase + python3; no registry is reachable here). Use it from a test module with
`from dockerd import docker_engine  # noqa: F401`.

Teardown removes the containers, stops dockerd by PID, kills any containerd/shim/container process
still tied to the temp dir, unmounts what is left under it and deletes it.

CLI (prebuild the cached rootfs, e.g. from a Makefile):  python tests/integration/dockerd.py rootfs
"""

from __future__ import annotations

import contextlib
import os
import re
import shutil
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import pytest
from testhosts import _alive, _cmdline, _descendants, _kill_all

IMAGE = "aitbc-base:test"
START_TIMEOUT = 30.0
# Left out of the image: the tests need python3 and a shell, not docs or apt indexes.
IMPORT_EXCLUDES = (
    "./usr/share/doc",
    "./usr/share/man",
    "./usr/share/locale",
    "./var/lib/apt/lists",
    "./var/cache/apt",  # debootstrap leaves its .debs here
)


class DockerUnavailable(RuntimeError):
    """dockerd or the image cannot be had on this machine; the message is the skip reason."""


# --------------------------------------------------------------------------- the rootfs


def ensure_rootfs(path: Path | None = None) -> Path:
    """The Debian rootfs the image is imported from: the systemd host's cached one (it has python3),
    so a fresh machine runs debootstrap once for both, not twice."""
    if path is not None and path.is_dir():
        return path
    import nspawn  # the sibling test helper that builds and caches the rootfs

    try:
        return nspawn.ensure_rootfs()
    except nspawn.Unavailable as exc:
        raise DockerUnavailable(f"no rootfs to import: {exc}") from None


# --------------------------------------------------------------------------- the engine


@dataclass
class DockerEngine:
    root: Path
    storage_driver: str = ""
    image: str = IMAGE
    proc: subprocess.Popen[bytes] | None = None
    notes: list[str] = field(default_factory=list)

    @property
    def socket(self) -> Path:
        return self.root / "docker.sock"

    @property
    def host(self) -> str:
        return f"unix://{self.socket}"

    @property
    def pid(self) -> int | None:
        return self.proc.pid if self.proc else None

    @property
    def log(self) -> Path:
        return self.root / "dockerd.log"

    def run(
        self, *args: str, check: bool = True, input: bytes | None = None, timeout: float = 120.0
    ) -> subprocess.CompletedProcess[str]:
        """`docker -H SOCK ARGS...`; with check, a failure raises with docker's own message."""
        argv = ["docker", "-H", self.host, *args]
        proc = subprocess.run(argv, input=input, capture_output=True, timeout=timeout, check=False)
        out = subprocess.CompletedProcess(
            argv, proc.returncode, proc.stdout.decode(errors="replace"), proc.stderr.decode(errors="replace")
        )
        if check and out.returncode != 0:
            raise RuntimeError(f"docker {' '.join(args)} (rc {out.returncode}): {out.stderr.strip()}")
        return out

    # ---- start

    def start(self, storage_driver: str) -> None:
        data, exec_root = self.root / f"data-{storage_driver}", self.root / "exec"
        data.mkdir()
        # Layers on tmpfs: removing a disk data root that a container has used (its layers synced to disk)
        # took 6-8 s on a loaded 2-CPU VM, against none here. On disk if tmpfs is refused.
        subprocess.run(
            ["mount", "-t", "tmpfs", "-o", "size=2g,mode=0711", "tmpfs", str(data)],
            capture_output=True,
            check=False,
        )
        config = self.root / "daemon.json"
        config.write_text("{}\n")  # never pick up a host /etc/docker/daemon.json
        argv = [
            "dockerd",
            f"--config-file={config}",
            "--iptables=false",
            "--ip6tables=false",
            "--ip-forward=false",  # leave the host's sysctls alone
            "--bridge=none",
            f"--storage-driver={storage_driver}",
            f"--data-root={data}",
            f"--exec-root={exec_root}",
            f"--host={self.host}",
            f"--pidfile={self.root / 'docker.pid'}",
        ]
        with open(self.log, "ab") as log:
            # Own session: a Ctrl-C aimed at pytest must not kill the daemon before teardown stops it.
            self.proc = subprocess.Popen(
                argv, cwd=self.root, stdin=subprocess.DEVNULL, stdout=log, stderr=log, start_new_session=True
            )
        deadline = time.monotonic() + START_TIMEOUT
        while self.run("info", check=False, timeout=10).returncode != 0:
            if self.proc.poll() is not None or time.monotonic() > deadline:
                self.stop_daemon()
                tail = self.log.read_text(errors="replace").strip().splitlines()[-3:]
                raise DockerUnavailable(f"dockerd --storage-driver={storage_driver} did not start: {tail}")
            time.sleep(0.1)
        self.storage_driver = storage_driver

    def import_image(self, rootfs: Path) -> None:
        excludes = [f"--exclude={x}" for x in IMPORT_EXCLUDES]
        tar = subprocess.Popen(
            ["tar", "-C", str(rootfs), "--numeric-owner", *excludes, "-c", "."],
            stdout=subprocess.PIPE,
            stdin=subprocess.DEVNULL,
        )
        assert tar.stdout is not None
        with tar.stdout:
            proc = subprocess.run(
                ["docker", "-H", self.host, "import", "-", self.image],
                stdin=tar.stdout,
                capture_output=True,
                text=True,
                timeout=300,
                check=False,
            )
        if tar.wait() != 0 or proc.returncode != 0:
            raise RuntimeError(f"docker import of {rootfs} failed: {proc.stderr.strip()}")

    # ---- teardown

    def stop_daemon(self) -> None:
        if self.proc is None:
            return
        if self.proc.poll() is None:
            self.proc.terminate()  # dockerd stops its containerd itself
            try:
                self.proc.wait(timeout=20)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(timeout=10)
        self.proc = None

    def _tied_pids(self) -> list[int]:
        """containerd and shims naming our dirs in their argv, plus their children (container processes)."""
        prefix = str(self.root) + "/"
        roots = [p for p in _pids() if any(prefix in arg for arg in _cmdline(p))]
        return sorted({q for p in roots for q in (p, *_descendants(p))})

    def _mounts(self) -> list[str]:
        prefix = str(self.root) + "/"
        with open("/proc/self/mountinfo") as fh:
            points = [_unescape(line.split()[4]) for line in fh]
        return [m for m in points if m.startswith(prefix)]

    def close(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            with contextlib.suppress(Exception):
                ids = self.run("ps", "-aq", check=False, timeout=30).stdout.split()
                if ids:
                    self.run("rm", "-f", *ids, check=False, timeout=60)
        self.stop_daemon()
        # Remembered across rounds: a container process stays ours after its shim dies and it is reparented.
        # Start times guard against a reused PID.
        seen: dict[int, str | None] = {}

        def tied() -> list[int]:
            for pid in self._tied_pids():
                seen.setdefault(pid, _starttime(pid))
            return sorted(seen)

        left = _kill_all(tied, lambda pid: pid in seen and _starttime(pid) == seen[pid])
        for point in reversed(self._mounts()):  # deepest first
            if subprocess.run(["umount", point], capture_output=True, check=False).returncode != 0:
                subprocess.run(["umount", "-l", point], capture_output=True, check=False)
        mounts = self._mounts()
        if not left and not mounts:
            shutil.rmtree(self.root, ignore_errors=True)
        if left or mounts or self.root.exists():
            raise RuntimeError(f"docker engine teardown left: pids {left}, mounts {mounts}, dir {self.root}")


def _pids() -> list[int]:
    return [int(p) for p in os.listdir("/proc") if p.isdigit() and _alive(int(p))]


def _starttime(pid: int) -> str | None:
    with contextlib.suppress(OSError):
        return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[19]
    return None


def _unescape(field: str) -> str:
    # mountinfo escapes space, tab, newline and backslash as \ooo.
    return re.sub(r"\\([0-7]{3})", lambda m: chr(int(m.group(1), 8)), field)


def unavailable() -> str | None:
    """Why a private dockerd cannot run here at all, or None."""
    if os.geteuid() != 0:
        return "a private dockerd needs root"
    for tool, package in (("dockerd", "docker.io"), ("docker", "docker.io"), ("tar", "tar")):
        if shutil.which(tool) is None:
            return f"the docker engine tests need {tool!r} on PATH (Debian package {package})"
    return None


def start_engine(rootfs: Path | None = None) -> DockerEngine:
    """A running private dockerd with IMAGE imported; raises DockerUnavailable with the reason if not."""
    reason = unavailable()
    if reason:
        raise DockerUnavailable(reason)
    rootfs = ensure_rootfs(rootfs)
    # Short path under /tmp: containerd's socket lives under the exec root (unix paths max 107 bytes).
    engine = DockerEngine(Path(tempfile.mkdtemp(prefix="aitbc-dockerd-")))
    try:
        try:
            engine.start("overlay2")
        except DockerUnavailable as exc:
            # overlay2 needs an overlay-capable backing filesystem; vfs always works (full copies).
            engine.notes.append(f"overlay2 failed, using vfs: {exc}")
            print(f"dockerd: {engine.notes[-1]}", file=sys.stderr, flush=True)
            engine.start("vfs")
        engine.import_image(rootfs)
    except BaseException:
        with contextlib.suppress(Exception):
            engine.close()
        raise
    return engine


@pytest.fixture(scope="session")
def docker_engine() -> Iterator[DockerEngine]:
    """A private dockerd (`.host` for docker -H, `.image`, `.run(*args)`), stopped at session end."""
    try:
        engine = start_engine()
    except DockerUnavailable as exc:
        pytest.skip(f"no docker engine: {exc}")
    try:
        yield engine
    finally:
        engine.close()


if __name__ == "__main__":
    if sys.argv[1:] != ["rootfs"]:
        sys.exit(f"usage: {sys.argv[0]} rootfs")
    print(ensure_rootfs())

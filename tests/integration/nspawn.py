"""A real systemd host for integration tests: Debian bookworm booted as PID 1 under systemd-nspawn.

The rootfs is built once with debootstrap and cached (ROOTFS_CACHE). Each session boots a writable overlay
(or a reflink copy) of it with its own veth pair, in a free /24 picked like testhosts.py picks its bridge
subnets, and reaches it over real SSH. Teardown stops nspawn by PID, unmounts and removes the copy.

Library:  `with booted_host(workdir) as host: ...` (host.name, .address, .inventory, .run(cmd)); the session
          fixture `systemd_host` (import systemd_host_fixture into a conftest or test module to register it)
CLI:      python tests/integration/nspawn.py build       (only builds or checks the cached rootfs)
          python tests/integration/nspawn.py up WORKDIR  (boots one, prints its inventory, up till signalled)
"""

from __future__ import annotations

import contextlib
import fcntl
import json
import os
import re
import secrets
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import pytest
import yaml
from testhosts import (
    _SSH_PROBE_OPTS,
    REPO_ROOT,
    SSH_COMMON_ARGS,
    TeardownError,
    _alive,
    _descendants,
    _global_lock,
    _ip,
    _make_client_key,
    _tcp_open,
    _used_networks,
    pick_subnet,
)

SUITE = "bookworm"
# redis-server is included so the whole catalogue (redis too) runs as units; its own Debian unit is
# disabled in the cached rootfs (see _customize_rootfs).
INCLUDE = ("systemd", "systemd-sysv", "dbus", "openssh-server", "python3", "redis-server")
CACHE_DIR = Path(os.environ.get("AITBC_ROOTFS_CACHE_DIR", "/var/cache/aitbc-ops"))
ROOTFS_CACHE = CACHE_DIR / f"rootfs-{SUITE}"
ROOT_MODE = 0o755  # `/` of the rootfs and of each booted copy
MARKER = ".aitbc-rootfs.json"  # written last, inside the temp dir, before the rename: present == complete
DEFAULT_MIRROR = "http://deb.debian.org/debian"
AITBC_ROOT = "/opt/aitbc"
TOOLS = ("debootstrap", "systemd-nspawn", "nsenter", "ip", "ssh", "ssh-keygen", "mount", "umount")
BUILD_TIMEOUT = 900.0
BOOT_TIMEOUT = 60.0
STOP_GRACE = 15.0
# nsenter'd commands see the container's filesystem, where the controller's PATH (venv, pyenv) means nothing.
_CONTAINER_ENV = {"PATH": "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin", "LANG": "C.UTF-8"}
# Same speed-ups as the testhosts sshds: no post-quantum kex cost, no DNS, room for forks=20.
_SSHD_DROPIN = """\
# aitbc-ops test host (tests/integration/nspawn.py)
PermitRootLogin prohibit-password
PasswordAuthentication no
KexAlgorithms curve25519-sha256,curve25519-sha256@libssh.org
UseDNS no
MaxStartups 200:30:400
MaxSessions 200
"""


class Unavailable(RuntimeError):
    """systemd-nspawn hosts cannot work on this machine; the message says why (tests skip with it)."""


def _log(msg: str) -> None:
    print(f"nspawn: {msg}", file=sys.stderr, flush=True)


def nspawn_unavailable() -> str | None:
    """Why a systemd-nspawn host cannot run here (before building anything), or None."""
    if os.geteuid() != 0:
        return "systemd-nspawn hosts need root"
    missing = [t for t in TOOLS if shutil.which(t) is None]
    if missing:
        return (
            f"systemd-nspawn hosts need {', '.join(missing)} (Debian packages debootstrap, systemd-container)"
        )
    return None


# --------------------------------------------------------------------------- the cached rootfs


def debian_mirror(apt_dir: Path = Path("/etc/apt")) -> str:
    """The Debian mirror apt is configured with (deb822 .sources or one-line .list), else DEFAULT_MIRROR."""
    files = [apt_dir / "sources.list", *sorted((apt_dir / "sources.list.d").glob("*"))]
    for path in files:
        with contextlib.suppress(OSError):
            text = path.read_text()
            found = _mirror_in(text, deb822=path.suffix == ".sources")
            if found:
                return found
    return DEFAULT_MIRROR


def _mirror_in(text: str, deb822: bool) -> str | None:
    if deb822:
        for stanza in re.split(r"\n\s*\n", text):
            fields = dict(re.findall(r"^([A-Za-z-]+):\s*(.*)$", stanza, re.MULTILINE))
            suites, uris = fields.get("Suites", "").split(), fields.get("URIs", "").split()
            if SUITE in suites and "deb" in fields.get("Types", "").split() and uris:
                return uris[0]
        return None
    for line in text.splitlines():
        words = re.sub(r"\[[^]]*\]", "", line).split()  # drop [arch=... signed-by=...] options
        if len(words) >= 3 and words[0] == "deb" and words[2] == SUITE:
            return words[1]
    return None


def _wanted_marker(mirror: str) -> dict[str, object]:
    return {"suite": SUITE, "include": list(INCLUDE), "mirror": mirror}


def _rootfs_complete(path: Path) -> bool:
    """True when `path` holds a finished build of the current SUITE/INCLUDE (any mirror)."""
    try:
        marker = json.loads((path / MARKER).read_text())
    except (OSError, ValueError):
        return False
    return marker.get("suite") == SUITE and marker.get("include") == list(INCLUDE)


def fix_root_mode(root: Path) -> bool:
    """Make a rootfs' `/` 0755, as on any Debian host. A build in a mkdtemp folder (0700) left it 0700,
    so units with `User=` (redis-server) failed at boot with status=200/CHDIR. True if it was changed."""
    if root.stat().st_mode & 0o7777 == ROOT_MODE:
        return False
    root.chmod(ROOT_MODE)
    return True


def ensure_rootfs(cache: Path = ROOTFS_CACHE) -> Path:
    """The cached rootfs, built first if missing. A lock serialises builders; a build goes into a temp dir
    that is renamed into place only once complete, so a killed build never leaves a half rootfs behind.
    A cached rootfs from before `/` was made 0755 is repaired here."""
    if _rootfs_complete(cache):
        if fix_root_mode(cache):
            _log(f"{cache}: / was not 0755; fixed")
        return cache
    cache.parent.mkdir(parents=True, exist_ok=True)
    with open(cache.parent / f"{cache.name}.lock", "a") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        if _rootfs_complete(cache):  # another run finished it while we waited
            fix_root_mode(cache)
            return cache
        for stale in cache.parent.glob(f"{cache.name}.tmp-*"):  # left by killed builds; we hold the lock
            shutil.rmtree(stale, ignore_errors=True)
        _build_rootfs(cache)
    return cache


def _build_rootfs(cache: Path) -> None:
    mirror = debian_mirror()
    tmp = Path(tempfile.mkdtemp(prefix=f"{cache.name}.tmp-", dir=cache.parent))
    log = cache.parent / f"{cache.name}.build.log"
    argv = ["debootstrap", "--variant=minbase", f"--include={','.join(INCLUDE)}", SUITE, str(tmp), mirror]
    _log(f"building {cache} from {mirror} (once; about a minute)")
    started = time.monotonic()
    try:
        with open(log, "w") as out:
            proc = subprocess.run(
                argv, stdin=subprocess.DEVNULL, stdout=out, stderr=out, timeout=BUILD_TIMEOUT
            )
        if proc.returncode != 0:
            tail = log.read_text(errors="replace").strip().splitlines()[-3:]
            raise Unavailable(f"debootstrap failed (rc {proc.returncode}, see {log}): {' | '.join(tail)}")
        _customize_rootfs(tmp)
        marker = {**_wanted_marker(mirror), "built_s": round(time.monotonic() - started, 1)}
        (tmp / MARKER).write_text(json.dumps(marker) + "\n")
        fix_root_mode(tmp)  # mkdtemp made it 0700
        if cache.exists():  # an older build (other INCLUDE): move it aside, then replace it
            old = cache.with_name(f"{cache.name}.tmp-old-{secrets.token_hex(3)}")
            cache.rename(old)
            shutil.rmtree(old, ignore_errors=True)
        tmp.rename(cache)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    _log(f"built {cache} in {time.monotonic() - started:.0f}s")


def _customize_rootfs(root: Path) -> None:
    """What every booted copy needs: a faster sshd and no Debian redis on 6379 (our units run their own)."""
    (root / "etc/ssh/sshd_config.d/aitbc-test.conf").write_text(_SSHD_DROPIN)
    with contextlib.suppress(FileNotFoundError):
        (root / "etc/systemd/system/multi-user.target.wants/redis-server.service").unlink()


# --------------------------------------------------------------------------- one booted host


@dataclass
class SystemdHost:
    """A booted systemd-nspawn container reachable over SSH at `address` (root, key `client_key`)."""

    name: str
    workdir: Path
    address: str = ""
    gateway: str = ""
    veth: str = ""
    root: Path = field(default_factory=Path)
    overlay: bool = False
    nspawn_pid: int | None = None
    leader_pid: int | None = None  # the container's PID 1 (systemd), as seen from the controller
    client_key: Path = field(default_factory=Path)
    inventory: Path = field(default_factory=Path)
    aitbc_root: str = AITBC_ROOT
    _proc: subprocess.Popen[bytes] | None = field(default=None, repr=False)

    @property
    def log(self) -> Path:
        return self.workdir / "nspawn.log"

    def run(
        self, cmd: str, *, check: bool = False, timeout: float = 60.0
    ) -> subprocess.CompletedProcess[str]:
        """Run a shell command inside the container (all its namespaces, its root), outside SSH."""
        if self.leader_pid is None:
            raise RuntimeError(f"{self.name} is not running")
        argv = ["nsenter", "-t", str(self.leader_pid), "-a", "--", "/bin/sh", "-c", cmd]
        return subprocess.run(
            argv,
            env=_CONTAINER_ENV,
            capture_output=True,
            text=True,
            check=check,
            timeout=timeout,
            stdin=subprocess.DEVNULL,
        )

    def ssh(self, cmd: str, *, timeout: float = 60.0) -> subprocess.CompletedProcess[str]:
        """Run a command over a real SSH login (no multiplexing)."""
        return subprocess.run(
            [*self._ssh_argv(), self._ssh_target(), cmd],
            capture_output=True,
            text=True,
            timeout=timeout,
            stdin=subprocess.DEVNULL,
        )

    def host_pid(self, container_pid: int) -> int:
        """The controller's PID of the container's process `container_pid` (for signals from outside)."""
        assert self.leader_pid is not None
        ns = os.stat(f"/proc/{self.leader_pid}/ns/pid").st_ino
        for pid in [self.leader_pid, *_descendants(self.leader_pid)]:
            with contextlib.suppress(OSError):
                if os.stat(f"/proc/{pid}/ns/pid").st_ino == ns and _nspid(pid) == container_pid:
                    return pid
        raise LookupError(f"{self.name}: no process {container_pid} in the container")

    def _ssh_argv(self) -> list[str]:
        return ["ssh", "-q", "-i", str(self.client_key), *SSH_COMMON_ARGS.split(), *_SSH_PROBE_OPTS]

    def _ssh_target(self) -> str:
        return f"root@{self.address}"


def _nspid(pid: int) -> int | None:
    """`pid`'s PID in its own (innermost) PID namespace."""
    try:
        status = Path(f"/proc/{pid}/status").read_text()
    except OSError:
        return None
    match = re.search(r"^NSpid:\s+(.*)$", status, re.MULTILINE)
    return int(match.group(1).split()[-1]) if match else None


def _new_name() -> str:
    links = {link["ifname"] for link in json.loads(_ip("-j", "link", "show").stdout or "[]")}
    while True:
        name = f"aitbcsd{secrets.token_hex(2)}"  # "ve-" + 11 chars fits IFNAMSIZ, so nspawn keeps it as is
        if f"ve-{name}" not in links:
            return name


def _prepare_root(host: SystemdHost, lower: Path) -> None:
    """A writable root for this session: an overlay on the cached rootfs, or a reflink copy of it."""
    host.root = host.workdir / "root"
    upper, work = host.workdir / "upper", host.workdir / "work"
    for d in (host.root, upper, work):
        d.mkdir(parents=True, exist_ok=True)
    upper.chmod(ROOT_MODE)  # the overlay's `/` takes the upper dir's mode
    opts = f"lowerdir={lower},upperdir={upper},workdir={work}"
    proc = subprocess.run(
        ["mount", "-t", "overlay", "overlay", "-o", opts, str(host.root)], capture_output=True
    )
    if proc.returncode == 0:
        host.overlay = True
        return
    _log(f"overlayfs refused ({proc.stderr.decode(errors='replace').strip()}); copying the rootfs")
    host.root.rmdir()
    subprocess.run(["cp", "-a", "--reflink=auto", str(lower), str(host.root)], check=True)
    fix_root_mode(host.root)
    (host.root / MARKER).unlink(missing_ok=True)


def _personalise(host: SystemdHost, public_key: Path) -> None:
    ssh_dir = host.root / "root/.ssh"
    ssh_dir.mkdir(mode=0o700, parents=True, exist_ok=True)
    authorized = ssh_dir / "authorized_keys"
    shutil.copyfile(public_key, authorized)
    authorized.chmod(0o600)
    # systemd sets the hostname from /etc/hostname (debootstrap copied the controller's).
    (host.root / "etc/hostname").write_text(f"{host.name}\n")
    (host.root / "etc/hosts").write_text(f"127.0.0.1 localhost\n127.0.1.1 {host.name}\n")


def _spawn(host: SystemdHost) -> None:
    argv = ["systemd-nspawn", "-D", str(host.root), "-b", "--register=no", "--keep-unit", "--console=pipe"]
    argv += ["-M", host.name, "--network-veth"]
    with open(host.log, "ab") as log:
        host._proc = subprocess.Popen(
            argv,
            stdin=subprocess.DEVNULL,
            stdout=log,
            stderr=log,
            start_new_session=True,  # a Ctrl-C aimed at pytest must not kill the host before teardown
        )
    host.nspawn_pid = host._proc.pid
    host.veth = f"ve-{host.name}"


def _log_tail(host: SystemdHost, n: int = 8) -> str:
    with contextlib.suppress(OSError):
        return " | ".join(host.log.read_text(errors="replace").strip().splitlines()[-n:])
    return ""


def _wait_leader(host: SystemdHost, timeout: float = 20.0) -> None:
    """Wait for the container's PID 1 and both veth ends; nspawn exiting first means it can't work here."""
    assert host._proc is not None and host.nspawn_pid is not None
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if host._proc.poll() is not None:
            raise Unavailable(f"systemd-nspawn exited with {host._proc.returncode}: {_log_tail(host)}")
        leader = next((p for p in _descendants(host.nspawn_pid) if _nspid(p) == 1), None)
        if (
            leader
            and _ip("link", "show", host.veth, check=False).returncode == 0
            and _in_netns(leader, "link", "show", "host0").returncode == 0
        ):
            host.leader_pid = leader
            return
        time.sleep(0.05)
    raise Unavailable(f"systemd-nspawn did not start a container in {timeout:g}s: {_log_tail(host)}")


def _in_netns(pid: int, *args: str) -> subprocess.CompletedProcess[str]:
    """The controller's `ip ARGS` in the network namespace of `pid` (the container has no iproute2)."""
    return subprocess.run(["nsenter", "-t", str(pid), "-n", "ip", *args], capture_output=True, text=True)


def _address(host: SystemdHost) -> None:
    """Host end .1 and host0 .2 in a /24 no route uses (call with the testhosts allocation lock held)."""
    assert host.leader_pid is not None
    subnet = pick_subnet(_used_networks())
    host.gateway, host.address = str(subnet[1]), str(subnet[2])
    _ip("addr", "add", f"{host.gateway}/24", "dev", host.veth)
    _ip("link", "set", host.veth, "up")
    for args in (
        ("addr", "add", f"{host.address}/24", "dev", "host0"),
        ("link", "set", "host0", "up"),
        ("link", "set", "lo", "up"),
    ):
        proc = _in_netns(host.leader_pid, *args)
        if proc.returncode != 0:
            raise RuntimeError(f"ip {' '.join(args)} in {host.name}: {proc.stderr.strip()}")


def _wait_running(host: SystemdHost, timeout: float = BOOT_TIMEOUT) -> str:
    """Wait for systemd to finish booting; returns `running` or `degraded` (then logs the failed units)."""
    deadline = time.monotonic() + timeout
    state = ""
    while time.monotonic() < deadline:
        state = host.run("systemctl is-system-running", timeout=10).stdout.strip()
        if state in ("running", "degraded"):
            if state == "degraded":
                failed = host.run("systemctl --failed --no-legend --plain", timeout=10).stdout.strip()
                _log(f"{host.name} is degraded: {failed}")
            return state
        # "offline" also means systemd has not opened its socket yet: only nspawn exiting ends the wait.
        if state == "stopping" or (host._proc and host._proc.poll() is not None):
            break
        time.sleep(0.1)
    raise RuntimeError(
        f"{host.name}: systemd did not reach running (last state {state!r}): {_log_tail(host)}"
    )


def _wait_ssh(host: SystemdHost, timeout: float = 20.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if _tcp_open(host.address, 22):
            probe = subprocess.run(
                [*host._ssh_argv(), host._ssh_target(), "true"], capture_output=True, timeout=15
            )
            if probe.returncode == 0:
                return
        time.sleep(0.1)
    journal = host.run("journalctl -u ssh.service -n 5 --no-pager", timeout=10).stdout.strip()
    raise RuntimeError(f"{host.name}: sshd not ready on {host.address}:22: {journal}")


def _write_inventory(host: SystemdHost) -> None:
    inv_dir = host.workdir / "inventory"
    inv_dir.mkdir(parents=True, exist_ok=True)
    hostvars = {
        "ansible_host": host.address,
        "ansible_user": "root",
        "ansible_ssh_private_key_file": str(host.client_key),
        "ansible_ssh_common_args": SSH_COMMON_ARGS,
        "ansible_python_interpreter": "/usr/bin/python3",
        "aitbc_root": host.aitbc_root,
    }
    body = yaml.safe_dump({"all": {"children": {"aitbc": {"hosts": {host.name: hostvars}}}}}, sort_keys=False)
    host.inventory = inv_dir / "hosts.yml"
    host.inventory.write_text(
        f"---\n# A systemd-nspawn host. Generated by tests/integration/nspawn.py.\n{body}"
    )
    link = inv_dir / "group_vars"
    if not link.is_symlink():
        link.symlink_to(REPO_ROOT / "inventory" / "group_vars")


def boot(workdir: Path) -> SystemdHost:
    """Boot a systemd host under `workdir`; the caller must `shutdown()` it (see booted_host)."""
    reason = nspawn_unavailable()
    if reason:
        raise Unavailable(reason)
    lower = ensure_rootfs()
    workdir = Path(workdir).resolve()
    key, authorized = _make_client_key(workdir)
    host = SystemdHost(name=_new_name(), workdir=workdir, client_key=key)
    try:
        started = time.monotonic()
        _prepare_root(host, lower)
        _personalise(host, authorized)
        # Held until our veth has its address, so a concurrent run sees our route when it picks a subnet.
        with _global_lock():
            _spawn(host)
            _wait_leader(host)
            _address(host)
        state = _wait_running(host)
        _wait_ssh(host)
        _write_inventory(host)
        _log(f"{host.name} {state} at {host.address} in {time.monotonic() - started:.1f}s ({host.inventory})")
        return host
    except BaseException:
        with contextlib.suppress(Exception):
            shutdown(host)
        raise


# --------------------------------------------------------------------------- teardown


def _stop_nspawn(host: SystemdHost) -> None:
    """SIGTERM asks nspawn to halt the container cleanly; a second SIGTERM, then SIGKILL, force it."""
    pid = host.nspawn_pid
    if pid is None:
        return
    for sig, grace in ((signal.SIGTERM, STOP_GRACE), (signal.SIGTERM, 5.0), (signal.SIGKILL, 5.0)):
        if not _alive(pid):
            break
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, sig)
        deadline = time.monotonic() + grace
        while time.monotonic() < deadline and _alive(pid):
            if host._proc is not None:
                with contextlib.suppress(subprocess.TimeoutExpired):
                    host._proc.wait(timeout=0.1)
            else:
                time.sleep(0.1)
    if host._proc is not None:
        with contextlib.suppress(subprocess.TimeoutExpired):
            host._proc.wait(timeout=5)


def leftovers(host: SystemdHost) -> list[str]:
    """Whatever of `host` still exists; empty after a clean shutdown."""
    left = []
    if host.nspawn_pid is not None and _alive(host.nspawn_pid):
        left.append(f"systemd-nspawn {host.nspawn_pid}")
    if host.leader_pid is not None and _alive(host.leader_pid):
        left.append(f"container init {host.leader_pid}")
    if host.veth and _ip("link", "show", host.veth, check=False).returncode == 0:
        left.append(f"link {host.veth}")
    if host.overlay and os.path.ismount(host.root):
        left.append(f"mount {host.root}")
    for name in ("root", "upper", "work"):
        if (host.workdir / name).exists():
            left.append(f"dir {host.workdir / name}")
    return left


def shutdown(host: SystemdHost) -> None:
    """Stop the container by PID, unmount and remove its root. Raises TeardownError if anything is left."""
    _stop_nspawn(host)
    if host.veth and _ip("link", "show", host.veth, check=False).returncode == 0:
        _ip("link", "del", host.veth, check=False)  # normally gone with the container's netns
    if host.overlay and os.path.ismount(host.root):
        subprocess.run(["umount", str(host.root)], capture_output=True)
    if not (host.overlay and os.path.ismount(host.root)):  # never rm -r through a live mount
        for name in ("root", "upper", "work"):
            shutil.rmtree(host.workdir / name, ignore_errors=True)
    left = leftovers(host)
    if left:
        raise TeardownError(f"{host.name} teardown left: " + "; ".join(left))


@contextlib.contextmanager
def booted_host(workdir: Path) -> Iterator[SystemdHost]:
    host = boot(workdir)
    try:
        yield host
    finally:
        shutdown(host)


@pytest.fixture(scope="session", name="systemd_host")
def systemd_host_fixture(tmp_path_factory: pytest.TempPathFactory) -> Iterator[SystemdHost]:
    """A booted systemd host: .name, .address, .inventory (group aitbc, aitbc_root /opt/aitbc), .run(cmd)."""
    reason = nspawn_unavailable()
    if reason:
        pytest.skip(reason)
    try:
        host = boot(tmp_path_factory.mktemp("nspawn"))
    except Unavailable as exc:  # debootstrap or nspawn cannot work on this machine: say why, never pass
        print(f"systemd host unavailable: {exc}", file=sys.stderr)
        pytest.skip(f"systemd host unavailable: {exc}")
    try:
        yield host
    finally:
        shutdown(host)


def _up(workdir: Path) -> None:
    """Boot a host, print its inventory path, keep it up until SIGTERM/SIGINT, then tear it down."""
    stop = False

    def on_signal(_signum: int, _frame: object) -> None:
        nonlocal stop
        stop = True

    for sig in (signal.SIGTERM, signal.SIGINT, signal.SIGHUP):
        signal.signal(sig, on_signal)
    with booted_host(workdir) as host:
        print(host.inventory, flush=True)
        while not stop:
            signal.pause()


def main(argv: list[str] | None = None) -> int:
    args = list(argv if argv is not None else sys.argv[1:])
    if args not in (["build"],) and not (len(args) == 2 and args[0] == "up"):
        print("usage: nspawn.py build | nspawn.py up WORKDIR (foreground until signalled)", file=sys.stderr)
        return 2
    reason = nspawn_unavailable()
    if reason:
        print(f"nspawn: {reason}", file=sys.stderr)
        return 1
    try:
        if args[0] == "build":
            print(ensure_rootfs())
        else:
            _up(Path(args[1]))
    except (Unavailable, RuntimeError) as exc:
        print(f"nspawn: {exc}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())

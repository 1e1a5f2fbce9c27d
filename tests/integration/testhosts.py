"""Real SSH test hosts for integration tests and benchmarks.

Each host tN is a real sshd with its own hostname (UTS namespace) and, where the kernel allows it, its own
network namespace attached to a per-run bridge. Where `ip netns add` is refused, hosts are sshds on loopback
addresses instead. Hosts share the controller's filesystem; each gets a state dir used as `aitbc_root`.

Library:  create_hosts(n, workdir) -> HostPool, or `with host_pool(n, workdir) as pool: ...`
CLI:      python tests/integration/testhosts.py up N WORKDIR [--wait]   |   ... down WORKDIR
"""

from __future__ import annotations

import argparse
import atexit
import contextlib
import fcntl
import ipaddress
import json
import os
import pwd
import re
import secrets
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import asdict, dataclass
from pathlib import Path

import yaml

SSHD = "/usr/sbin/sshd"
MODE_ENV = "AITBC_TESTHOSTS_MODE"
MODES = ("netns", "loopback")
REPO_ROOT = Path(__file__).resolve().parents[2]
SSH_COMMON_ARGS = "-o UserKnownHostsFile=/dev/null -o StrictHostKeyChecking=no"
# Concurrent runs serialise address/port allocation on this lock (routes/ports are checked, not reserved).
LOCK_FILE = Path(tempfile.gettempdir()) / "aitbc-testhosts.lock"
# A /16 unlikely to be used by real networks; each run takes the first free /24 in it.
SUBNET_POOL = ipaddress.ip_network("10.213.0.0/16")
LOOPBACK_PORT = 2222
HOST_OFFSET = 10  # tN gets .(10+N), in the bridge subnet or in 127.0.0.0/8
READY_TIMEOUT = 20.0
TERM_GRACE = 3.0

# A readiness probe is a real login, never multiplexed and never prompting.
_SSH_PROBE_OPTS = ("-oBatchMode=yes", "-oControlMaster=no", "-oControlPath=none", "-oConnectTimeout=3")
# Runs tN's hostname then execs the rest of argv, so the PID we hold is the final program's PID.
_SET_HOSTNAME_AND_EXEC = 'hostname "$1" && shift && exec "$@"'
# The same for sshd, in its own mount namespace with an empty file over root's ~/.bashrc: hosts share the
# controller's filesystem, and its ~/.bashrc (pyenv init) costs ~0.15 s on every SSH command.
_CLEAN_SHELL_SSHD = (
    'hostname "$1" && { mount --bind "$2" "$3" || echo "testhosts: $3 not masked" >&2; } '
    '&& shift 3 && exec "$@"'
)
ROOT_BASHRC = Path(pwd.getpwnam("root").pw_dir) / ".bashrc"


class TeardownError(RuntimeError):
    """Raised when teardown could not remove everything it created."""


@dataclass
class SshHost:
    name: str
    address: str
    port: int
    state_dir: Path
    netns: str | None = None
    veth: str | None = None
    sshd_pid: int | None = None

    @property
    def sshd_dir(self) -> Path:
        return self.state_dir / "sshd"

    @property
    def sshd_config(self) -> Path:
        return self.sshd_dir / "sshd_config"

    @property
    def clean_bashrc(self) -> Path:
        return self.sshd_dir / "bashrc"

    def to_json(self) -> dict[str, object]:
        return {**asdict(self), "state_dir": str(self.state_dir)}

    @classmethod
    def from_json(cls, data: dict[str, object]) -> SshHost:
        return cls(**{**data, "state_dir": Path(str(data["state_dir"]))})  # type: ignore[arg-type]


# --------------------------------------------------------------------------- small helpers


def _ip(*args: str, check: bool = True) -> subprocess.CompletedProcess[str]:
    proc = subprocess.run(["ip", *args], capture_output=True, text=True)
    if check and proc.returncode != 0:
        raise RuntimeError(f"ip {' '.join(args)}: {proc.stderr.strip()}")
    return proc


@contextlib.contextmanager
def _global_lock() -> Iterator[None]:
    with open(LOCK_FILE, "a") as fh:
        fcntl.flock(fh, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(fh, fcntl.LOCK_UN)


def _log(msg: str) -> None:
    print(f"testhosts: {msg}", file=sys.stderr, flush=True)


def _proc_state(pid: int) -> str | None:
    """Process state letter, or None when the PID does not exist."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    return stat.rsplit(")", 1)[1].split()[0]


def _alive(pid: int) -> bool:
    # PID 1 here does not reap orphans, so killed daemons linger as zombies: those count as gone.
    state = _proc_state(pid)
    return state is not None and state not in ("Z", "X")


def _all_pids() -> list[int]:
    return [int(p) for p in os.listdir("/proc") if p.isdigit()]


def _ppid(pid: int) -> int | None:
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    return int(stat.rsplit(")", 1)[1].split()[1])


def _protected_pids() -> set[int]:
    """This process and its ancestors: never signalled, whatever they reference."""
    pids, pid = set(), os.getpid()
    while pid and pid not in pids:
        pids.add(pid)
        pid = _ppid(pid) or 0
    return pids


def _descendants(root: int) -> list[int]:
    children: dict[int, list[int]] = {}
    for pid in _all_pids():
        ppid = _ppid(pid)
        if ppid is not None:
            children.setdefault(ppid, []).append(pid)
    found, todo = [], [root]
    while todo:
        for child in children.get(todo.pop(), []):
            found.append(child)
            todo.append(child)
    return found


def _cmdline(pid: int) -> list[str]:
    try:
        raw = Path(f"/proc/{pid}/cmdline").read_bytes()
    except OSError:
        return []
    return raw.decode(errors="replace").split("\0")


def _references(pid: int, directory: Path) -> bool:
    """True when the process's cwd or any argument points into `directory` (path-boundary aware)."""
    prefix = str(directory)
    pattern = re.compile(re.escape(prefix) + r"(?=$|[/\s'\":=,;])")
    with contextlib.suppress(OSError):
        cwd = os.readlink(f"/proc/{pid}/cwd").removesuffix(" (deleted)")
        if cwd == prefix or cwd.startswith(prefix + "/"):
            return True
    return any(pattern.search(arg) for arg in _cmdline(pid))


def _signal(pid: int, sig: int, owned: Callable[[int], bool]) -> None:
    """Signal `pid` only if `owned(pid)` still holds; the pidfd pins the process, so a reused PID is safe."""
    try:
        fd = os.pidfd_open(pid)
    except ProcessLookupError:
        return
    try:
        if owned(pid):
            signal.pidfd_send_signal(fd, sig)
    except ProcessLookupError:
        pass
    finally:
        os.close(fd)


def _kill_all(targets: Callable[[], Iterable[int]], owned: Callable[[int], bool]) -> list[int]:
    """SIGTERM all `targets()`, then SIGKILL stragglers (re-listing catches processes forked meanwhile)."""
    protected = _protected_pids()

    def live() -> list[int]:
        return [p for p in targets() if p not in protected and _alive(p)]

    for sig, grace in ((signal.SIGTERM, TERM_GRACE), (signal.SIGKILL, 2.0), (signal.SIGKILL, 2.0)):
        pids = live()
        if not pids:
            return []
        for pid in pids:
            _signal(pid, sig, owned)
        deadline = time.monotonic() + grace
        while time.monotonic() < deadline and live():
            time.sleep(0.05)
    return live()


# --------------------------------------------------------------------------- addressing


def _used_networks() -> list[str]:
    routes = json.loads(_ip("-j", "route", "show", "table", "all").stdout or "[]")
    return [r.get("dst", "") for r in routes]


def pick_subnet(used: Iterable[str], pool: ipaddress.IPv4Network = SUBNET_POOL) -> ipaddress.IPv4Network:
    """First /24 of `pool` that overlaps none of the route destinations in `used` ('default' is ignored)."""
    taken = []
    for dst in used:
        with contextlib.suppress(ValueError):
            net = ipaddress.ip_network(dst, strict=False)
            if net.version == 4 and net.prefixlen > 0:
                taken.append(net)
    for candidate in pool.subnets(new_prefix=24):
        if not any(candidate.overlaps(net) for net in taken):
            return candidate
    raise RuntimeError(f"no free /24 in {pool}")


def _port_free(address: str, port: int) -> bool:
    with socket.socket() as sock:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)  # as sshd does: TIME_WAIT is no conflict
        try:
            sock.bind((address, port))
        except OSError:
            return False
    return True


def _pick_loopback_port(addresses: Sequence[str]) -> int:
    if all(_port_free(a, LOOPBACK_PORT) for a in addresses):
        return LOOPBACK_PORT
    for _ in range(50):
        with socket.socket() as sock:
            sock.bind(("127.0.0.1", 0))
            port = sock.getsockname()[1]
        if all(_port_free(a, port) for a in addresses):
            return port
    raise RuntimeError("no free TCP port on the loopback addresses")


def _tcp_open(address: str, port: int) -> bool:
    with socket.socket() as sock:
        sock.settimeout(1.0)
        return sock.connect_ex((address, port)) == 0


def _succeeded(proc: subprocess.Popen[bytes], timeout: float = 15.0) -> bool:
    try:
        return proc.wait(timeout=timeout) == 0
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait()
        return False


def _new_token() -> str:
    existing = set(_ip("netns", "list").stdout.split())
    links = {link["ifname"] for link in json.loads(_ip("-j", "link", "show").stdout or "[]")}
    while True:
        token = secrets.token_hex(2)
        if not any(t.startswith(f"aitbc-{token}-") for t in existing) and f"ab{token}br" not in links:
            return token


# --------------------------------------------------------------------------- mode


def _probe_netns() -> str | None:
    """Why network namespaces are unusable here, or None when they work."""
    name = f"aitbc-probe-{os.getpid()}"
    try:
        proc = _ip("netns", "add", name, check=False)
    except FileNotFoundError:
        return "ip (iproute2) not found"
    if proc.returncode != 0:
        return proc.stderr.strip() or "ip netns add failed"
    _ip("netns", "del", name, check=False)
    return None


def detect_mode() -> str:
    forced = os.environ.get(MODE_ENV, "").strip()
    if forced:
        if forced not in MODES:
            raise ValueError(f"{MODE_ENV}={forced!r}: expected one of {', '.join(MODES)}")
        return forced
    reason = _probe_netns()
    if reason:
        _log(f"network namespaces refused ({reason}); falling back to loopback")
        return "loopback"
    return "netns"


# --------------------------------------------------------------------------- files


def _make_client_key(workdir: Path) -> tuple[Path, Path]:
    ssh_dir = workdir / "ssh"
    ssh_dir.mkdir(parents=True, exist_ok=True)
    key = ssh_dir / "id_ed25519"
    if not key.exists():
        subprocess.run(
            ["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-C", "aitbc-testhosts", "-f", str(key)],
            check=True,
        )
    authorized = ssh_dir / "authorized_keys"
    shutil.copyfile(key.with_suffix(".pub"), authorized)
    return key, authorized


def _sshd_config_text(host: SshHost, host_key: Path, authorized_keys: Path) -> str:
    return "\n".join(
        [
            f"Port {host.port}",
            f"ListenAddress {host.address}",
            f'HostKey "{host_key}"',
            f'PidFile "{host.sshd_dir / "sshd.pid"}"',
            f'AuthorizedKeysFile "{authorized_keys}"',
            "PermitRootLogin prohibit-password",
            "PubkeyAuthentication yes",
            "PasswordAuthentication no",
            "KbdInteractiveAuthentication no",
            # No PAM stack in these hosts; StrictModes off because tmp dirs have loose permissions.
            "UsePAM no",
            "StrictModes no",
            "UseDNS no",
            "PrintMotd no",
            "PrintLastLog no",
            "LogLevel VERBOSE",
            # OpenSSH 9.2's default post-quantum kex costs the client ~0.27 s per connection on these VMs.
            "KexAlgorithms curve25519-sha256,curve25519-sha256@libssh.org",
            # forks=20 opening fresh connections at once must not hit the default 10:30:100 throttle, and
            # ControlPersist multiplexes many sessions over one connection.
            "MaxStartups 200:30:400",
            "MaxSessions 200",
            "Subsystem sftp internal-sftp",
            "",
        ]
    )


def _prepare_host_files(host: SshHost, authorized_keys: Path) -> None:
    host.sshd_dir.mkdir(parents=True, exist_ok=True)
    host_key = host.sshd_dir / "ssh_host_ed25519_key"
    if not host_key.exists():
        subprocess.run(
            ["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-C", host.name, "-f", str(host_key)], check=True
        )
    host.sshd_config.write_text(_sshd_config_text(host, host_key, authorized_keys))
    host.clean_bashrc.write_text("# Bind-mounted over root's ~/.bashrc inside this host's sshd only.\n")


def _host_vars(host: SshHost, key: Path) -> dict[str, object]:
    return {
        "ansible_host": host.address,
        "ansible_port": host.port,
        "ansible_user": "root",
        "ansible_ssh_private_key_file": str(key),
        "aitbc_root": str(host.state_dir),
        # Test hosts start without backups; the backup tests turn the freshness check on where they test it.
        "heartbeat_backup_max_age_hours": 0,
    }


def _write_inventories(pool: HostPool) -> None:
    inv_dir = pool.inventory.parent
    inv_dir.mkdir(parents=True, exist_ok=True)
    hosts = {
        h.name: {**_host_vars(h, pool.client_key), "ansible_ssh_common_args": SSH_COMMON_ARGS}
        for h in pool.hosts
    }
    _dump_inventory(pool.inventory, hosts, "Real sshd test hosts (OpenSSH client, ControlPersist).")
    if pool.paramiko_inventory is not None:
        first = pool.hosts[0]
        alias = {
            **_host_vars(first, pool.client_key),
            "ansible_connection": "paramiko",
            # The only paramiko host-key option exposed as a variable; with it off, paramiko neither
            # checks nor records (record_host_keys only applies when checking is on).
            "ansible_paramiko_host_key_checking": False,
        }
        _dump_inventory(
            pool.paramiko_inventory, {f"{first.name}p": alias}, f"{first.name} again, over paramiko."
        )
    link = inv_dir / "group_vars"
    if not link.is_symlink():
        link.symlink_to(REPO_ROOT / "inventory" / "group_vars")


def _dump_inventory(path: Path, hosts: dict[str, dict[str, object]], comment: str) -> None:
    body = yaml.safe_dump({"all": {"children": {"aitbc": {"hosts": hosts}}}}, sort_keys=False)
    path.write_text(f"---\n# {comment} Generated by tests/integration/testhosts.py.\n{body}")


# --------------------------------------------------------------------------- the pool


class HostPool:
    """A set of running SSH test hosts plus their inventory files. Close it to tear everything down."""

    def __init__(self, workdir: Path, mode: str, token: str, paramiko_host: bool = True) -> None:
        self.workdir = workdir
        self.mode = mode
        self.token = token
        self.hosts: list[SshHost] = []
        self.bridge: str | None = None
        self.subnet: str | None = None
        self.gateway: str | None = None
        self.inventory = workdir / "inventory" / "hosts.yml"
        self.paramiko_inventory: Path | None = (
            workdir / "inventory" / "paramiko.yml" if paramiko_host else None
        )
        self.client_key = workdir / "ssh" / "id_ed25519"
        self.state_file = workdir / "pool.json"
        self.owner_pid: int | None = None
        self._procs: dict[str, subprocess.Popen[bytes]] = {}
        self._closed = False
        atexit.register(self._close_at_exit)

    # ---- lookup

    def host(self, name: str) -> SshHost:
        for h in self.hosts:
            if h.name == name:
                return h
        raise KeyError(f"no test host {name!r} (have {', '.join(h.name for h in self.hosts)})")

    @property
    def names(self) -> list[str]:
        return [h.name for h in self.hosts]

    # ---- running things on a host

    def _wrap(self, host: SshHost, argv: Sequence[str], clean_shell: bool = False) -> list[str]:
        """argv run as host: in its netns (if any) and a fresh UTS namespace named after it.

        clean_shell (sshd): also a private mount namespace where root's ~/.bashrc is an empty file, so SSH
        sessions start like on a fresh host. The controller's own ~/.bashrc is untouched.
        """
        if clean_shell and ROOT_BASHRC.is_file():
            script = [_CLEAN_SHELL_SSHD, "sh", host.name, str(host.clean_bashrc), str(ROOT_BASHRC)]
            inner = ["unshare", "--uts", "--mount", "--propagation", "private", "--", "sh", "-c", *script]
        else:
            inner = ["unshare", "--uts", "--", "sh", "-c", _SET_HOSTNAME_AND_EXEC, "sh", host.name]
        inner += argv
        return ["ip", "netns", "exec", host.netns, *inner] if host.netns else inner

    def run(
        self, name: str, cmd: str | Sequence[str], *, check: bool = False, timeout: float = 60.0
    ) -> subprocess.CompletedProcess[str]:
        """Run `cmd` (a shell string or an argv) on host `name`, as root, outside SSH."""
        host = self.host(name)
        argv = ["sh", "-c", cmd] if isinstance(cmd, str) else list(cmd)
        # cwd in the state dir lets loopback teardown find anything this leaves running.
        return subprocess.run(
            self._wrap(host, argv),
            cwd=host.state_dir,
            capture_output=True,
            text=True,
            check=check,
            timeout=timeout,
            stdin=subprocess.DEVNULL,
        )

    def pids(self, name: str) -> list[int]:
        """Live processes of host `name`: its netns, or in loopback mode its sshd tree and state-dir users."""
        host = self.host(name)
        return [p for p in self._host_pids(host) if _alive(p)]

    def _host_pids(self, host: SshHost) -> list[int]:
        if host.netns:
            if not Path(f"/run/netns/{host.netns}").exists():
                return []
            return [int(p) for p in _ip("netns", "pids", host.netns, check=False).stdout.split()]
        found = set(self._sshd_tree(host))
        found.update(p for p in _all_pids() if _references(p, host.state_dir))
        return sorted(found - _protected_pids())

    def _in_host(self, host: SshHost) -> Callable[[int], bool]:
        if host.netns:
            ns = os.stat(f"/run/netns/{host.netns}")

            def in_netns(pid: int) -> bool:
                try:
                    st = os.stat(f"/proc/{pid}/ns/net")
                except OSError:
                    return False
                return (st.st_dev, st.st_ino) == (ns.st_dev, ns.st_ino)

            return in_netns
        tree = set(self._sshd_tree(host))
        return lambda pid: pid in tree or _references(pid, host.state_dir)

    # ---- sshd control

    def _is_our_sshd(self, host: SshHost, pid: int) -> bool:
        # sshd rewrites its argv into one title string ("sshd: /usr/sbin/sshd -D -e -f CFG [listener] ...").
        return str(host.sshd_config) in " ".join(_cmdline(pid))

    def _sshd_tree(self, host: SshHost) -> list[int]:
        pid = host.sshd_pid
        if pid is None or not self._is_our_sshd(host, pid):
            return []
        return [pid, *_descendants(pid)]

    def start_sshd(self, name: str) -> None:
        host = self.host(name)
        if host.sshd_pid is not None and _alive(host.sshd_pid):
            return
        self._spawn_sshd(host)
        self._wait_ready([host])
        self.save_state()

    def stop_sshd(self, name: str) -> None:
        """Stop sshd and its sessions (ControlPersist masters drop too); daemonized services keep running."""
        host = self.host(name)
        tree = self._sshd_tree(host)
        left = _kill_all(lambda: tree, lambda p: p in tree)
        self._reap(host)
        if left:
            raise TeardownError(f"{name}: sshd processes survived SIGKILL: {left}")
        host.sshd_pid = None
        self.save_state()

    def _spawn_sshd(self, host: SshHost) -> None:
        Path("/run/sshd").mkdir(mode=0o755, exist_ok=True)  # sshd's privilege-separation dir
        log = open(host.sshd_dir / "sshd.log", "ab")  # noqa: SIM115 - handed to the child
        with log:
            proc = subprocess.Popen(
                self._wrap(host, [SSHD, "-D", "-e", "-f", str(host.sshd_config)], clean_shell=True),
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=log,
                # Own session: a Ctrl-C aimed at pytest must not kill hosts before teardown runs.
                start_new_session=True,
            )
        self._procs[host.name] = proc
        host.sshd_pid = proc.pid

    def _reap(self, host: SshHost) -> None:
        proc = self._procs.pop(host.name, None)
        if proc is not None:
            with contextlib.suppress(subprocess.TimeoutExpired):
                proc.wait(timeout=5)

    def _wait_ready(self, hosts: Sequence[SshHost]) -> None:
        """Wait until each sshd accepts TCP and a real `ssh ... true` login; probes run in parallel."""
        deadline = time.monotonic() + READY_TIMEOUT
        pending = list(hosts)
        while True:
            for host in pending:
                self._check_running(host)
            probes = {h.name: self._ssh_true(h) for h in pending if _tcp_open(h.address, h.port)}
            pending = [h for h in pending if h.name not in probes or not _succeeded(probes[h.name])]
            if not pending:
                return
            if time.monotonic() > deadline:
                where = ", ".join(f"{h.name} ({h.address}:{h.port})" for h in pending)
                raise RuntimeError(f"sshd not ready on {where}; see {pending[0].sshd_dir / 'sshd.log'}")
            time.sleep(0.05)

    def _check_running(self, host: SshHost) -> None:
        proc = self._procs.get(host.name)
        if proc is not None and proc.poll() is not None:
            log = (host.sshd_dir / "sshd.log").read_text(errors="replace")[-2000:]
            raise RuntimeError(f"{host.name}: sshd exited with {proc.returncode}:\n{log}")

    def _ssh_true(self, host: SshHost) -> subprocess.Popen[bytes]:
        argv = ["ssh", "-q", "-i", str(self.client_key), "-p", str(host.port), *SSH_COMMON_ARGS.split()]
        argv += [*_SSH_PROBE_OPTS, f"root@{host.address}", "true"]
        return subprocess.Popen(
            argv, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL
        )

    # ---- building

    def _add_hosts(self, n: int) -> None:
        for i in range(1, n + 1):
            name = f"t{i}"
            state = self.workdir / "hosts" / name
            state.mkdir(parents=True, exist_ok=True)
            self.hosts.append(SshHost(name=name, address="", port=22, state_dir=state))

    def _setup_bridge(self) -> None:
        subnet = pick_subnet(_used_networks())
        self.subnet, self.gateway = str(subnet), str(subnet[1])
        bridge = f"ab{self.token}br"
        _ip("link", "add", bridge, "type", "bridge")
        self.bridge = bridge  # recorded only once it is ours, so a failed run never deletes another's
        _ip("addr", "add", f"{self.gateway}/{subnet.prefixlen}", "dev", bridge)
        _ip("link", "set", bridge, "up")

    def _setup_netns_host(self, host: SshHost, index: int) -> None:
        assert self.subnet and self.bridge and self.gateway
        subnet = ipaddress.ip_network(self.subnet)
        host.address = str(subnet[HOST_OFFSET + index])
        netns = f"aitbc-{self.token}-{host.name}"
        veth, peer = f"ab{self.token}h{index}", f"ab{self.token}p{index}"  # <= 15 chars (IFNAMSIZ)
        _ip("netns", "add", netns)
        host.netns = netns
        _ip("link", "add", veth, "type", "veth", "peer", "name", peer)
        host.veth = veth
        _ip("link", "set", peer, "netns", netns)
        _ip("link", "set", host.veth, "master", self.bridge, "up")
        for args in (
            ("link", "set", "lo", "up"),
            ("link", "set", peer, "name", "eth0"),
            ("addr", "add", f"{host.address}/{subnet.prefixlen}", "dev", "eth0"),
            ("link", "set", "eth0", "up"),
            ("route", "add", "default", "via", self.gateway),
        ):
            _ip("-n", host.netns, *args)

    def _setup_network(self) -> None:
        if self.mode == "netns":
            self.token = _new_token()
            self._setup_bridge()
            for i, host in enumerate(self.hosts, start=1):
                self._setup_netns_host(host, i)
            return
        for i, host in enumerate(self.hosts, start=1):
            host.address = f"127.0.0.{HOST_OFFSET + i}"  # all of 127/8 is local on Linux: no alias needed
        port = _pick_loopback_port([h.address for h in self.hosts])
        for host in self.hosts:
            host.port = port

    def _build(self, n: int) -> None:
        if not 1 <= n <= 240:
            raise ValueError(f"n={n}: between 1 and 240 hosts")
        _, authorized = _make_client_key(self.workdir)
        self._add_hosts(n)
        # Held until every sshd listens, so a concurrent run sees our routes and bound ports.
        with _global_lock():
            self._setup_network()
            for host in self.hosts:
                _prepare_host_files(host, authorized)
                self._spawn_sshd(host)
            self._wait_ready(self.hosts)
        _write_inventories(self)
        self.save_state()

    # ---- state file

    def save_state(self) -> None:
        data = {
            "mode": self.mode,
            "token": self.token,
            "bridge": self.bridge,
            "subnet": self.subnet,
            "gateway": self.gateway,
            "workdir": str(self.workdir),
            "inventory": str(self.inventory),
            "paramiko_inventory": str(self.paramiko_inventory) if self.paramiko_inventory else None,
            "client_key": str(self.client_key),
            "owner_pid": self.owner_pid,
            "hosts": [h.to_json() for h in self.hosts],
        }
        tmp = self.state_file.with_suffix(".json.tmp")
        tmp.write_text(json.dumps(data, indent=2) + "\n")
        tmp.replace(self.state_file)

    @classmethod
    def from_state(cls, workdir: Path) -> HostPool:
        """A pool rebuilt from WORKDIR/pool.json (another process's hosts), e.g. to tear it down."""
        data = json.loads((workdir / "pool.json").read_text())
        pool = cls(
            Path(data["workdir"]),
            data["mode"],
            data["token"],
            paramiko_host=data.get("paramiko_inventory") is not None,
        )
        pool.bridge, pool.subnet, pool.gateway = data["bridge"], data["subnet"], data["gateway"]
        pool.owner_pid = data.get("owner_pid")
        pool.hosts = [SshHost.from_json(h) for h in data["hosts"]]
        return pool

    def detach(self) -> None:
        """Leave the hosts running after this process exits (the CLI `up`); `down` removes them later."""
        atexit.unregister(self._close_at_exit)

    # ---- teardown

    def close(self) -> None:
        """Kill every host process, then remove namespaces, veths and bridge. Idempotent."""
        if self._closed:
            return
        self._closed = True
        atexit.unregister(self._close_at_exit)
        for host in self.hosts:
            self._kill_host(host)
        if self.mode == "netns":
            self._remove_network()
        left = self.leftovers()
        if left:
            raise TeardownError("teardown left: " + "; ".join(left))

    def _kill_host(self, host: SshHost) -> None:
        # Everything but the listener first (services daemonized over SSH, sessions), then sshd by PID:
        # the live listener reaps its sessions, which PID 1 here would leave as zombies.
        if not host.netns or Path(f"/run/netns/{host.netns}").exists():
            owned = self._in_host(host)
            _kill_all(lambda: [p for p in self._host_pids(host) if p != host.sshd_pid], owned)
        tree = self._sshd_tree(host)
        _kill_all(lambda: tree, lambda p: p in tree)
        self._reap(host)

    def _remove_network(self) -> None:
        links = {link["ifname"] for link in json.loads(_ip("-j", "link", "show").stdout or "[]")}
        for host in self.hosts:
            if host.veth and host.veth in links:
                _ip("link", "del", host.veth, check=False)  # removes the peer inside the netns too
            if host.netns and Path(f"/run/netns/{host.netns}").exists():
                _ip("netns", "del", host.netns, check=False)
        if self.bridge and self.bridge in links:
            _ip("link", "del", self.bridge, check=False)

    def leftovers(self) -> list[str]:
        """Everything of this pool that still exists; empty after a clean teardown."""
        left: list[str] = []
        links = {link["ifname"] for link in json.loads(_ip("-j", "link", "show").stdout or "[]")}
        namespaces = set(_ip("netns", "list").stdout.split())
        for host in self.hosts:
            live = self.pids(host.name)
            if live:
                left.append(f"{host.name} processes {live}")
            if host.sshd_pid is not None and _alive(host.sshd_pid) and self._is_our_sshd(host, host.sshd_pid):
                left.append(f"{host.name} sshd {host.sshd_pid}")
            if host.netns and host.netns in namespaces:
                left.append(f"netns {host.netns}")
            if host.veth and host.veth in links:
                left.append(f"link {host.veth}")
        if self.bridge and self.bridge in links:
            left.append(f"bridge {self.bridge}")
        return left

    def _close_at_exit(self) -> None:
        try:
            self.close()
        except Exception as exc:  # noqa: BLE001 - interpreter is exiting; report, don't mask the exit status
            _log(f"teardown at exit failed: {exc}")

    def __enter__(self) -> HostPool:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def create_hosts(n: int, workdir: Path, paramiko_host: bool = True) -> HostPool:
    """Start n SSH hosts t1..tn under workdir and write workdir/inventory/{hosts,paramiko}.yml."""
    workdir = Path(workdir).resolve()
    workdir.mkdir(parents=True, exist_ok=True)
    mode = detect_mode()
    # netns mode replaces the token with a unique one under the allocation lock.
    pool = HostPool(workdir, mode, f"{os.getpid() % 0xFFFF:04x}", paramiko_host=paramiko_host)
    try:
        pool._build(n)
    except BaseException:
        with contextlib.suppress(Exception):
            pool.close()
        raise
    where = pool.subnet if mode == "netns" else f"127.0.0.{HOST_OFFSET + 1}.. port {pool.hosts[0].port}"
    _log(f"mode={mode} hosts={','.join(pool.names)} net={where} inventory={pool.inventory}")
    return pool


@contextlib.contextmanager
def host_pool(n: int, workdir: Path, paramiko_host: bool = True) -> Iterator[HostPool]:
    pool = create_hosts(n, workdir, paramiko_host=paramiko_host)
    try:
        yield pool
    finally:
        pool.close()


# --------------------------------------------------------------------------- CLI


def _cmd_up(args: argparse.Namespace) -> int:
    pool = create_hosts(args.n, Path(args.workdir), paramiko_host=not args.no_paramiko)
    print(pool.inventory, flush=True)
    if not args.wait:
        pool.detach()
        return 0
    pool.owner_pid = os.getpid()
    pool.save_state()
    stop = False

    def on_signal(signum: int, _frame: object) -> None:
        nonlocal stop
        stop = True

    for sig in (signal.SIGTERM, signal.SIGINT, signal.SIGHUP):
        signal.signal(sig, on_signal)
    while not stop:
        signal.pause()
    pool.close()
    return 0


def _stop_owner(pid: int | None) -> None:
    """Ask a waiting `up --wait` process to tear down itself (it can reap its sshd children)."""
    if pid is None or not any(arg.endswith("testhosts.py") for arg in _cmdline(pid)):
        return
    with contextlib.suppress(ProcessLookupError):
        os.kill(pid, signal.SIGTERM)
    deadline = time.monotonic() + 30
    while _alive(pid) and time.monotonic() < deadline:
        time.sleep(0.1)


def _cmd_down(args: argparse.Namespace) -> int:
    workdir = Path(args.workdir).resolve()
    if not (workdir / "pool.json").exists():
        print(f"testhosts: no pool.json in {workdir}", file=sys.stderr)
        return 2
    pool = HostPool.from_state(workdir)
    _stop_owner(pool.owner_pid)
    try:
        pool.close()
    except TeardownError as exc:
        print(f"testhosts: {exc}", file=sys.stderr)
        return 1
    _log(f"down: {workdir}")
    return 0


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="testhosts.py", description="Real SSH test hosts.")
    sub = parser.add_subparsers(dest="command", required=True)
    up = sub.add_parser("up", help="start N hosts; prints the inventory path, writes WORKDIR/pool.json")
    up.add_argument("n", type=int)
    up.add_argument("workdir")
    up.add_argument("--no-paramiko", action="store_true", help="skip the paramiko inventory")
    up.add_argument("--wait", action="store_true", help="stay in the foreground until signalled or `down`")
    up.set_defaults(func=_cmd_up)
    down = sub.add_parser("down", help="tear down the hosts recorded in WORKDIR/pool.json")
    down.add_argument("workdir")
    down.set_defaults(func=_cmd_down)
    args = parser.parse_args(argv)
    try:
        return int(args.func(args))
    except (RuntimeError, ValueError, OSError) as exc:
        print(f"testhosts: {exc}", file=sys.stderr)
        return 1


if __name__ == "__main__":
    sys.exit(main())

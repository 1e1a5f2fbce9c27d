"""The example host: a private, production-like AITBC host on which every module's EXAMPLES run for real.

`ExampleHost.start()` runs this file (`serve`) as PID 1 of new mount, network, UTS and PID namespaces
(`unshare`). Inside, /etc and /var get an overlay whose writable layer is a tmpfs, /run and /srv get a
fresh tmpfs, so the examples' production paths (/var/lib/aitbc, /var/backups/aitbc, /srv/aitbc, /run/aitbc,
/etc/supervisor, ...) exist only in memory that vanishes with the namespace. The network namespace has
only `lo`, and /etc/hosts maps the examples' outside names (api.example.org, db.internal) to it.

The world the examples expect, as a host that has run for a while:

- supervisord (/etc/supervisor/supervisord.conf) runs redis-server on 127.0.0.1:6379 with a password,
  the blockchain node, its RPC on :8545 and the wallet daemon (the stand-ins of demo/aitbc_demo.py);
- /run/user/1000/docker.sock, a rootless-Docker-style socket bind-mounted from a private dockerd;
- yesterday's logs with a few errors, the heartbeat's restart records, the folders of the layout.

The coordinator API is not running: the service module's first example starts it.

The test runs commands inside with `ExampleHost.run` (nsenter) and reads the host's files through
/proc/PID/root. `close()` closes PID 1's stdin, which stops it; the kernel then kills whatever is left in
the PID namespace, and the mounts go with the mount namespace. Nothing is mounted outside it.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import json
import os
import re
import select
import shutil
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from dataclasses import asdict, dataclass
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
DEMO = REPO / "demo" / "aitbc_demo.py"

HOSTNAME = "aitbc-node1"
PYTHON = "/usr/bin/python3"
CHAIN_ID = "ait-devnet"
# The production layout the examples name (the catalogue's aitbc_root/run/log/data knobs point here).
APP_ROOT = "/srv/aitbc"
RUN_DIR = "/run/aitbc"
LOG_DIR = "/var/log/aitbc"
DATA_DIR = "/var/lib/aitbc"
PORTS = {"coordinator_api": 8000, "blockchain_rpc": 8545, "wallet_daemon": 8003, "redis": 6379}
SUPERVISOR_CONFIG = "/etc/supervisor/supervisord.conf"
# Where rootless Docker puts the daemon socket of uid 1000; the examples query a container there.
DOCKER_SOCKET = "/run/user/1000/docker.sock"
WALLET_PIDFILE = f"{RUN_DIR}/wallet.pid"

READY_TIMEOUT = 30.0
STOP_GRACE = 5.0
# Only these tools are needed; each missing one is a skip reason.
TOOLS = ("unshare", "nsenter", "mount", "ip", "redis-server", "supervisord", "supervisorctl")
NAMESPACES = ("--mount", "--net", "--uts", "--pid")


# --------------------------------------------------------------------------- inside: the world


@dataclass
class HostConfig:
    """What PID 1 needs, passed as a JSON file (it runs as a separate program)."""

    stage: str  # an empty folder: the tmpfs of the overlays' writable layers is mounted here
    ready_file: str
    redis_password: str
    docker_socket: str | None = None  # the private dockerd's socket, bind-mounted to DOCKER_SOCKET


def capture(*argv: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(argv, stdin=subprocess.DEVNULL, capture_output=True, text=True, check=False)


def sh(*argv: str) -> None:
    proc = capture(*argv)
    if proc.returncode != 0:
        raise RuntimeError(f"{' '.join(argv)} (rc {proc.returncode}): {proc.stderr.strip()}")


def mount_points() -> list[str]:
    with open("/proc/self/mountinfo") as fh:
        # Field 5 is the mount point, with space, tab, newline and backslash escaped as \ooo.
        return [re.sub(r"\\([0-7]{3})", lambda m: chr(int(m.group(1), 8)), line.split()[4]) for line in fh]


def detach_foreign_mounts(keep: Path) -> None:
    """This namespace starts with a copy of every mount, and a copy pins what it mounts: other tests'
    network namespaces (/run/netns/*), nspawn overlays and dockerd filesystems (/tmp/*) would live on
    until this host stops. Detach those copies (the originals are untouched)."""
    ours = {str(keep), *map(str, keep.parents)}
    for point in sorted(mount_points(), key=len):
        if point.startswith(("/run/", "/tmp/")) and point not in ours:
            subprocess.run(["umount", "-l", point], capture_output=True, check=False)  # gone with a parent


def mount_private_filesystems(stage: Path) -> None:
    """Overlays keep /etc and /var readable as they are while every write goes to memory."""
    detach_foreign_mounts(stage)
    sh("mount", "-t", "tmpfs", "-o", "mode=0700", "aitbc-examples", str(stage))
    for top in ("/etc", "/var"):
        upper, work = stage / top.strip("/") / "upper", stage / top.strip("/") / "work"
        upper.mkdir(parents=True)
        work.mkdir()
        options = f"lowerdir={top},upperdir={upper},workdir={work}"
        sh("mount", "-t", "overlay", "-o", options, "aitbc-examples", top)
    # Fresh: no /run/systemd/system (service auto-detection must not find systemd), no host sockets.
    for top in ("/run", "/srv"):
        sh("mount", "-t", "tmpfs", "-o", "mode=0755", "aitbc-examples", top)


def write(path: str, text: str, mode: int = 0o644) -> None:
    target = Path(path)
    target.parent.mkdir(parents=True, exist_ok=True)
    target.write_text(text)
    target.chmod(mode)


def hosts_file() -> str:
    return (
        "127.0.0.1\tlocalhost\n"
        "::1\tlocalhost ip6-localhost ip6-loopback\n"
        f"127.0.1.1\t{HOSTNAME}\n"
        "# The examples' outside names answer on loopback: nothing leaves this network namespace.\n"
        "127.0.0.1\tapi.example.org db.internal\n"
    )


def redis_conf(password: str) -> str:
    return (
        f"bind 127.0.0.1\nport {PORTS['redis']}\nprotected-mode yes\nrequirepass {password}\n"
        "daemonize no\ndir /var/lib/redis\ndbfilename dump.rdb\nsave 3600 1\nappendonly no\n"
        "logfile /var/log/redis/redis-server.log\n"
    )


def demo_command(*args: str) -> str:
    return " ".join([PYTHON, f"{APP_ROOT}/demo/aitbc_demo.py", *args])


def supervisor_programs() -> dict[str, dict[str, str]]:
    chain_db = f"{DATA_DIR}/chain/chain.db"
    wallet = demo_command(
        "wallet",
        f"--port {PORTS['wallet_daemon']}",
        f"--db {DATA_DIR}/wallet/wallet_ledger.db",
        f"--keystore {DATA_DIR}/wallet/keystore",
    )
    return {
        "redis": {"command": "/usr/bin/redis-server /etc/redis/redis.conf"},
        "blockchain-node": {
            "command": demo_command("node", f"--db {chain_db}", f"--chain-id {CHAIN_ID}", "--interval 1"),
            "stdout_logfile": f"{LOG_DIR}/blockchain-node.log",
        },
        "blockchain-rpc": {
            "command": demo_command(
                "rpc", f"--port {PORTS['blockchain_rpc']}", f"--db {chain_db}", f"--chain-id {CHAIN_ID}"
            ),
            "stdout_logfile": f"{LOG_DIR}/blockchain-rpc.log",
        },
        # A wrapper that leaves a pidfile for process probes: supervisord keeps none for its programs.
        "wallet-daemon": {
            "command": f"/bin/sh -c 'echo $$ > {WALLET_PIDFILE} && exec {wallet}'",
            "stdout_logfile": f"{LOG_DIR}/wallet-daemon.log",
        },
    }


def supervisord_conf() -> str:
    lines = [
        "[unix_http_server]",
        "file=/run/supervisor.sock",
        "chmod=0700",
        "",
        "[supervisord]",
        "user=root",
        "nodaemon=true",
        "logfile=/var/log/supervisor/supervisord.log",
        "pidfile=/run/supervisord.pid",
        "childlogdir=/var/log/supervisor",
        "",
        "[rpcinterface:supervisor]",
        "supervisor.rpcinterface_factory = supervisor.rpcinterface:make_main_rpcinterface",
        "",
        "[supervisorctl]",
        "serverurl=unix:///run/supervisor.sock",
    ]
    for name, settings in supervisor_programs().items():
        lines += ["", f"[program:{name}]", f"directory={APP_ROOT}", "redirect_stderr=true"]
        lines += [f"{key}={value}" for key, value in settings.items()]
    return "\n".join(lines) + "\n"


def stamp(when: dt.datetime) -> str:
    return when.isoformat(timespec="milliseconds")


def write_history() -> None:
    """Yesterday's logs (with errors for the log review to find) and the heartbeat's restart records."""
    day = dt.datetime.now(dt.UTC) - dt.timedelta(days=1)
    at = [stamp(day + dt.timedelta(minutes=m)) for m in range(5)]
    write(
        f"{LOG_DIR}/coordinator-api.log",
        f"{at[0]} coordinator started, listening on http://127.0.0.1:{PORTS['coordinator_api']} pid=812\n"
        f"{at[1]} coordinator ERROR database is locked: POST /v1/jobs (retry 3/3)\n"
        f"{at[2]} coordinator ERROR database is locked: POST /v1/jobs (retry 3/3)\n"
        f"{at[3]} coordinator received SIGTERM, shutting down\n"
        f"{at[4]} coordinator stopped\n",
    )
    write(
        f"{LOG_DIR}/wallet-daemon.log",
        f"{at[0]} wallet started, listening on http://127.0.0.1:{PORTS['wallet_daemon']} pid=815\n"
        f"{at[1]} wallet WARNING coordinator slow to answer: 2104 ms\n",
    )
    write(
        "/var/log/relay.log",
        f"{at[0]} relay INFO connected to 127.0.0.1:{PORTS['redis']}\n"
        "panic: runtime error: invalid memory address or nil pointer dereference\n"
        f"{at[2]} relay ERROR upstream closed the stream after 0 bytes\n",
    )
    restart = {"time": (day + dt.timedelta(minutes=4)).timestamp(), "service": "coordinator-api"}
    write("/var/lib/aitbc-ops/restarts.jsonl", json.dumps(restart) + "\n")


def write_world(config: HostConfig) -> None:
    write("/etc/hosts", hosts_file())
    write("/etc/redis/redis.conf", redis_conf(config.redis_password), 0o640)
    write(SUPERVISOR_CONFIG, supervisord_conf())
    for folder in (
        RUN_DIR,
        f"{APP_ROOT}/apps",
        f"{APP_ROOT}/config",
        f"{DATA_DIR}/chain",
        f"{DATA_DIR}/coordinator",
        f"{DATA_DIR}/wallet",
        "/var/lib/redis",
        "/var/log/redis",
        "/var/log/supervisor",
    ):
        Path(folder).mkdir(parents=True, exist_ok=True)
    (Path(APP_ROOT) / "demo").mkdir()
    shutil.copy2(DEMO, f"{APP_ROOT}/demo/aitbc_demo.py")
    write_history()


def bind_docker_socket(source: str) -> None:
    target = Path(DOCKER_SOCKET)
    target.parent.mkdir(parents=True, mode=0o700)
    os.chown(target.parent, 1000, 1000)
    target.touch()
    sh("mount", "--bind", source, str(target))


def http_json(url: str) -> dict:
    # No proxies: the test environment may name one, and nothing here may leave the namespace.
    opener = urllib.request.build_opener(urllib.request.ProxyHandler({}))
    with opener.open(url, timeout=2) as reply:
        return json.loads(reply.read())


def world_ready() -> str | None:
    """What is not ready yet, or None: every program RUNNING (past startsecs) and the chain past genesis."""
    status = capture("supervisorctl", "-c", SUPERVISOR_CONFIG, "status")
    if status.returncode != 0:
        return f"supervisorctl status: {status.stdout.strip() or status.stderr.strip()}"
    if not Path(WALLET_PIDFILE).exists():
        return f"no {WALLET_PIDFILE}"
    try:
        head = http_json(f"http://127.0.0.1:{PORTS['blockchain_rpc']}/rpc/head")
    except (OSError, ValueError) as exc:
        return f"rpc: {exc}"
    return None if head.get("height", 0) > 0 else f"chain at height {head.get('height')}"


def reap() -> None:
    """PID 1 adopts the daemons the examples start (and their exited parents): collect the zombies."""
    with contextlib.suppress(ChildProcessError):
        while os.waitpid(-1, os.WNOHANG)[0] > 0:
            pass


def stop_everything() -> None:
    """SIGTERM every other process of the namespace; the kernel SIGKILLs what is left when PID 1 exits."""
    with contextlib.suppress(ProcessLookupError):
        os.kill(-1, signal.SIGTERM)
    deadline = time.monotonic() + STOP_GRACE
    while time.monotonic() < deadline:
        try:
            if os.waitpid(-1, os.WNOHANG)[0] == 0:
                time.sleep(0.05)
        except ChildProcessError:
            return


def serve(config_path: Path) -> int:
    config = HostConfig(**json.loads(config_path.read_text()))
    ready = Path(config.ready_file)
    stop = False

    def on_term(_signum: int, _frame: object) -> None:
        nonlocal stop
        stop = True

    # PID 1 of a namespace gets no signal it has no handler for; with one, SIGTERM stops it too.
    signal.signal(signal.SIGTERM, on_term)
    try:
        mount_private_filesystems(Path(config.stage))
        socket.sethostname(HOSTNAME)
        sh("ip", "link", "set", "lo", "up")
        write_world(config)
        if config.docker_socket:
            bind_docker_socket(config.docker_socket)
        subprocess.Popen(
            ["supervisord", "-c", SUPERVISOR_CONFIG],
            stdin=subprocess.DEVNULL,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        deadline, waiting = time.monotonic() + READY_TIMEOUT, world_ready()
        while waiting and time.monotonic() < deadline and not stop:
            time.sleep(0.1)
            waiting = world_ready()
        if waiting:
            raise RuntimeError(f"the world is not ready after {READY_TIMEOUT:.0f} s: {waiting}")
        ready.write_text(json.dumps({"ok": True}))
    except Exception as exc:  # reported through the ready file: the test shows it as the failure
        ready.write_text(json.dumps({"ok": False, "error": f"{type(exc).__name__}: {exc}"}))
        stop = True
    # Until the test closes our stdin (or dies, which closes it too) or sends SIGTERM.
    while not stop:
        reap()
        with contextlib.suppress(InterruptedError):
            readable, _, _ = select.select([sys.stdin], [], [], 0.2)
            stop = bool(readable) and not os.read(sys.stdin.fileno(), 1)
    stop_everything()
    return 0


# --------------------------------------------------------------------------- outside: the test's handle


def unavailable() -> str | None:
    """Why the example host cannot run here, or None."""
    if os.geteuid() != 0:
        return "the example host needs root (mount, network and PID namespaces)"
    for tool in TOOLS:
        if shutil.which(tool) is None:
            return f"the example host needs {tool!r} on PATH"
    probe = capture("unshare", *NAMESPACES, "--fork", "--mount-proc", "true")
    if probe.returncode != 0:
        return f"unshare {' '.join(NAMESPACES)} is refused here: {probe.stderr.strip()}"
    return None


def _children(pid: int) -> list[int]:
    with contextlib.suppress(OSError):
        return [int(p) for p in Path(f"/proc/{pid}/task/{pid}/children").read_text().split()]
    return []


def _namespace(pid: int) -> str | None:
    with contextlib.suppress(OSError):
        return os.readlink(f"/proc/{pid}/ns/pid")
    return None


@dataclass
class ExampleHost:
    workdir: Path
    proc: subprocess.Popen[bytes]
    pid: int = 0  # PID 1 of the namespaces, as seen from here
    pid_namespace: str = ""  # "pid:[INODE]"
    # Held open until close(): keeps the namespace's inode number from being reused by another one.
    namespace_fd: int | None = None

    @property
    def log(self) -> Path:
        return self.workdir / "host.log"

    @classmethod
    def start(cls, workdir: Path, redis_password: str, docker_socket: str | None = None) -> ExampleHost:
        """The running host, its world ready; raises RuntimeError with PID 1's reason otherwise."""
        workdir.mkdir(parents=True, exist_ok=True)
        (workdir / "stage").mkdir()
        config = HostConfig(
            str(workdir / "stage"), str(workdir / "ready.json"), redis_password, docker_socket
        )
        (workdir / "host.json").write_text(json.dumps(asdict(config)))
        argv = ["unshare", *NAMESPACES, "--mount-proc", "--propagation=private"]
        # --kill-child (implies --fork): if unshare dies, PID 1 gets SIGTERM and stops the world.
        argv += ["--kill-child=SIGTERM", sys.executable, __file__, "serve", str(workdir / "host.json")]
        with open(workdir / "host.log", "ab") as log:
            # Own session: a Ctrl-C aimed at pytest must not reach the host before close() stops it.
            proc = subprocess.Popen(
                argv, stdin=subprocess.PIPE, stdout=log, stderr=log, cwd=workdir, start_new_session=True
            )
        host = cls(workdir, proc)
        try:
            host._wait_ready(Path(config.ready_file))
        except BaseException:
            host.close()
            raise
        return host

    def _wait_ready(self, ready_file: Path) -> None:
        deadline = time.monotonic() + READY_TIMEOUT + 10
        while not ready_file.exists():
            if self.proc.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError(f"the example host did not start: {self._log_tail()}")
            time.sleep(0.05)
        state = json.loads(ready_file.read_text())
        if not state["ok"]:
            raise RuntimeError(f"the example host failed: {state['error']}; {self._log_tail()}")
        # unshare's only child, in the new PID namespace from its fork on.
        [self.pid] = _children(self.proc.pid)
        self.namespace_fd = os.open(f"/proc/{self.pid}/ns/pid", os.O_RDONLY)
        self.pid_namespace = os.readlink(f"/proc/{self.pid}/ns/pid")

    def _log_tail(self) -> str:
        with contextlib.suppress(OSError):
            return " | ".join(self.log.read_text(errors="replace").strip().splitlines()[-5:])
        return "(no log)"

    def path(self, inside: str) -> Path:
        """A path of the host's filesystem, readable from here (through PID 1's root)."""
        return Path(f"/proc/{self.pid}/root{inside}")

    def run(
        self, argv: list[str], env: dict[str, str], cwd: Path, timeout: float = 300
    ) -> subprocess.CompletedProcess[str]:
        """Run a command inside the host: its mounts, network, hostname and PID namespace."""
        enter = ["nsenter", f"--target={self.pid}", *NAMESPACES, f"--wd={cwd}", "--"]
        return subprocess.run(
            [*enter, *argv],
            env=env,
            stdin=subprocess.DEVNULL,
            capture_output=True,
            text=True,
            timeout=timeout,
            check=False,
        )

    def processes(self) -> list[int]:
        """PIDs (as seen from here) of every process still in the host's PID namespace."""
        if not self.pid_namespace:
            return []
        pids = [int(p) for p in os.listdir("/proc") if p.isdigit()]
        return [pid for pid in pids if _namespace(pid) == self.pid_namespace]

    def close(self) -> None:
        """Stop PID 1 (which stops the world), make sure the namespace is empty; raise if it is not."""
        if self.proc.stdin is not None:
            with contextlib.suppress(OSError):
                self.proc.stdin.close()  # PID 1 sees EOF and stops
        try:
            self.proc.wait(timeout=STOP_GRACE + 10)
        except subprocess.TimeoutExpired:
            # Killing PID 1 empties the PID namespace; unshare then returns.
            for pid in [self.pid] if self.pid else _children(self.proc.pid):
                with contextlib.suppress(ProcessLookupError):
                    os.kill(pid, signal.SIGKILL)
            self.proc.wait(timeout=10)
        deadline = time.monotonic() + 5
        while (left := self.processes()) and time.monotonic() < deadline:
            time.sleep(0.05)
        if self.namespace_fd is not None:
            os.close(self.namespace_fd)
            self.namespace_fd = None
        if left:
            raise RuntimeError(f"example host teardown left processes {left} in {self.pid_namespace}")


if __name__ == "__main__":
    if len(sys.argv) != 3 or sys.argv[1] != "serve":
        sys.exit(f"usage: {sys.argv[0]} serve CONFIG.json  (PID 1 of the example host; see ExampleHost)")
    sys.exit(serve(Path(sys.argv[2])))

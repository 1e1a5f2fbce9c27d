# -*- coding: utf-8 -*-
# Copyright: (c) 2025, aitbc-ops developers
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Service control backends for the ``aitbc.ops.service`` module.

Stdlib only: this file is shipped to and runs on managed hosts (Python 3.11).

One registry, ``BACKENDS`` (name -> class). Every backend subclasses :class:`ServiceBackend`, and
implements ``status()``, ``start()``, ``stop()``, ``restart()``, ``reload()``, ``logs(n)`` and the
``detect(spec)`` classmethod that ``backend=auto`` uses. Registration order is the auto-detection order.

Entry point for the module: :func:`manage_service` (params dict in, result dict out, raises
:class:`ServiceError` with a one-line message on any failure).
"""

from __future__ import annotations

import contextlib
import datetime
import fcntl
import http.client
import json
import os
import re
import shlex
import shutil
import signal
import socket
import subprocess
import tempfile
import time
import urllib.parse
from dataclasses import dataclass, field

# The probes engine (module_utils/probes.py) is optional: without it, wait_healthy falls back to
# builtin_run_probes. Its API: build_probes(list[dict]) -> probe objects (raises ValueError on bad
# definitions), run_probes(probes) -> list of {name, ok, detail, ...}.
from ansible_collections.aitbc.ops.plugins.module_utils.procfs import (
    CLK_TCK,
    boot_time,
    read_cmdline,
    read_stat,
)

try:
    from ansible_collections.aitbc.ops.plugins.module_utils.probes import run_probes as _run_probes
except ImportError:
    _run_probes = None
try:
    from ansible_collections.aitbc.ops.plugins.module_utils.probes import build_probes as _build_probes
except ImportError:
    _build_probes = None

STATES = ("started", "stopped", "restarted", "reloaded", "status")
NO_LOG_PLACEHOLDER = "VALUE_SPECIFIED_IN_NO_LOG_PARAMETER"

# Characters that make a command line need /bin/sh (pipes, redirects, expansions, globs, lists).
_SHELL_CHARS = frozenset("|&;<>()$`*?[]{}~!#\n")
# Executables whose argv[0] alone says nothing about the program (python3 -c ..., bash script.sh, ...).
_INTERPRETER_RE = re.compile(
    r"^(python|pypy|perl|ruby|node|nodejs|java|php|bash|sh|dash|zsh|ksh|env|lua|tclsh|deno|bun|uv|uvx)"
    r"[0-9.]*$"
)
# Words that /bin/sh runs itself (not found on PATH).
_SHELL_BUILTIN_WORDS = (
    "! . : [ { ( alias bg break case cd command continue echo eval exec exit export false fg for getopts "
    "hash if kill printf pwd read readonly return set shift test times trap true type ulimit umask unalias "
    "unset until wait while"
)
_SHELL_BUILTINS = frozenset(_SHELL_BUILTIN_WORDS.split())
# How dash reports a missing program: "/bin/sh: 1: foo: not found".
_SH_NOT_FOUND = re.compile(r"^(?:/bin/)?sh: \d+: (.+): not found$")
_CMD_TIMEOUT = 120


class ServiceError(Exception):
    """A failure with a one-line message; ``details`` are extra result keys (log tail, probes...)."""

    def __init__(self, msg: str, **details):
        super().__init__(msg)
        self.msg = msg
        self.details = details


@dataclass
class ServiceSpec:
    """Everything the backends need to know about one service (the module's options)."""

    name: str
    command: str | None = None
    pidfile: str | None = None
    log_file: str | None = None
    chdir: str | None = None
    env: dict = field(default_factory=dict)
    env_file: str | None = None
    stop_timeout: float = 10.0
    start_timeout: float = 1.0
    unit: str | None = None
    container: str | None = None
    program: str | None = None
    supervisor_config: str | None = None
    docker_host: str | None = None

    @classmethod
    def from_params(cls, params: dict) -> ServiceSpec:
        known = cls.__dataclass_fields__
        values = {k: v for k, v in params.items() if k in known and v is not None}
        spec = cls(**values)
        if not spec.name or not str(spec.name).strip():
            raise ServiceError("name must be a non-empty service name")
        if "/" in spec.name or "\0" in spec.name:
            raise ServiceError(f"name must not contain '/': {spec.name!r}")
        spec.env = {str(k): "" if v is None else str(v) for k, v in (spec.env or {}).items()}
        return spec


# --------------------------------------------------------------------------------------------------
# small helpers
# --------------------------------------------------------------------------------------------------


def run_cmd(argv: list[str], timeout: float = _CMD_TIMEOUT) -> tuple[int, str, str]:
    """Run a control command (systemctl, supervisorctl, docker, service) with a C locale."""
    env = dict(os.environ, LC_ALL="C", LANG="C")
    try:
        proc = subprocess.run(
            argv,
            stdin=subprocess.DEVNULL,
            capture_output=True,
            text=True,
            errors="replace",
            timeout=timeout,
            env=env,
            check=False,
        )
    except FileNotFoundError as exc:
        raise ServiceError(f"command not found: {argv[0]}") from exc
    except subprocess.TimeoutExpired as exc:
        raise ServiceError(f"timed out after {timeout:g}s: {shlex.join(argv)}") from exc
    return proc.returncode, proc.stdout, proc.stderr


def _first_line(*texts: str) -> str:
    for text in texts:
        for line in (text or "").splitlines():
            if line.strip():
                return line.strip()
    return ""


def _one_line(lines: list[str], limit: int = 400) -> str:
    text = " | ".join(line.strip() for line in lines if line.strip())
    return text if len(text) <= limit else "..." + text[-limit:]


def tail_file(path: str | None, n: int = 20, start: int = 0) -> list[str]:
    """Last ``n`` lines of a text file (only bytes after offset ``start``); [] if missing."""
    if not path or n <= 0:
        return []
    try:
        with open(path, "rb") as fh:
            end = fh.seek(0, os.SEEK_END)
            pos, data = end, b""
            while pos > start and data.count(b"\n") <= n:
                step = min(65536, pos - start)
                pos -= step
                fh.seek(pos)
                data = fh.read(step) + data
    except OSError:
        return []
    return data.decode("utf-8", "replace").splitlines()[-n:]


def _tail_text(text: str, n: int) -> list[str]:
    return (text or "").splitlines()[-n:] if n > 0 else []


# --------------------------------------------------------------------------------------------------
# /proc helpers (Linux)
# --------------------------------------------------------------------------------------------------


def proc_stat(pid: int) -> dict | None:
    """Selected fields of /proc/PID/stat, or None if there is no such process."""
    return read_stat(pid)


def pid_alive(pid: int) -> bool:
    """True if the process exists and is neither a zombie nor dead."""
    st = proc_stat(pid)
    return st is not None and st["state"] not in ("Z", "X", "x")


def proc_cmdline(pid: int) -> list[str]:
    return read_cmdline(pid)


def _boot_time() -> float:
    try:
        return boot_time()
    except (OSError, ValueError) as exc:
        raise ServiceError(f"cannot read btime from /proc/stat: {exc}") from None


def _uptime_since_boot() -> float:
    with open("/proc/uptime") as fh:
        return float(fh.read().split()[0])


def proc_uptime(pid: int) -> float | None:
    """Seconds the process has been running (from /proc/PID/stat starttime and the boot clock)."""
    st = proc_stat(pid)
    if st is None:
        return None
    started_after_boot = st["starttime"] / CLK_TCK
    try:
        return round(max(0.0, _uptime_since_boot() - started_after_boot), 1)
    except OSError:
        return round(max(0.0, time.time() - (_boot_time() + started_after_boot)), 1)


# A daemon's pidfile is written right after it is spawned; /proc start times are only as exact as the
# boot time (whole seconds).
SPAWN_SLACK_S = 2.0
OLDER_COMMAND = "running an older command: restart to apply the new one"


def proc_start_epoch(pid: int) -> float | None:
    st = proc_stat(pid)
    return None if st is None else _boot_time() + st["starttime"] / CLK_TCK


def group_alive(pgid: int) -> bool:
    """True while any live (non-zombie) process is in process group ``pgid``."""
    try:
        entries = os.listdir("/proc")
    except OSError:
        return False
    for entry in entries:
        if entry.isdigit():
            st = proc_stat(int(entry))
            if st and st["pgrp"] == pgid and st["state"] not in ("Z", "X", "x"):
                return True
    return False


def _family(path: str) -> str:
    base = os.path.basename(path)
    return re.sub(r"[0-9.]+$", "", base)


def cmdline_matches(expected: list[str], actual: list[str], comm: str = "") -> bool:
    """Does a running process (argv ``actual``, /proc comm ``comm``) plausibly run ``expected``?

    Used to tell a live daemon from an unrelated process that reused a stale pidfile's pid.
    Interpreters (python3, bash, node, ...) must also agree on the first two arguments (script,
    ``-c CODE``, ``-m module``); other executables match on their name, which survives programs that
    rewrite their argv (redis-server shows ``redis-server 127.0.0.1:6379``).
    """
    if not expected or not actual:
        return False
    if actual == expected:
        return True
    exp0 = os.path.basename(expected[0])
    act0 = actual[0]
    act_names = {os.path.basename(act0), os.path.basename(act0.split(" ")[0]), comm}
    act_names.add(os.path.basename(act0.split(":")[0]))
    if _INTERPRETER_RE.match(exp0):
        if _family(exp0) not in {_family(n) for n in act_names if n}:
            return False
        want = expected[1:3]
        return actual[1 : 1 + len(want)] == want
    return exp0 in act_names or (len(exp0) > 15 and exp0[:15] == comm)


def needs_shell(command: str) -> bool:
    """True if the command line uses shell syntax outside quotes (operators, expansions, globs)."""
    quote = None
    escaped = False
    for ch in command:
        if escaped:
            escaped = False
        elif quote == "'":
            quote = None if ch == "'" else quote
        elif ch == "\\":
            escaped = True
        elif quote == '"':
            if ch == '"':
                quote = None
            elif ch in "$`":
                return True
        elif ch in "'\"":
            quote = ch
        elif ch in _SHELL_CHARS:
            return True
    if quote or escaped:
        return True  # unbalanced quoting: let the shell report it
    words = shlex.split(command)
    return bool(words) and re.match(r"^[A-Za-z_][A-Za-z0-9_]*=", words[0]) is not None


def _shell_words(command: str) -> list[str]:
    """Best-effort argv of the first simple command of a shell line (for pid/cmdline matching)."""
    try:
        lex = shlex.shlex(command, posix=True, punctuation_chars=True)
        lex.whitespace_split = True
        words = []
        for word in lex:
            if word and set(word) <= set("|&;<>()"):
                break
            words.append(word)
    except ValueError:
        return []
    while words and (words[0] == "exec" or re.match(r"^[A-Za-z_][A-Za-z0-9_]*=", words[0])):
        words.pop(0)
    return words


# --------------------------------------------------------------------------------------------------
# registry
# --------------------------------------------------------------------------------------------------

BACKENDS: dict[str, type[ServiceBackend]] = {}


def register_backend(cls):
    """Class decorator: add a backend to the registry (registration order = auto-detection order)."""
    BACKENDS[cls.name] = cls
    return cls


class ServiceBackend:
    """Base class. Subclasses set ``name`` and implement the methods below.

    ``status()`` returns ``{"active": bool, "pid": int|None, "uptime_s": float|None, "detail": str}``.
    ``start()``/``stop()``/``restart()``/``reload()`` act unconditionally (idempotence is decided by
    :func:`manage_service` from ``status()``) and may return a short note for the result message.
    Failures raise :class:`ServiceError`.
    """

    name = "base"

    def __init__(self, spec: ServiceSpec):
        self.spec = spec

    @classmethod
    def detect(cls, spec: ServiceSpec) -> bool:
        """For backend=auto: does this backend manage the service ``spec.name`` on this host?"""
        return False

    def status(self) -> dict:
        raise NotImplementedError

    def start(self) -> str | None:
        raise NotImplementedError

    def stop(self) -> str | None:
        raise NotImplementedError

    def restart(self) -> str | None:
        self.stop()
        return self.start()

    def reload(self) -> str | None:
        raise ServiceError(f"backend {self.name} cannot reload {self.spec.name}")

    def logs(self, n: int = 20) -> list[str]:
        return []

    def check_startable(self) -> None:
        """Validate what start() needs without changing anything (used by check mode)."""

    @staticmethod
    def _status(active: bool, pid: int | None = None, uptime_s: float | None = None, detail: str = ""):
        return {"active": bool(active), "pid": pid, "uptime_s": uptime_s, "detail": detail}


# --------------------------------------------------------------------------------------------------
# process: a daemonized command with a pidfile
# --------------------------------------------------------------------------------------------------

# Popen objects of daemons started by this Python process, so they are reaped (no zombie, no
# ResourceWarning) when a long-lived caller (tests, opsrunner) stops them again.
_CHILDREN: dict[int, subprocess.Popen] = {}


def _reap(pid: int) -> None:
    proc = _CHILDREN.pop(pid, None)
    if proc is not None:
        with contextlib.suppress(subprocess.TimeoutExpired):
            proc.wait(timeout=2)


def _reset_signals() -> None:  # runs in the child between fork and exec
    for sig in (
        signal.SIGTERM,
        signal.SIGINT,
        signal.SIGHUP,
        signal.SIGQUIT,
        signal.SIGUSR1,
        signal.SIGUSR2,
        signal.SIGCHLD,
    ):
        signal.signal(sig, signal.SIG_DFL)
    signal.pthread_sigmask(signal.SIG_SETMASK, [])


def read_env_file(path: str) -> dict[str, str]:
    """Parse KEY=VALUE lines (blank lines, ``#`` comments and a leading ``export`` are allowed)."""
    try:
        with open(path, encoding="utf-8") as fh:
            lines = fh.read().splitlines()
    except FileNotFoundError as exc:
        raise ServiceError(f"env_file not found: {path}") from exc
    except OSError as exc:
        raise ServiceError(f"cannot read env_file {path}: {exc.strerror}") from exc
    env = {}
    for lineno, line in enumerate(lines, 1):
        line = line.strip()
        if not line or line.startswith("#"):
            continue
        if line.startswith("export "):
            line = line[7:].lstrip()
        key, sep, value = line.partition("=")
        key = key.strip()
        if not sep or not re.match(r"^[A-Za-z_][A-Za-z0-9_]*$", key):
            raise ServiceError(f"env_file {path} line {lineno}: expected KEY=VALUE")
        value = value.strip()
        if len(value) >= 2 and value[0] == value[-1] and value[0] in "'\"":
            value = value[1:-1]
        env[key] = value
    return env


class ControlCommandBackend(ServiceBackend):
    """Backends driven by one control command per action (systemctl, supervisorctl, service)."""

    def _ctl(self, action: str) -> None:
        raise NotImplementedError

    def start(self):
        self._ctl("start")

    def stop(self):
        self._ctl("stop")

    def restart(self):
        self._ctl("restart")

    def reload(self):
        self._ctl("reload")


@register_backend
class ProcessBackend(ServiceBackend):
    """A foreground command run as a daemon: own session, output appended to a log file, a pidfile."""

    name = "process"

    def __init__(self, spec: ServiceSpec):
        super().__init__(spec)
        if not spec.pidfile:
            spec.pidfile = os.path.join(self.default_run_dir(), f"{spec.name}.pid")
        if not spec.log_file:
            spec.log_file = os.path.join(os.path.dirname(spec.pidfile), f"{spec.name}.log")
        self.pidfile = spec.pidfile
        self.log_file = spec.log_file
        self.cwd = spec.chdir or "/"

    @staticmethod
    def default_run_dir() -> str:
        if os.geteuid() == 0:
            return "/run/aitbc-ops"
        base = os.environ.get("XDG_RUNTIME_DIR") or tempfile.gettempdir()
        return os.path.join(base, f"aitbc-ops-{os.geteuid()}")

    @classmethod
    def detect(cls, spec: ServiceSpec) -> bool:
        return bool(spec.command or spec.pidfile)

    # ---- command line -----------------------------------------------------------------------

    def argv(self) -> list[str]:
        """The argv that start() executes (``/bin/sh -c`` only when the command needs a shell)."""
        command = (self.spec.command or "").strip()
        if not command:
            raise ServiceError(f"the process backend needs a command to start {self.spec.name}")
        if needs_shell(command):
            return ["/bin/sh", "-c", command]
        return shlex.split(command)

    def expected_argv(self) -> list[str] | None:
        return self.argv() if (self.spec.command or "").strip() else None

    def environment(self) -> dict[str, str]:
        # The env_file (the applied configuration) overrides env, as systemd's EnvironmentFile= overrides
        # Environment= in the units of the same catalogue.
        env = {**os.environ, **self.spec.env}
        if self.spec.env_file:
            env.update(read_env_file(self.spec.env_file))
        return env

    def resolve_executable(self, argv: list[str], env: dict[str, str]) -> str:
        if argv[:2] == ["/bin/sh", "-c"]:
            # Catch the usual typo before starting: the first program of the shell line is missing.
            words = _shell_words(argv[2])
            if words and words[0] not in _SHELL_BUILTINS and not words[0].startswith("$"):
                self.resolve_executable(words[:1], env)
        exe = argv[0]
        if "/" in exe:
            path = exe if os.path.isabs(exe) else os.path.join(self.cwd, exe)
            if os.path.isfile(path) and os.access(path, os.X_OK):
                return path
            raise ServiceError(f"command not found: {exe}")
        found = shutil.which(exe, path=env.get("PATH", os.defpath))
        if not found:
            raise ServiceError(f"command not found: {exe}")
        return found

    def check_startable(self) -> None:
        argv = self.argv()
        # In check mode an env_file may be one an earlier task of the same run would have written.
        missing_env_file = bool(self.spec.env_file) and not os.path.exists(self.spec.env_file)
        env = dict(os.environ, **self.spec.env) if missing_env_file else self.environment()
        if not os.path.isdir(self.cwd):
            raise ServiceError(f"chdir not found: {self.cwd}")
        self.resolve_executable(argv, env)

    # ---- pidfile ----------------------------------------------------------------------------

    def read_pid(self) -> int | None:
        try:
            with open(self.pidfile) as fh:
                text = fh.read().strip().split()
        except FileNotFoundError:
            return None
        except OSError as exc:
            raise ServiceError(f"cannot read pidfile {self.pidfile}: {exc.strerror}") from exc
        if not text or not text[0].isdigit() or int(text[0]) <= 0:
            return None
        return int(text[0])

    def write_pid(self, pid: int) -> None:
        directory = os.path.dirname(os.path.abspath(self.pidfile))
        os.makedirs(directory, exist_ok=True)
        fd, tmp = tempfile.mkstemp(prefix=f".{os.path.basename(self.pidfile)}.", dir=directory)
        try:
            with os.fdopen(fd, "w") as fh:
                fh.write(f"{pid}\n")
                fh.flush()
                os.fsync(fh.fileno())
            os.chmod(tmp, 0o644)
            os.replace(tmp, self.pidfile)
        except BaseException:
            with contextlib.suppress(OSError):
                os.unlink(tmp)
            raise

    def remove_pidfile(self) -> None:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(self.pidfile)

    @contextlib.contextmanager
    def lock(self):
        """Serialize start/stop of this service between concurrent runs (flock on PIDFILE.lock)."""
        directory = os.path.dirname(os.path.abspath(self.pidfile))
        os.makedirs(directory, exist_ok=True)
        fd = os.open(self.pidfile + ".lock", os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o644)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX)
            yield
        finally:
            os.close(fd)

    def running_pid(self) -> tuple[int | None, str]:
        """(pid, '') if the pidfile names our live daemon, else (None, reason it does not)."""
        pid = self.read_pid()
        if pid is None:
            if os.path.exists(self.pidfile):
                return None, "stale pidfile (empty or not a pid)"
            return None, "no pidfile"
        if not pid_alive(pid):
            return None, f"stale pidfile (pid {pid} is not running)"
        expected = self.expected_argv()
        if expected is not None:
            st = proc_stat(pid) or {}
            actual = proc_cmdline(pid)
            ok = cmdline_matches(expected, actual, st.get("comm", ""))
            if not ok and expected[:2] == ["/bin/sh", "-c"]:
                ok = cmdline_matches(_shell_words(expected[2]), actual, st.get("comm", ""))
            if not ok:
                if self.spawned_for_pidfile(pid):
                    return pid, OLDER_COMMAND
                return None, f"stale pidfile (pid {pid} now runs another program)"
        else:
            # No command to compare: a process that started well after the pidfile was written
            # cannot be the one it was written for (60 s of slack for coarse clocks).
            with contextlib.suppress(OSError, ServiceError, TypeError):
                if proc_start_epoch(pid) > os.stat(self.pidfile).st_mtime + 60:
                    return None, f"stale pidfile (pid {pid} started after the pidfile was written)"
        return pid, ""

    def spawned_for_pidfile(self, pid: int) -> bool:
        """Did ``pid`` start when the pidfile was written? Then it is the daemon start() spawned, even
        if the catalogue's command has changed since; a reused pid starts later than that."""
        with contextlib.suppress(OSError, ServiceError, TypeError):
            return abs(proc_start_epoch(pid) - os.stat(self.pidfile).st_mtime) <= SPAWN_SLACK_S
        return False

    # ---- actions ----------------------------------------------------------------------------

    def status(self) -> dict:
        pid, why = self.running_pid()
        if pid is None:
            return self._status(False, detail=why)
        return self._status(True, pid, proc_uptime(pid), why or "running")

    def start(self) -> str | None:
        with self.lock():
            pid, why = self.running_pid()
            if pid is not None:
                return f"already running; {why}" if why else "already running"
            note = "replaced " + why if why.startswith("stale") else None
            self._spawn()
            return note

    def _spawn(self) -> int:
        spec = self.spec
        argv = self.argv()
        env = self.environment()
        if not os.path.isdir(self.cwd):
            raise ServiceError(f"chdir not found: {self.cwd}")
        executable = self.resolve_executable(argv, env)
        os.makedirs(os.path.dirname(os.path.abspath(self.log_file)), exist_ok=True)
        try:
            log = open(self.log_file, "ab")  # noqa: SIM115 - handed to the child, closed below
        except OSError as exc:
            raise ServiceError(f"cannot open log_file {self.log_file}: {exc.strerror}") from exc
        offset = log.seek(0, os.SEEK_END)
        try:
            proc = subprocess.Popen(
                argv,
                executable=executable,
                cwd=self.cwd,
                env=env,
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=subprocess.STDOUT,
                close_fds=True,
                start_new_session=True,
                preexec_fn=_reset_signals,
            )
        except OSError as exc:
            raise ServiceError(f"cannot start {spec.name}: {exc.strerror or exc}") from exc
        finally:
            log.close()
        _CHILDREN[proc.pid] = proc
        self.write_pid(proc.pid)

        deadline = time.monotonic() + max(0.0, float(spec.start_timeout))
        while True:
            code = proc.poll()
            if code is not None or time.monotonic() >= deadline:
                break
            time.sleep(0.05)
        if code is None:
            return proc.pid

        _CHILDREN.pop(proc.pid, None)
        self.remove_pidfile()
        lines = tail_file(self.log_file, 20, start=offset)
        if argv[:2] == ["/bin/sh", "-c"]:
            missing = [m.group(1) for m in map(_SH_NOT_FOUND.match, lines) if m]
            if missing:
                raise ServiceError(f"command not found: {missing[-1]}", log_tail=lines)
        how = f"exit code {code}" if code >= 0 else f"signal {-code}"
        shown = _one_line(lines[-5:]) or "(no output)"
        raise ServiceError(
            f"{spec.name} exited within {float(spec.start_timeout):g}s of starting ({how}); "
            f"last lines of {self.log_file}: {shown}",
            log_tail=lines,
        )

    def cleanup_stale(self) -> str | None:
        """Remove a stale pidfile; returns a note if one was removed."""
        with self.lock():
            pid, why = self.running_pid()
            if pid is None and why.startswith("stale"):
                self.remove_pidfile()
                return "removed " + why
        return None

    def stop(self) -> str | None:
        with self.lock():
            pid, why = self.running_pid()
            if pid is None:
                if why.startswith("stale"):
                    self.remove_pidfile()
                    return "removed " + why
                return None
            used = self._terminate(pid)
            self.remove_pidfile()
            _reap(pid)
            return None if used == "TERM" else f"SIGKILL after {float(self.spec.stop_timeout):g}s"

    def _terminate(self, pid: int) -> str:
        st = proc_stat(pid) or {}
        # Signal the whole process group only when the daemon leads its own group (as start()
        # makes it) and that group is not ours.
        group = st.get("pgrp") == pid and pid != os.getpgrp()

        def send(sig):
            with contextlib.suppress(ProcessLookupError):
                if group:
                    os.killpg(pid, sig)
                else:
                    os.kill(pid, sig)

        def alive():
            return group_alive(pid) if group else pid_alive(pid)

        def wait(seconds):
            deadline = time.monotonic() + seconds
            while alive():
                if time.monotonic() >= deadline:
                    return False
                time.sleep(0.05)
            return True

        try:
            send(signal.SIGTERM)
        except PermissionError as exc:
            raise ServiceError(f"not permitted to stop {self.spec.name} (pid {pid})") from exc
        if wait(float(self.spec.stop_timeout)):
            return "TERM"
        send(signal.SIGKILL)
        if not wait(10):
            raise ServiceError(f"{self.spec.name} (pid {pid}) survived SIGKILL")
        return "KILL"

    def restart(self) -> str | None:
        with self.lock():
            pid, _why = self.running_pid()
            note = None
            if pid is not None:
                if self._terminate(pid) == "KILL":
                    note = f"SIGKILL after {float(self.spec.stop_timeout):g}s"
                _reap(pid)
            self.remove_pidfile()
            self._spawn()
            return note

    def reload(self) -> str | None:
        pid, _why = self.running_pid()
        if pid is None:
            raise ServiceError(f"{self.spec.name} is not running")
        os.kill(pid, signal.SIGHUP)
        return "sent SIGHUP"

    def logs(self, n: int = 20) -> list[str]:
        return tail_file(self.log_file, n)


# --------------------------------------------------------------------------------------------------
# systemd
# --------------------------------------------------------------------------------------------------


def parse_systemctl_show(text: str) -> dict[str, str]:
    props = {}
    for line in (text or "").splitlines():
        key, sep, value = line.partition("=")
        if sep:
            props[key.strip()] = value.strip()
    return props


@register_backend
class SystemdBackend(ControlCommandBackend):
    name = "systemd"
    PROPS = "LoadState,ActiveState,SubState,MainPID,ActiveEnterTimestampMonotonic,Result"

    def __init__(self, spec: ServiceSpec):
        super().__init__(spec)
        self.unit = spec.unit or (spec.name if "." in spec.name else spec.name + ".service")

    @classmethod
    def detect(cls, spec: ServiceSpec) -> bool:
        if not os.path.isdir("/run/systemd/system") or not shutil.which("systemctl"):
            return False
        props = cls(spec).show()
        return props.get("LoadState") not in (None, "", "not-found")

    def show(self) -> dict[str, str]:
        rc, out, err = run_cmd(["systemctl", "show", self.unit, "-p", self.PROPS])
        if rc != 0:
            raise ServiceError(f"systemctl show {self.unit} failed: {_first_line(err, out)}")
        return parse_systemctl_show(out)

    @staticmethod
    def status_from_props(props: dict[str, str], monotonic_now: float | None = None) -> dict:
        active_state = props.get("ActiveState", "")
        active = active_state in ("active", "reloading")
        pid = int(props.get("MainPID") or 0) or None
        uptime = None
        entered = int(props.get("ActiveEnterTimestampMonotonic") or 0)
        if active and entered:
            now = time.monotonic() if monotonic_now is None else monotonic_now
            uptime = round(max(0.0, now - entered / 1e6), 1)
        detail = f"{active_state}/{props.get('SubState', '')}".strip("/")
        return ServiceBackend._status(active, pid if active else None, uptime, detail)

    def status(self) -> dict:
        props = self.show()
        if props.get("LoadState") == "not-found":
            raise ServiceError(f"systemd unit not found: {self.unit}")
        return self.status_from_props(props)

    def _ctl(self, action: str) -> None:
        rc, out, err = run_cmd(["systemctl", action, self.unit])
        if rc != 0:
            lines = self.logs(10)
            raise ServiceError(
                f"systemctl {action} {self.unit} failed: {_first_line(err, out)}", log_tail=lines
            )

    def logs(self, n: int = 20) -> list[str]:
        with contextlib.suppress(ServiceError):
            rc, out, _err = run_cmd(["journalctl", "-u", self.unit, "-n", str(int(n)), "--no-pager"])
            if rc == 0:
                return _tail_text(out, n)
        return []


# --------------------------------------------------------------------------------------------------
# supervisor
# --------------------------------------------------------------------------------------------------

_SUPERVISOR_UPTIME = re.compile(r"uptime (?:(\d+) days?, )?(\d+):(\d\d):(\d\d)")


def parse_supervisor_status(text: str, program: str) -> dict | None:
    """Parse ``supervisorctl status PROGRAM`` output; None if it has no line for the program.

    Lines look like ``prog   RUNNING   pid 123, uptime 1 day, 0:00:05``, ``prog   STOPPED   Not started``,
    ``prog   FATAL     Exited too quickly (process log may have details)``, ``prog   EXITED    <date>``.
    """
    for line in (text or "").splitlines():
        parts = line.split(None, 2)
        if len(parts) < 2 or parts[0] != program or parts[1] == "ERROR":
            continue
        state, desc = parts[1], (parts[2] if len(parts) > 2 else "")
        pid = uptime = None
        if state == "RUNNING":
            m = re.search(r"pid (\d+)", desc)
            pid = int(m.group(1)) if m else None
            m = _SUPERVISOR_UPTIME.search(desc)
            if m:
                days, hours, minutes, seconds = (int(g or 0) for g in m.groups())
                uptime = float(days * 86400 + hours * 3600 + minutes * 60 + seconds)
        return ServiceBackend._status(state == "RUNNING", pid, uptime, f"{state} {desc}".strip())
    return None


def _supervisor_unknown(text: str, program: str) -> bool:
    return any(line.startswith(f"{program}: ERROR (no such") for line in (text or "").splitlines())


@register_backend
class SupervisorBackend(ControlCommandBackend):
    name = "supervisor"

    def __init__(self, spec: ServiceSpec):
        super().__init__(spec)
        self.program = spec.program or spec.name

    def ctl(self, *args: str) -> tuple[int, str, str]:
        argv = ["supervisorctl"]
        if self.spec.supervisor_config:
            argv += ["-c", self.spec.supervisor_config]
        return run_cmd(argv + list(args))

    @classmethod
    def detect(cls, spec: ServiceSpec) -> bool:
        if not shutil.which("supervisorctl"):
            return False
        with contextlib.suppress(ServiceError):
            backend = cls(spec)
            _rc, out, _err = backend.ctl("status", backend.program)
            return parse_supervisor_status(out, backend.program) is not None
        return False

    def status(self) -> dict:
        rc, out, err = self.ctl("status", self.program)
        parsed = parse_supervisor_status(out, self.program)
        if parsed is None:
            if _supervisor_unknown(out, self.program):
                raise ServiceError(f"supervisor program not found: {self.program}")
            raise ServiceError(
                f"supervisorctl status {self.program} failed (rc {rc}): {_first_line(out, err)}"
            )
        return parsed

    def _ctl(self, action: str, *extra: str) -> None:
        rc, out, err = self.ctl(action, *extra, self.program)
        text = _first_line(out, err)
        if rc != 0 or "ERROR" in out:
            if "already started" in out or ("not running" in out and action == "stop"):
                return
            raise ServiceError(
                f"supervisorctl {action} {self.program} failed: {text}", log_tail=self.logs(10)
            )

    def reload(self):
        self._ctl("signal", "HUP")
        return "sent SIGHUP"

    def logs(self, n: int = 20) -> list[str]:
        lines: list[str] = []
        for channel in ("stdout", "stderr"):
            with contextlib.suppress(ServiceError):
                rc, out, _err = self.ctl("tail", "-65536", self.program, channel)
                if rc == 0 and "ERROR (" not in _first_line(out):
                    lines = _tail_text(out, n)
            if lines:
                break
        return lines


# --------------------------------------------------------------------------------------------------
# docker
# --------------------------------------------------------------------------------------------------


def parse_docker_time(value: str) -> float | None:
    """RFC 3339 with nanoseconds (``2025-01-02T03:04:05.123456789Z``) -> epoch seconds."""
    m = re.match(r"^(\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d)(?:\.(\d+))?(Z|[+-]\d\d:\d\d)$", value or "")
    if not m or m.group(1).startswith("0001-"):
        return None
    tz = "+00:00" if m.group(3) == "Z" else m.group(3)
    frac = (m.group(2) or "0")[:6].ljust(6, "0")
    return datetime.datetime.fromisoformat(f"{m.group(1)}.{frac}{tz}").timestamp()


def docker_status_from_state(state: dict, now: float | None = None) -> dict:
    running = bool(state.get("Running"))
    pid = int(state.get("Pid") or 0) or None
    uptime = None
    started = parse_docker_time(state.get("StartedAt", ""))
    if running and started is not None:
        uptime = round(max(0.0, (time.time() if now is None else now) - started), 1)
    return ServiceBackend._status(running, pid if running else None, uptime, state.get("Status", ""))


@register_backend
class DockerBackend(ServiceBackend):
    name = "docker"

    def __init__(self, spec: ServiceSpec):
        super().__init__(spec)
        self.container = spec.container or spec.name

    def docker(self, *args: str, timeout: float = _CMD_TIMEOUT) -> tuple[int, str, str]:
        argv = ["docker"]
        if self.spec.docker_host:
            argv += ["-H", self.spec.docker_host]
        return run_cmd(argv + list(args), timeout=timeout)

    @classmethod
    def detect(cls, spec: ServiceSpec) -> bool:
        if not shutil.which("docker"):
            return False
        with contextlib.suppress(ServiceError):
            backend = cls(spec)
            rc, _out, _err = backend.docker("inspect", "--type", "container", backend.container, timeout=20)
            return rc == 0
        return False

    def status(self) -> dict:
        rc, out, err = self.docker(
            "inspect", "--type", "container", "--format", "{{json .State}}", self.container
        )
        if rc != 0:
            if "no such" in (err + out).lower():
                raise ServiceError(f"docker container not found: {self.container}")
            raise ServiceError(f"docker inspect {self.container} failed: {_first_line(err, out)}")
        try:
            state = json.loads(out)
        except ValueError as exc:
            raise ServiceError(f"docker inspect {self.container}: unexpected output") from exc
        return docker_status_from_state(state)

    def _act(self, *args: str, timeout: float = _CMD_TIMEOUT) -> None:
        rc, out, err = self.docker(*args, self.container, timeout=timeout)
        if rc != 0:
            raise ServiceError(
                f"docker {args[0]} {self.container} failed: {_first_line(err, out)}", log_tail=self.logs(10)
            )

    def start(self):
        self._act("start")

    def stop(self):
        t = int(round(float(self.spec.stop_timeout)))
        self._act("stop", "-t", str(t), timeout=t + _CMD_TIMEOUT)

    def restart(self):
        t = int(round(float(self.spec.stop_timeout)))
        self._act("restart", "-t", str(t), timeout=t + _CMD_TIMEOUT)

    def reload(self):
        self._act("kill", "--signal", "HUP")
        return "sent SIGHUP"

    def logs(self, n: int = 20) -> list[str]:
        with contextlib.suppress(ServiceError):
            rc, out, err = self.docker("logs", "--tail", str(int(n)), self.container)
            if rc == 0:
                return _tail_text(out + err, n)
        return []


# --------------------------------------------------------------------------------------------------
# sysv (init.d via the service command)
# --------------------------------------------------------------------------------------------------


@register_backend
class SysvBackend(ControlCommandBackend):
    name = "sysv"
    INIT_D = "/etc/init.d"

    @classmethod
    def detect(cls, spec: ServiceSpec) -> bool:
        return os.path.isfile(os.path.join(cls.INIT_D, spec.name))

    def _service(self, action: str) -> tuple[int, str, str]:
        if shutil.which("service"):
            return run_cmd(["service", self.spec.name, action])
        return run_cmd([os.path.join(self.INIT_D, self.spec.name), action])  # no service(8): run it directly

    def status(self) -> dict:
        if not os.path.isfile(os.path.join(self.INIT_D, self.spec.name)):
            raise ServiceError(f"init script not found: {os.path.join(self.INIT_D, self.spec.name)}")
        rc, out, err = self._service("status")
        pid = None
        if rc == 0 and self.spec.pidfile:
            with contextlib.suppress(OSError, ValueError):
                with open(self.spec.pidfile) as fh:
                    pid = int(fh.read().split()[0])
                if not pid_alive(pid):
                    pid = None
        # LSB: 0 running, 1 dead with pidfile, 2 dead with lock, 3 not running, 4 unknown.
        return self._status(
            rc == 0, pid, proc_uptime(pid) if pid else None, _first_line(out, err) or f"status exit code {rc}"
        )

    def _ctl(self, action: str) -> None:
        rc, out, err = self._service(action)
        if rc != 0:
            raise ServiceError(
                f"service {self.spec.name} {action} failed (rc {rc}): {_first_line(err, out)}",
                log_tail=self.logs(10),
            )

    def logs(self, n: int = 20) -> list[str]:
        return tail_file(self.spec.log_file, n)


# --------------------------------------------------------------------------------------------------
# selection, health waiting and the module entry point
# --------------------------------------------------------------------------------------------------


def select_backend(spec: ServiceSpec, backend: str = "auto") -> ServiceBackend:
    if backend and backend != "auto":
        cls = BACKENDS.get(backend)
        if cls is None:
            raise ServiceError(f"unknown backend: {backend} (choose from auto, {', '.join(BACKENDS)})")
        return cls(spec)
    for cls in BACKENDS.values():
        if cls.detect(spec):
            return cls(spec)
    raise ServiceError(
        f"cannot detect a backend for service {spec.name}: no command or pidfile given, no systemd unit, "
        f"no supervisor program, no docker container and no /etc/init.d script by that name; set backend"
    )


def _builtin_prepare(probes: list[dict]) -> list[tuple]:
    """Validate probes for :func:`builtin_run_probes`: (name, kind, target, wanted statuses, timeout)."""
    prepared = []
    for index, probe in enumerate(probes, 1):
        if not isinstance(probe, dict):
            raise ServiceError(f"wait_healthy: probe {index} is not a dictionary")
        timeout = float(probe.get("timeout") or 5)
        url = probe.get("url")
        kind = probe.get("type") or ("http" if url else "tcp")
        if kind == "http":
            parts = urllib.parse.urlsplit(url or "")
            if parts.scheme not in ("http", "https") or not parts.hostname:
                raise ServiceError(f"wait_healthy: probe {index}: url {url!r} is not an http(s) URL")
            wanted = probe.get("status", 200)
            wanted = [int(c) for c in wanted] if isinstance(wanted, (list, tuple)) else [int(wanted)]
            prepared.append((probe.get("name") or url, kind, parts, wanted, timeout))
        elif kind == "tcp":
            if probe.get("port") is None:
                raise ServiceError(f"wait_healthy: probe {index}: tcp probes need a port")
            host = probe.get("host") or "127.0.0.1"
            target = (host, int(probe["port"]))
            prepared.append((probe.get("name") or f"tcp:{host}:{target[1]}", kind, target, None, timeout))
        else:
            raise ServiceError(
                f"wait_healthy: probe {index}: type {kind!r} needs module_utils/probes.py "
                "(built in: http, tcp)"
            )
    return prepared


def builtin_run_probes(probes: list[dict]) -> list[dict]:
    """Minimal http/tcp checks, used when module_utils/probes.py is not installed.

    Same keys as the probes engine: ``{type: http, url, status?}`` (GET; ``status`` is a code or a list
    of codes, default 200) and ``{type: tcp, host?, port}`` (connect; host defaults to 127.0.0.1).
    ``type`` may be left out (``url`` means http, ``port`` means tcp). ``timeout`` per probe, default 5 s.
    """
    results = []
    for name, kind, target, wanted, timeout in _builtin_prepare(probes):
        ok, detail = False, ""
        try:
            if kind == "http":
                https = target.scheme == "https"
                conn_cls = http.client.HTTPSConnection if https else http.client.HTTPConnection
                conn = conn_cls(target.hostname, target.port, timeout=timeout)
                try:
                    conn.request("GET", (target.path or "/") + (f"?{target.query}" if target.query else ""))
                    status = conn.getresponse().status
                finally:
                    conn.close()
                ok, detail = status in wanted, f"HTTP {status}"
            else:
                with socket.create_connection(target, timeout):
                    ok, detail = True, "connected"
        except (OSError, http.client.HTTPException) as exc:
            detail = getattr(exc, "strerror", None) or str(exc) or exc.__class__.__name__
        results.append({"name": name, "ok": ok, "detail": detail})
    return results


def probe_runner(probes: list[dict], service: str | None = None):
    """A zero-argument callable that runs ``probes`` once: the probes engine if installed, else the
    built-in http/tcp subset. Bad probe definitions raise ServiceError here, before anything runs."""
    if not isinstance(probes, (list, tuple)) or not probes:
        raise ServiceError("wait_healthy: probes must be a non-empty list")
    if _run_probes is None:
        _builtin_prepare(list(probes))
        return lambda: builtin_run_probes(list(probes))
    if service:  # the engine records which service a probe belongs to
        probes = [dict(p, service=p.get("service") or service) if isinstance(p, dict) else p for p in probes]
    if _build_probes is not None:
        try:
            built = _build_probes(list(probes))
        except ValueError as exc:
            raise ServiceError(f"wait_healthy: {exc}") from exc
        return lambda: _run_probes(built)
    return lambda: _run_probes(list(probes))


def wait_healthy(
    service: str,
    probes: list[dict] | None = None,
    timeout: float = 30,
    interval: float = 1.0,
    runner=None,
    poll=None,
) -> list[dict]:
    """Run probes until all are ok or ``timeout`` passes; returns the last results or raises.

    The probes run through ``poll`` (a zero-argument callable, see :func:`probe_runner`), or
    ``runner(probes)`` (for tests), or :func:`probe_runner` of ``probes``.
    """
    if poll is None:
        poll = (lambda: runner(list(probes))) if runner else probe_runner(probes, service)
    deadline = time.monotonic() + float(timeout)
    while True:
        results = list(poll())
        failing = [r for r in results if not r.get("ok")]
        if not failing:
            return results
        if time.monotonic() + float(interval) > deadline:
            first = failing[0]
            raise ServiceError(
                f"{service} is not healthy after {float(timeout):g}s: "
                f"{first.get('name')}: {first.get('detail')}",
                probes=results,
            )
        time.sleep(float(interval))


def manage_service(params: dict, check_mode: bool = False) -> dict:
    """Bring a service to ``params['state']``; the result dict for exit_json (raises ServiceError).

    Idempotent: ``started`` on a running service and ``stopped`` on a stopped one change nothing;
    ``restarted`` and ``reloaded`` always change (``reloaded`` starts a stopped service). In check mode
    nothing is changed and ``changed`` says what would have been.
    """
    try:
        return _manage_service(params, check_mode)
    except OSError as exc:  # files the backends write or read (pidfile dir, log file, lock): one line
        where = f": {exc.filename}" if exc.filename else ""
        raise ServiceError(f"{params.get('name')}: {exc.strerror or exc}{where}") from exc


def _manage_service(params: dict, check_mode: bool) -> dict:
    state = params.get("state") or "status"
    if state not in STATES:
        raise ServiceError(f"unknown state: {state} (choose from {', '.join(STATES)})")
    spec = ServiceSpec.from_params(params)
    backend = select_backend(spec, params.get("backend") or "auto")
    name = spec.name

    def service_info(st: dict) -> dict:
        return {
            "name": name,
            "backend": backend.name,
            "active": st["active"],
            "pid": st["pid"],
            "uptime_s": st["uptime_s"],
            "detail": st.get("detail", ""),
        }

    health = params.get("wait_healthy") or None
    poll = None
    if health and state in ("started", "restarted", "reloaded"):
        poll = probe_runner(health.get("probes"), name)  # bad probe definitions fail before any change

    before = backend.status()
    result: dict = {"changed": False, "service": service_info(before)}
    running = "running" if before["active"] else "stopped"
    if state == "status":
        result["msg"] = f"{name} is {running} ({backend.name})"
        return result

    if state == "started":
        action = None if before["active"] else "start"
    elif state == "stopped":
        action = "stop" if before["active"] else None
    elif state == "restarted":
        action = "restart"
    else:
        action = "reload" if before["active"] else "start"

    if action is None:
        result["msg"] = f"{name} is already {running}"
        if before["detail"] == OLDER_COMMAND:
            result["msg"] += f" ({OLDER_COMMAND})"
            result["warnings"] = [f"{name} is {OLDER_COMMAND}"]
        if isinstance(backend, ProcessBackend) and before["detail"].startswith("stale"):
            note = f"would remove {before['detail']}" if check_mode else backend.cleanup_stale()
            if note:
                result["changed"] = True
                result["msg"] += f" ({note})"
    elif check_mode:
        if action in ("start", "restart"):
            backend.check_startable()
        result.update(changed=True, msg=f"would {action} {name} (check mode)")
        return result
    else:
        note = getattr(backend, action)()
        after = backend.status()
        done = {"start": "started", "stop": "stopped", "restart": "restarted", "reload": "reloaded"}[action]
        result.update(
            changed=True, service=service_info(after), msg=f"{name} {done}" + (f" ({note})" if note else "")
        )
        if action != "stop" and not after["active"]:
            raise ServiceError(
                f"{name} is not running after {action}: {after.get('detail') or 'unknown state'}",
                service=result["service"],
                log_tail=backend.logs(20),
                changed=True,
            )

    if poll is not None and not check_mode:
        try:
            result["probes"] = wait_healthy(
                name, timeout=health.get("timeout") or 30, interval=health.get("interval") or 1.0, poll=poll
            )
        except ServiceError as exc:
            exc.details.update(
                service=service_info(backend.status()), changed=result["changed"], log_tail=backend.logs(20)
            )
            raise
    return result


def redacted_params(params: dict) -> dict:
    """Module args for the ``invocation`` echo: env values replaced, keys kept."""
    out = dict(params)
    if isinstance(out.get("env"), dict):
        out["env"] = {k: NO_LOG_PLACEHOLDER for k in out["env"]}
    return out

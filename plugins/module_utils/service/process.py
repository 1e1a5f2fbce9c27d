# -*- coding: utf-8 -*-
# Copyright: (c) 2025, aitbc-ops developers
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""The process backend: a foreground command run as a daemon with a pidfile and a log file."""

from __future__ import annotations

import contextlib
import fcntl
import os
import re
import shlex
import shutil
import signal
import subprocess
import tempfile
import time
from collections.abc import Iterator

from ansible_collections.aitbc.ops.plugins.module_utils._files import atomic_write
from ansible_collections.aitbc.ops.plugins.module_utils._procs import (
    group_alive,
    pid_alive,
    proc_start_epoch,
    proc_uptime,
    read_cmdline,
    read_stat,
)
from ansible_collections.aitbc.ops.plugins.module_utils._text import tail_file
from ansible_collections.aitbc.ops.plugins.module_utils.service.base import ServiceBackend
from ansible_collections.aitbc.ops.plugins.module_utils.service.ports import (
    add_port_check,
    port_holders,
    port_stranger,
)
from ansible_collections.aitbc.ops.plugins.module_utils.service.spec import (
    ServiceError,
    ServiceSpec,
    Status,
    make_status,
)

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

# A daemon's pidfile is written right after it is spawned; /proc start times are only as exact as the
# boot time (whole seconds).
SPAWN_SLACK_S = 2.0
OLDER_COMMAND = "running an older command: restart to apply the new one"


def _one_line(lines: list[str], limit: int = 400) -> str:
    text = " | ".join(line.strip() for line in lines if line.strip())
    return text if len(text) <= limit else "..." + text[-limit:]


def exit_words(code: int) -> str:
    """'exited with status N' or 'was killed by signal N' of a Popen return code."""
    return f"exited with status {code}" if code >= 0 else f"was killed by signal {-code}"


# --------------------------------------------------------------------------------------------------
# command lines
# --------------------------------------------------------------------------------------------------


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


# systemd's EnvironmentFile= grammar (systemd's env-file.c), which the process backend reads the same way,
# so one file gives a service the same environment under either backend.
_ENV_KEY_RE = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")
_ENV_WHITESPACE = " \t"
_DOUBLE_QUOTE_ESCAPES = '"\\`$'  # the only characters a backslash escapes inside double quotes


def _split_assignments(text: str) -> Iterator[tuple[int, str, str | None]]:
    """(line number, key text, value) of each assignment; value None for a line without ``=``.

    As systemd reads an EnvironmentFile: ``#`` or ``;`` starts a comment line; around the key and an
    unquoted value, whitespace is dropped; outside quotes a backslash takes the next character literally
    (and joins lines); single quotes keep everything literally; inside double quotes a backslash escapes
    only ``" \\ ` $`` (before any other character it stays); ``$`` is never expanded."""
    i, n, lineno = 0, len(text), 1
    while i < n:
        while i < n and text[i] in _ENV_WHITESPACE + "\r":
            i += 1
        if i >= n:
            break
        if text[i] == "\n":
            i, lineno = i + 1, lineno + 1
            continue
        start = lineno
        if text[i] in "#;":
            while i < n and text[i] != "\n":
                if text[i] == "\\" and i + 1 < n:  # a comment continues on an escaped newline
                    lineno += text[i + 1] == "\n"
                    i += 1
                i += 1
            continue
        eq = i
        while eq < n and text[eq] not in "=\n":
            eq += 1
        key = text[i:eq].rstrip(_ENV_WHITESPACE + "\r")
        if eq >= n or text[eq] == "\n":
            yield start, key, None
            i = eq
            continue
        value, i, lineno = _read_value(text, eq + 1, lineno)
        yield start, key, value


def _read_value(text: str, i: int, lineno: int) -> tuple[str, int, int]:
    """The value starting at ``text[i]`` (after ``=``): (value, index of its line end, line number there).
    Quotes open only where a value starts or right after a closing quote (``a"b"`` is kept as it is)."""
    out: list[str] = []
    n = len(text)
    keep = 0  # len(out) up to the last character that is not unquoted trailing whitespace
    pre = True  # at the start of the value or after a closing quote: whitespace skipped, quotes open
    while i < n and text[i] not in "\n\r":
        ch = text[i]
        if pre and ch in _ENV_WHITESPACE:
            i += 1
            continue
        if pre and ch in "'\"":
            end = _read_quoted(text, i + 1, ch, out)
            lineno += text.count("\n", i, end)
            i, keep = end, len(out)
            continue
        pre = False
        if ch == "\\":
            i += 1
            if i < n and text[i] == "\n":
                lineno += 1
            elif i < n:
                out.append(text[i])
            keep = len(out)
        else:
            out.append(ch)
            if ch not in _ENV_WHITESPACE:
                keep = len(out)
        i += 1
    return "".join(out[:keep]), i, lineno


def _read_quoted(text: str, i: int, quote: str, out: list[str]) -> int:
    """Append the quoted part starting after its opening quote at ``text[i]``; the index after its closing
    quote (the end of the text when it never closes, as systemd takes it)."""
    n = len(text)
    while i < n and text[i] != quote:
        if quote == '"' and text[i] == "\\" and i + 1 < n:
            i += 1
            if text[i] not in _DOUBLE_QUOTE_ESCAPES + "\n":
                out.append("\\")  # as the shell does: only these are escapes inside double quotes
            if text[i] != "\n":  # an escaped newline joins the lines
                out.append(text[i])
        else:
            out.append(text[i])
        i += 1
    return min(i + 1, n)


def parse_env_text(text: str, where: str = "env_file") -> dict[str, str]:
    """KEY=VALUE assignments of an environment file's text (see _split_assignments); a leading ``export``
    is allowed. A line that is not an assignment is an error (systemd would skip it silently)."""
    env: dict[str, str] = {}
    for lineno, key, value in _split_assignments(text):
        if key.startswith("export ") or key.startswith("export\t"):
            key = key[7:].lstrip(_ENV_WHITESPACE)
        if value is None or not _ENV_KEY_RE.match(key):
            raise ServiceError(f"{where} line {lineno}: expected KEY=VALUE")
        env[key] = value
    return env


def read_env_file(path: str) -> dict[str, str]:
    """The environment an env file gives a service, read as systemd's EnvironmentFile= reads it."""
    try:
        with open(path, encoding="utf-8") as fh:
            text = fh.read()
    except FileNotFoundError as exc:
        raise ServiceError(f"env_file not found: {path}") from exc
    except OSError as exc:
        raise ServiceError(f"cannot read env_file {path}: {exc.strerror}") from exc
    return parse_env_text(text, f"env_file {path}")


# What a run puts in the environment that a daemon must not inherit: opsrunner finds a run's processes
# (and a Ctrl-C kills them) by OPSRUNNER_RUN_ID in /proc/PID/environ (opsrunner/runner.py run_pids), and
# Ansible's and ansible-runner's settings describe the run, not the service. The service's own env and
# env_file may still set any of these names.
_RUN_ENV_PREFIXES = ("OPSRUNNER_", "ANSIBLE_", "_ANSIBLE_")
_RUN_ENV_NAMES = frozenset({"AWX_ISOLATED_DATA_DIR", "ORIGINAL_STDOUT_CALLBACK", "AD_HOC_COMMAND_ID"})


def daemon_base_environment(environ: dict[str, str]) -> dict[str, str]:
    """``environ`` without the run's markers and Ansible's settings (see _RUN_ENV_PREFIXES)."""
    return {
        key: value
        for key, value in environ.items()
        if not key.startswith(_RUN_ENV_PREFIXES) and key not in _RUN_ENV_NAMES
    }


# --------------------------------------------------------------------------------------------------
# children of this Python process
# --------------------------------------------------------------------------------------------------

# Popen objects of daemons started by this Python process, so they are reaped (no zombie, no
# ResourceWarning) when a long-lived caller (tests, opsrunner) stops them again.
_CHILDREN: dict[int, subprocess.Popen[bytes]] = {}


def _session_members(session: int) -> list[int]:
    """Live processes of a session (from /proc)."""
    members = []
    with contextlib.suppress(OSError):
        for entry in os.listdir("/proc"):
            if entry.isdigit():
                stat = read_stat(int(entry))
                if stat and stat["session"] == session and stat["state"] not in ("Z", "X"):
                    members.append(int(entry))
    return members


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


# --------------------------------------------------------------------------------------------------
# the backend
# --------------------------------------------------------------------------------------------------


class ProcessBackend(ServiceBackend):
    """A foreground command run as a daemon: own session, output appended to a log file, a pidfile."""

    name = "process"

    def __init__(self, spec: ServiceSpec) -> None:
        super().__init__(spec)
        if not spec.pidfile:
            spec.pidfile = os.path.join(self.default_run_dir(), f"{spec.name}.pid")
        if not spec.log_file:
            spec.log_file = os.path.join(os.path.dirname(spec.pidfile), f"{spec.name}.log")
        self.pidfile: str = spec.pidfile
        self.log_file: str = spec.log_file
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
        env = {**daemon_base_environment(dict(os.environ)), **self.spec.env}
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
        missing_env_file = bool(self.spec.env_file) and not os.path.exists(self.spec.env_file or "")
        env = (
            {**daemon_base_environment(dict(os.environ)), **self.spec.env}
            if missing_env_file
            else self.environment()
        )
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
        os.makedirs(os.path.dirname(os.path.abspath(self.pidfile)), exist_ok=True)
        atomic_write(self.pidfile, f"{pid}\n".encode(), mode=0o644)

    def remove_pidfile(self) -> None:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(self.pidfile)

    @contextlib.contextmanager
    def lock(self) -> Iterator[None]:
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
            comm = (read_stat(pid) or {}).get("comm", "")
            actual = read_cmdline(pid)
            ok = cmdline_matches(expected, actual, comm)
            if not ok and expected[:2] == ["/bin/sh", "-c"]:
                ok = cmdline_matches(_shell_words(expected[2]), actual, comm)
            if not ok:
                if self.spawned_for_pidfile(pid):
                    return pid, OLDER_COMMAND
                return None, f"stale pidfile (pid {pid} now runs another program)"
        else:
            # No command to compare: a process that started well after the pidfile was written
            # cannot be the one it was written for (60 s of slack for coarse clocks).
            with contextlib.suppress(OSError, ValueError):
                started = proc_start_epoch(pid)
                if started is not None and started > os.stat(self.pidfile).st_mtime + 60:
                    return None, f"stale pidfile (pid {pid} started after the pidfile was written)"
        return pid, ""

    def spawned_for_pidfile(self, pid: int) -> bool:
        """Did ``pid`` start when the pidfile was written? Then it is the daemon start() spawned, even
        if the catalogue's command has changed since; a reused pid starts later than that."""
        with contextlib.suppress(OSError, ValueError):
            started = proc_start_epoch(pid)
            return started is not None and abs(started - os.stat(self.pidfile).st_mtime) <= SPAWN_SLACK_S
        return False

    # ---- actions ----------------------------------------------------------------------------

    def status(self) -> Status:
        pid, why = self.running_pid()
        if pid is None:
            status = make_status(False, detail=why)
        else:
            status = make_status(True, pid, proc_uptime(pid), why or "running")
        return add_port_check(status, self.spec.port)

    def free_port(self, previous: int | None) -> str | None:
        """Before spawning: the service's port must be free. Leftovers of the previous daemon (``previous``,
        the dead pid of the stale pidfile; its session lives on in them, as nginx's workers after a
        ``kill -9`` of their master) are the service's own and are stopped; any other holder is a stranger:
        the start fails with its pid and name, and it is left alone. Returns a note on stopped leftovers."""
        port = self.spec.port
        stranger = port_stranger(port, None)
        if stranger is None or not port:
            return None
        if previous and stranger.pid and not pid_alive(previous) and self._leftover(stranger.pid, previous):
            others = [h for h in port_holders(port) if not (h.pid and self._leftover(h.pid, previous))]
            if not others:
                self._terminate_session(previous)
                return f"stopped leftovers of the previous daemon (session {previous}) holding port {port}"
            stranger = others[0]
        raise ServiceError(f"cannot start {self.spec.name}: {stranger.describe(port)}")

    @staticmethod
    def _leftover(pid: int, previous: int) -> bool:
        """Is ``pid`` in the session that start() made for the previous daemon (the kernel keeps a session
        id from reuse while any process is in it)?"""
        return (read_stat(pid) or {}).get("session") == previous

    def _terminate_session(self, session: int) -> None:
        members = [pid for pid in _session_members(session) if pid != os.getpid()]
        for sig, wait in ((signal.SIGTERM, float(self.spec.stop_timeout)), (signal.SIGKILL, 10.0)):
            for pid in members:
                with contextlib.suppress(ProcessLookupError):
                    os.kill(pid, sig)
            deadline = time.monotonic() + wait
            while any(pid_alive(pid) for pid in members) and time.monotonic() < deadline:
                time.sleep(0.05)
            if not any(pid_alive(pid) for pid in members):
                return
        raise ServiceError(f"leftovers of {self.spec.name} (session {session}) survived SIGKILL")

    def start(self) -> str | None:
        with self.lock():
            pid, why = self.running_pid()
            if pid is not None:
                return f"already running; {why}" if why else "already running"
            note = "replaced " + why if why.startswith("stale") else None
            freed = self.free_port(self.read_pid())
            self._spawn()
            return "; ".join(n for n in (note, freed) if n) or None

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

        started = time.monotonic()
        code = self._settle(proc)
        if code is None:
            self._check_settled(proc, offset)
            return proc.pid

        _CHILDREN.pop(proc.pid, None)
        self.remove_pidfile()
        lines = tail_file(self.log_file, 20, start=offset)
        if argv[:2] == ["/bin/sh", "-c"]:
            missing = [m.group(1) for m in map(_SH_NOT_FOUND.match, lines) if m]
            if missing:
                raise ServiceError(f"command not found: {missing[-1]}", log_tail=lines)
        raise ServiceError(
            f"{spec.name} {exit_words(code)} after {time.monotonic() - started:.1f} s; "
            f"last lines of {self.log_file}: {_one_line(lines[-5:]) or '(no output)'}",
            log_tail=lines,
        )

    def _settle(self, proc: subprocess.Popen[bytes]) -> int | None:
        """Wait the settle time for the new process; its exit code as soon as it dies, None if it lives."""
        deadline = time.monotonic() + max(0.0, float(self.spec.settle))
        while True:
            code = proc.poll()
            if code is not None or time.monotonic() >= deadline:
                return code
            time.sleep(0.05)

    def _check_settled(self, proc: subprocess.Popen[bytes], offset: int) -> None:
        """The settled process must own its pidfile (or a daemon it re-executed into must, with our command)
        and must not find its port held by a stranger; otherwise stop it and fail with the cause."""
        owner, why = self.running_pid()
        problem = ""
        if owner is None:
            problem = f"its pidfile {self.pidfile} is gone or stale ({why})"
        elif owner != proc.pid and why == OLDER_COMMAND:
            problem = f"its pidfile {self.pidfile} names pid {owner}, another program"
        else:
            stranger = port_stranger(self.spec.port, owner)
            if stranger is not None and self.spec.port:
                problem = stranger.describe(self.spec.port)
        if not problem:
            return
        if pid_alive(proc.pid):
            self._terminate(proc.pid)
        _reap(proc.pid)
        self.remove_pidfile()
        lines = tail_file(self.log_file, 20, start=offset)
        raise ServiceError(
            f"{self.spec.name} (pid {proc.pid}) is not the running service after "
            f"{float(self.spec.settle):g} s: {problem}; last lines of {self.log_file}: "
            f"{_one_line(lines[-5:]) or '(no output)'}",
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
        st = read_stat(pid) or {}
        # Signal the whole process group only when the daemon leads its own group (as start()
        # makes it) and that group is not ours.
        group = st.get("pgrp") == pid and pid != os.getpgrp()

        def send(sig: signal.Signals) -> None:
            with contextlib.suppress(ProcessLookupError):
                if group:
                    os.killpg(pid, sig)
                else:
                    os.kill(pid, sig)

        def alive() -> bool:
            return group_alive(pid) if group else pid_alive(pid)

        def wait(seconds: float) -> bool:
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
            previous = pid or self.read_pid()
            note = None
            if pid is not None:
                if self._terminate(pid) == "KILL":
                    note = f"SIGKILL after {float(self.spec.stop_timeout):g}s"
                _reap(pid)
            self.remove_pidfile()
            freed = self.free_port(previous)
            self._spawn()
            return "; ".join(n for n in (note, freed) if n) or None

    def reload(self) -> str | None:
        pid, _why = self.running_pid()
        if pid is None:
            raise ServiceError(f"{self.spec.name} is not running")
        os.kill(pid, signal.SIGHUP)
        return "sent SIGHUP"

    def logs(self, n: int = 20) -> list[str]:
        return tail_file(self.log_file, n)

"""Runs playbooks through ansible-runner and feeds its events to the Recorder.

The recorder hooks of a run come from the one table in hooks.py, by the request's event; the outcome
carries the installed hooks so a command can read their results (the heartbeat's table). One explicit
hook point (like ansible-runner's own): `on_event(event)` sees each redacted event (the CLI uses it for
-v output, and to collect what a task printed).
"""

from __future__ import annotations

import contextlib
import fcntl
import json
import os
import re
import shlex
import shutil
import signal
import sys
import threading
import time
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from .ansible_secrets import Discovery, SecretDiscoveryError, redactor_for_environment
from .ansible_yaml import AnyTagLoader
from .hooks import Hooks, install_hooks
from .memory import MEMORY_DIR_ENV, MemoryStore, atomic_write
from .recorder import RUN_ID_ENV, Recorder, RunRecord, new_run_id
from .redact import Redactor
from .settings import BadInput, Settings

SECRETS_WAIT_S = 120

# The environment ansible-playbook gets from opsrunner's own: only what Ansible, its connection plugins,
# the modules it runs locally and this collection read. ansible-runner records the child's environment in
# the `command` artifact and job events, and passes it to every local process of the run, so a variable
# nobody named secret (GITHUB_PAT, MY_DEPLOY_CRED, cloud keys) must not reach it at all.
#   PATH HOME USER LOGNAME SHELL TMPDIR   find programs, ~/.ssh, the remote user, Ansible's local temp
#   LANG LANGUAGE LC_* TERM TZ COLUMNS    text encoding (Ansible needs a UTF-8 locale) and time zone
#   SSH_AUTH_SOCK                         the ssh agent holding the operator's keys (a socket path)
#   ANSIBLE_* OPSRUNNER_*                 Ansible's configuration; this collection's (memory dir, store, ...)
#   PYTHONPATH PYTHONHOME PYTHONUSERBASE  where ansible-core and the collection's Python dependencies are
#   PYTHONNOUSERSITE PYTHONDONTWRITEBYTECODE PYTHONWARNINGS PYTHONIOENCODING PYTHONUTF8
#   VIRTUAL_ENV                           the environment opsrunner and ansible-core are installed in
#   http(s)_proxy no_proxy all_proxy      reaching hosts and URLs through the site's proxy (either case)
#   SSL_CERT_FILE SSL_CERT_DIR REQUESTS_CA_BUNDLE  the site's CA for URL probes and downloads
#   XDG_RUNTIME_DIR DBUS_SESSION_BUS_ADDRESS       systemctl --user on the local host
#   DOCKER_HOST DOCKER_CERT_PATH DOCKER_TLS_VERIFY  the docker backend's engine
#   KRB5CCNAME KRB5_CONFIG                Kerberos tickets for SSH (GSSAPI)
#   NO_COLOR                              plain output
RUN_ENV_NAMES = frozenset(
    {
        "PATH", "HOME", "USER", "LOGNAME", "SHELL", "TMPDIR", "LANG", "LANGUAGE", "TERM", "TZ", "COLUMNS",
        "SSH_AUTH_SOCK", "PYTHONPATH", "PYTHONHOME", "PYTHONUSERBASE", "PYTHONNOUSERSITE",
        "PYTHONDONTWRITEBYTECODE", "PYTHONWARNINGS", "PYTHONIOENCODING", "PYTHONUTF8", "VIRTUAL_ENV",
        "http_proxy", "https_proxy", "no_proxy", "all_proxy", "HTTP_PROXY", "HTTPS_PROXY", "NO_PROXY",
        "ALL_PROXY", "SSL_CERT_FILE", "SSL_CERT_DIR", "REQUESTS_CA_BUNDLE", "XDG_RUNTIME_DIR",
        "DBUS_SESSION_BUS_ADDRESS", "DOCKER_HOST", "DOCKER_CERT_PATH", "DOCKER_TLS_VERIFY", "KRB5CCNAME",
        "KRB5_CONFIG", "NO_COLOR",
    }
)  # fmt: skip
RUN_ENV_PREFIXES = ("ANSIBLE_", "OPSRUNNER_", "LC_")


def run_environment(inherited: Mapping[str, str], prepared: Mapping[str, str]) -> dict[str, str]:
    """The environment of the run: ``prepared`` (what ansible-runner built: our environment plus what it
    and opsrunner set for the run) without the inherited variables that are not on the allow-list."""
    return {
        name: value
        for name, value in prepared.items()
        if inherited.get(name) != value or name in RUN_ENV_NAMES or name.startswith(RUN_ENV_PREFIXES)
    }


def escaped_forms(secrets: Iterable[str]) -> set[str]:
    """How each secret reads inside JSON or a Python repr (Ansible's output prints results as JSON, so a
    value holding `"` or `\\` appears escaped in the text of stdout and events)."""
    forms = set()
    for secret in secrets:
        forms.add(json.dumps(secret, ensure_ascii=False)[1:-1])
        forms.add(json.dumps(secret)[1:-1])
        forms.add(repr(secret)[1:-1])
    return forms - set(secrets)


# What makes a string a template for Ansible: only strings holding one of these are ever templated.
TEMPLATE_MARKERS = ("{{", "{%", "{#")


def unsafe_yaml(data: Mapping[str, Any]) -> str:
    """Extra vars as YAML, every string that could be a template tagged !unsafe.

    ansible-playbook reads `-e @file` as trusted templates (ansible-core 2.19), while the same values given
    inline are data: the tag keeps them data (a CLI argument holding "{{ lookup('pipe', ...) }}" is a
    string, not a command). Only such strings are tagged: Ansible's !unsafe constructor resolves a scalar
    like any other, so "2" would arrive as the number 2 and "" as null; the rest are quoted plain strings."""

    def represent_str(dumper: yaml.SafeDumper, value: str) -> yaml.ScalarNode:
        tag = "!unsafe" if any(marker in value for marker in TEMPLATE_MARKERS) else "tag:yaml.org,2002:str"
        return dumper.represent_scalar(tag, value, style='"')

    dumper = type("UnsafeDumper", (yaml.SafeDumper,), {})
    dumper.add_representer(str, represent_str)
    return yaml.dump(dict(data), Dumper=dumper, allow_unicode=True, sort_keys=False)


@dataclass
class RunRequest:
    playbook: Path
    inventory: Path
    limit: str | None = None
    check: bool = False
    diff: bool = False
    extra_vars: dict[str, Any] = field(default_factory=dict)
    event: str = "run"


@dataclass
class RunOutcome:
    record: RunRecord
    artifact_dir: Path
    status: str
    hooks: Hooks = field(default_factory=Hooks)


def validate_request(request: RunRequest) -> None:
    """Fail fast, with one line, on input ansible-playbook would only reject after starting."""
    if not request.playbook.is_file():
        raise BadInput(f"unknown playbook: {request.playbook}")
    if not request.inventory.exists():
        raise BadInput(f"inventory not found: {request.inventory}")
    _parse_yaml(request.playbook, "playbook", expect=list)
    if request.inventory.is_file() and request.inventory.suffix in (".yml", ".yaml"):
        _parse_yaml(request.inventory, "inventory", expect=dict)


def _parse_yaml(path: Path, what: str, expect: type) -> None:
    try:
        data = yaml.load(path.read_text(), Loader=AnyTagLoader)  # noqa: S506 - SafeLoader subclass
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f" line {mark.line + 1}" if mark else ""
        problem = getattr(exc, "problem", None) or "invalid YAML"
        raise BadInput(f"malformed {what} {path}:{where}: {problem}") from None
    if not isinstance(data, expect):
        raise BadInput(f"malformed {what} {path}: expected a YAML {expect.__name__}")


def ansible_playbook_binary() -> str:
    """ansible-playbook from the same environment as this Python, else from PATH."""
    sibling = Path(sys.executable).parent / "ansible-playbook"
    if sibling.exists():
        return str(sibling)
    found = shutil.which("ansible-playbook")
    if not found:
        raise BadInput("ansible-playbook not found: install ansible-core in this environment")
    return found


class Runner:
    def __init__(self, settings: Settings, store: MemoryStore | None = None) -> None:
        self.settings = settings
        self.store = store if store is not None else MemoryStore(settings.memory_dir)
        self._cancel = threading.Event()

    def cancel(self) -> None:
        self._cancel.set()

    def run(
        self,
        request: RunRequest,
        on_event: Callable[[dict[str, Any]], None] | None = None,
    ) -> RunOutcome:
        validate_request(request)

        run_id = new_run_id()
        redactor = redactor_for_environment()
        redactor.add_from_mapping(request.extra_vars)
        recorder = Recorder(
            self.store,
            redactor,
            source="opsrunner",
            playbook=str(request.playbook),
            event=request.event,
            run_id=run_id,
            check_mode=request.check,
            extra_vars=request.extra_vars,
        )
        # The secret discovery reads the same ansible.cfg as the run. Its process is forked now and works
        # while ansible-playbook starts; the first event waits for it, so nothing is recorded or written
        # before every secret is known. If it fails, the run is stopped and nothing of it is kept (exit 2).
        for key, value in self._envvars(run_id).items():
            if key.startswith("ANSIBLE_CONFIG"):
                os.environ.setdefault(key, value)
        discovery = Discovery(
            request.playbook, request.inventory, self.settings.vault_password_files, request.limit
        )
        hooks = install_hooks(recorder, request.event)
        work_dir = _private_folder(self.settings.work_dir)
        artifact_dir = _private_folder(work_dir / "artifacts") / run_id
        sweep_leftovers(work_dir)
        secrets = _Secrets(discovery, redactor, recorder, self.cancel)
        handler = _EventHandler(recorder, redactor, on_event, artifact_dir, secrets)
        stopper = _Stopper(run_id, self._cancel)

        # The run's own folder for ansible-runner's env/ (the extra vars file), locked while the run lives
        # so that the next run can tell a killed run's leftovers from a running one's; removed afterwards.
        private_dir, lock_fd = claim_private_dir(work_dir / "private", run_id)
        previous = _install_stop_signals(self.cancel)
        try:
            write_extravars(private_dir, request.extra_vars)
            result = self._start(request, run_id, private_dir, handler, stopper)
        finally:
            _restore_signals(previous)
            stopper.sweep()
            shutil.rmtree(private_dir, ignore_errors=True)
            os.close(lock_fd)
        if not secrets.known():  # also a run that printed no event: its artifacts may hold secrets
            shutil.rmtree(artifact_dir, ignore_errors=True)
            raise BadInput(
                f"cannot discover the secrets of {request.playbook}: {secrets.failure}; refusing to run"
            )
        canceled = result.status == "canceled" or self._cancel.is_set()
        record = recorder.finish(rc=result.rc, canceled=canceled)
        scrub_artifacts(artifact_dir, redactor, handler.stdout_lines)
        prune_artifacts(self.settings.work_dir / "artifacts", self.settings.artifact_max_age_days)
        return RunOutcome(record=record, artifact_dir=artifact_dir, status=result.status, hooks=hooks)

    def _start(
        self,
        request: RunRequest,
        run_id: str,
        private_dir: Path,
        handler: _EventHandler,
        stopper: _Stopper,
    ) -> Any:
        """ansible_runner.run() without its env/ files (no cmdline or envvars on disk) and with the
        environment cut to RUN_ENV_NAMES: ansible-runner seeds the run with all of ours."""
        # Deferred: slow to import, and --help should stay fast.
        from ansible_runner.config.runner import RunnerConfig
        from ansible_runner.runner import Runner as AnsibleRunner

        config = RunnerConfig(
            private_data_dir=str(private_dir),
            artifact_dir=str(handler.artifact_dir.parent),
            project_dir=os.getcwd(),
            ident=run_id,
            playbook=str(request.playbook),
            inventory=str(request.inventory),
            limit=request.limit,
            cmdline=self._cmdline(request),
            envvars=self._envvars(run_id),
            quiet=True,
            rotate_artifacts=self.settings.keep_artifacts,
            settings=dict(RUNNER_SETTINGS),
        )
        config.prepare()
        config.env = run_environment(os.environ, config.env)
        runner = AnsibleRunner(config, event_handler=handler, cancel_callback=stopper)
        runner.run()
        return runner

    def _cmdline(self, request: RunRequest) -> str:
        """Options only: extra vars go in a file (write_extravars), never into a process's argv."""
        args: list[str] = []
        if request.check:
            args.append("--check")
        if request.diff:
            args.append("--diff")
        for vault_file in self.settings.vault_password_files:
            args += ["--vault-password-file", vault_file]
        return shlex.join(args)

    def _envvars(self, run_id: str) -> dict[str, str]:
        env = {
            RUN_ID_ENV: run_id,
            # Every memory reader inside the run (the heartbeat_plan lookup, env_sync) uses this run's
            # store, wherever ansible-playbook's working directory is.
            MEMORY_DIR_ENV: str(self.store.root),
            "ANSIBLE_INVENTORY_UNPARSED_FAILED": "true",
            "ANSIBLE_NOCOLOR": "1",
            # ansible-runner looks ansible-playbook up on this PATH: prefer the one beside this Python.
            "PATH": f"{Path(ansible_playbook_binary()).parent}{os.pathsep}{os.environ.get('PATH', '')}",
        }
        if "ANSIBLE_CONFIG" not in os.environ and self.settings.ansible_cfg.is_file():
            env["ANSIBLE_CONFIG"] = str(self.settings.ansible_cfg)
        return env


class _Secrets:
    """The run's secret discovery, awaited once: its values taught to the redactor, its context to the
    recorder; on failure the run is cancelled and `failure` says why."""

    def __init__(
        self, discovery: Discovery, redactor: Redactor, recorder: Recorder, cancel: Callable[[], None]
    ) -> None:
        self._discovery = discovery
        self._redactor = redactor
        self._recorder = recorder
        self._cancel = cancel
        self._known: bool | None = None
        self.failure = ""

    def known(self) -> bool:
        if self._known is None:
            try:
                values, context = self._discovery.result(SECRETS_WAIT_S)
            except SecretDiscoveryError as exc:
                self.failure = self._redactor.redact_text(str(exc))
                self._known = False
                self._cancel()
                return False
            self._redactor.add(values)
            self._redactor.add(escaped_forms(self._redactor.secrets))
            self._recorder.context.update(context)
            self._known = True
        return self._known


class _EventHandler:
    """ansible-runner's event_handler: redact and record each event, then let ansible-runner write it.
    The first event waits for the secret discovery; without it, no event is recorded or written."""

    def __init__(
        self,
        recorder: Recorder,
        redactor: Redactor,
        on_event: Callable[[dict[str, Any]], None] | None,
        artifact_dir: Path,
        secrets: _Secrets,
    ) -> None:
        self.artifact_dir = artifact_dir
        self.recorder = recorder
        self.redactor = redactor
        self.on_event = on_event
        self.secrets = secrets
        self.stdout_lines: list[str] = []
        self._command_scrubbed = False

    def __call__(self, event: dict[str, Any]) -> bool:
        if not self.secrets.known():
            return False  # not written: its secrets are unknown
        if not self._command_scrubbed:
            self._command_scrubbed = True
            # ansible-runner wrote `command` (with the run's environment) before starting; mask it now.
            scrub_file(self.artifact_dir / "command", self.redactor)
        self.recorder.handle(event)
        if event.get("stdout"):
            self.stdout_lines.append(event["stdout"])
        if self.on_event is not None:
            self.on_event(event)
        return True


# pexpect_timeout: how often (s) the cancel callback is polled while ansible-playbook is quiet.
RUNNER_SETTINGS = {"suppress_output_file": True, "suppress_ansible_output": True, "pexpect_timeout": 1}
STOP_SIGNALS = (signal.SIGINT, signal.SIGTERM)
GRACE_S = 10


def _install_stop_signals(cancel: Callable[[], None]) -> dict[int, Any]:
    """Ctrl-C and SIGTERM cancel the run instead of killing opsrunner mid-write."""
    if threading.current_thread() is not threading.main_thread():
        return {}
    return {sig: signal.signal(sig, lambda *_: cancel()) for sig in STOP_SIGNALS}


def _restore_signals(previous: dict[int, Any]) -> None:
    for sig, handler in previous.items():
        signal.signal(sig, handler)


def run_pids(run_id: str) -> list[int]:
    """Processes of one run: ansible-playbook, its workers (own sessions) and what they started locally.

    They all inherit OPSRUNNER_RUN_ID from the environment opsrunner gives ansible-playbook.
    """
    marker = f"{RUN_ID_ENV}={run_id}".encode()
    pids = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit() or int(entry.name) == os.getpid():
            continue
        try:
            if marker in (entry / "environ").read_bytes().split(b"\0"):
                pids.append(int(entry.name))
        except OSError:
            continue
    return pids


def _signal_all(pids: list[int], sig: int) -> None:
    for pid in pids:
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, sig)


class _Stopper:
    """ansible-runner's cancel_callback: on cancel, SIGINT the run's processes (Ansible stops its
    workers and exits cleanly), and only after a grace period let ansible-runner SIGKILL what is left."""

    def __init__(self, run_id: str, cancel: threading.Event) -> None:
        self.run_id = run_id
        self.cancel = cancel
        self.interrupted_at: float | None = None

    def __call__(self) -> bool:
        if not self.cancel.is_set():
            return False
        if self.interrupted_at is None:
            self.interrupted_at = time.monotonic()
            _signal_all(run_pids(self.run_id), signal.SIGINT)
            return False
        return time.monotonic() - self.interrupted_at > GRACE_S

    def sweep(self) -> None:
        """After the run: nothing it started may outlive it (workers live in their own sessions)."""
        if self.cancel.is_set():
            _signal_all(run_pids(self.run_id), signal.SIGKILL)


def scrub_artifacts(artifact_dir: Path, redactor: Redactor, stdout_lines: list[str]) -> None:
    """Mask secrets in every artifact ansible-runner wrote, and leave a redacted stdout file."""
    if not artifact_dir.is_dir():
        return
    remove_partial_events(artifact_dir)
    for path in artifact_dir.rglob("*"):
        if path.is_symlink():
            continue
        if path.is_dir():
            path.chmod(0o700)
            continue
        if path.is_file() and path.stat().st_size < 50_000_000:
            scrub_file(path, redactor)
        path.chmod(0o600)
    atomic_write(artifact_dir / "stdout", "\n".join(stdout_lines) + "\n", mode=0o600)


def scrub_file(path: Path, redactor: Redactor) -> None:
    """Mask secrets in one artifact. JSON is masked structurally (a secret holding a quote or a backslash is
    escaped in JSON, so a text match would miss it, and masking text could break the document); anything
    else, or JSON cut short by a killed run, as text."""
    try:
        text = path.read_text()
    except (UnicodeDecodeError, OSError):
        return
    clean = scrub_json(text, redactor) if text.lstrip().startswith(("{", "[")) else None
    if clean is None:
        clean = redactor.redact_text(text)
    if clean != text:
        atomic_write(path, clean, mode=0o600)


def scrub_json(text: str, redactor: Redactor) -> str | None:
    """The JSON document ``text`` with its strings masked, or None when it is not one."""
    try:
        data = json.loads(text)
    except ValueError:
        return None
    clean = redactor.redact_in_place(data)
    if clean == json.loads(text):
        return text  # nothing to mask: leave the file as ansible-runner wrote it
    return json.dumps(clean, ensure_ascii=False)


def prune_artifacts(artifacts_root: Path, max_age_days: float) -> list[Path]:
    """Remove artifact folders older than max_age_days (memory files are never touched)."""
    if max_age_days <= 0 or not artifacts_root.is_dir():
        return []
    cutoff = time.time() - max_age_days * 86400
    removed = []
    for child in artifacts_root.iterdir():
        if child.is_dir() and child.stat().st_mtime < cutoff:
            shutil.rmtree(child, ignore_errors=True)
            removed.append(child)
    return removed


def _private_folder(path: Path) -> Path:
    """``path`` as a folder only its owner can enter (artifacts hold masked, yet private, run data)."""
    path.mkdir(parents=True, exist_ok=True, mode=0o700)
    if path.stat().st_mode & 0o077:
        path.chmod(0o700)
    return path


# A private/<run> folder's lock file: held (flock) by the run for as long as it lives.
LOCK_NAME = ".lock"
RUN_DIR_RE = re.compile(r"^[0-9A-Za-z][0-9A-Za-z._-]*$")


def claim_private_dir(private_root: Path, run_id: str) -> tuple[Path, int]:
    """private/<run_id>, 0700, created with its lock already held (built under a temporary name and
    renamed, so a sweeping run never sees it unlocked). Returns the folder and the lock's descriptor."""
    _private_folder(private_root)
    building = private_root / f".new-{run_id}"
    building.mkdir(mode=0o700)
    lock_fd = os.open(building / LOCK_NAME, os.O_RDWR | os.O_CREAT | os.O_NOFOLLOW, 0o600)
    fcntl.flock(lock_fd, fcntl.LOCK_EX)
    target = private_root / run_id
    building.rename(target)
    return target, lock_fd


def write_extravars(private_dir: Path, extra_vars: Mapping[str, Any]) -> None:
    """env/extravars (0600 in a 0700 folder): ansible-runner passes it as `-e @PATH`, so no value is in
    any process's argv; the folder goes when the run ends, and the next run sweeps a killed run's."""
    if not extra_vars:
        return
    env_dir = private_dir / "env"
    env_dir.mkdir(mode=0o700)
    atomic_write(env_dir / "extravars", unsafe_yaml(extra_vars), mode=0o600)


def _is_dead(run_dir: Path) -> bool:
    """True when no live run holds the folder's lock (a kill -9 releases it)."""
    try:
        fd = os.open(run_dir / LOCK_NAME, os.O_RDWR | os.O_NOFOLLOW)
    except FileNotFoundError:
        return not run_dir.name.startswith(".new-")  # a folder being built has its lock a moment later
    except OSError:
        return False
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        return False
    finally:
        os.close(fd)
    return True


def remove_partial_events(artifact_dir: Path) -> None:
    """ansible-playbook's callback writes each event, unmasked, to job_events/<uuid>-partial.json for
    ansible-runner to merge; one that was never merged (the run was killed) is removed, not kept."""
    for partial in (artifact_dir / "job_events").glob("*-partial.json"):
        with contextlib.suppress(FileNotFoundError):
            partial.unlink()


def sweep_leftovers(work_dir: Path) -> list[str]:
    """What runs killed with -9 left: their private folders (env/extravars, and env/cmdline from older
    versions) and the unmerged partial events in their artifacts. Live runs (lock held) are left alone."""
    swept = []
    private_root = work_dir / "private"
    live = set()
    if private_root.is_dir():
        for run_dir in private_root.iterdir():
            name = run_dir.name.removeprefix(".new-")
            if not run_dir.is_dir() or not RUN_DIR_RE.match(name):
                continue
            if _is_dead(run_dir):
                remove_partial_events(work_dir / "artifacts" / name)
                shutil.rmtree(run_dir, ignore_errors=True)
                swept.append(name)
            else:
                live.add(name)
    artifacts_root = work_dir / "artifacts"
    if artifacts_root.is_dir():
        for artifact_dir in artifacts_root.iterdir():
            if artifact_dir.name not in live and artifact_dir.is_dir():
                remove_partial_events(artifact_dir)
    return swept

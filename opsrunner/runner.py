"""Runs playbooks through ansible-runner and feeds its events to the Recorder.

The recorder hooks of a run come from the one table in hooks.py, by the request's event; the outcome
carries the installed hooks so a command can read their results (the heartbeat's table). One explicit
hook point (like ansible-runner's own): `on_event(event)` sees each redacted event (the CLI uses it for
-v output, and to collect what a task printed).
"""

from __future__ import annotations

import contextlib
import json
import multiprocessing
import os
import shlex
import shutil
import signal
import sys
import threading
import time
from collections.abc import Callable
from concurrent.futures import Future, ProcessPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from .ansible_secrets import redactor_for_environment, secrets_from_playbook
from .ansible_yaml import AnyTagLoader
from .hooks import Hooks, install_hooks
from .memory import MEMORY_DIR_ENV, MemoryStore, atomic_write
from .recorder import RUN_ID_ENV, Recorder, RunRecord, new_run_id
from .redact import Redactor
from .settings import BadInput, Settings

SECRETS_WAIT_S = 120


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
        import ansible_runner  # deferred: slow to import, and --help should stay fast

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
        hooks = install_hooks(recorder, request.event)
        # The in-process secret discovery reads the same ansible.cfg as the run.
        for key, value in self._envvars(run_id).items():
            if key.startswith("ANSIBLE_CONFIG"):
                os.environ.setdefault(key, value)
        secrets = self._collect_secrets(request)
        artifacts_root = self.settings.work_dir / "artifacts"
        artifact_dir = artifacts_root / run_id
        handler = _EventHandler(recorder, redactor, secrets, on_event, artifact_dir)
        stopper = _Stopper(run_id, self._cancel)

        # ansible-runner keeps cmdline, envvars and extravars in env/ of its private data dir and reuses
        # them on the next run there, so each run gets its own, removed afterwards.
        private_dir = self.settings.work_dir / "private" / run_id
        private_dir.mkdir(parents=True, mode=0o700)
        previous = _install_stop_signals(self.cancel)
        try:
            result = ansible_runner.run(
                private_data_dir=str(private_dir),
                artifact_dir=str(artifacts_root),
                project_dir=os.getcwd(),
                ident=run_id,
                playbook=str(request.playbook),
                inventory=str(request.inventory),
                limit=request.limit,
                cmdline=self._cmdline(request),
                envvars=self._envvars(run_id),
                quiet=True,
                rotate_artifacts=self.settings.keep_artifacts,
                settings=RUNNER_SETTINGS,
                event_handler=handler,
                cancel_callback=stopper,
            )
        finally:
            _restore_signals(previous)
            stopper.sweep()
            shutil.rmtree(private_dir, ignore_errors=True)
        handler.wait_for_secrets()
        canceled = result.status == "canceled" or self._cancel.is_set()
        record = recorder.finish(rc=result.rc, canceled=canceled)
        scrub_artifacts(artifact_dir, redactor, handler.stdout_lines)
        prune_artifacts(self.settings.work_dir / "artifacts", self.settings.artifact_max_age_days)
        return RunOutcome(record=record, artifact_dir=artifact_dir, status=result.status, hooks=hooks)

    def _collect_secrets(self, request: RunRequest) -> Future[tuple[set[str], dict[str, Any]]]:
        """Load vault and inventory secrets in a forked process, overlapping ansible-playbook's start-up.

        A process rather than a thread: loading Ansible holds the GIL for most of a second, which would
        stall our reading of ansible-playbook's output (and so ansible-playbook itself). The values come
        back over a pipe, never through a file.
        """
        pool = ProcessPoolExecutor(max_workers=1, mp_context=multiprocessing.get_context("fork"))
        future = pool.submit(
            secrets_from_playbook,
            request.playbook,
            request.inventory,
            self.settings.vault_password_files,
            request.limit,
        )
        pool.shutdown(wait=False)
        return future

    def _cmdline(self, request: RunRequest) -> str:
        args: list[str] = []
        if request.check:
            args.append("--check")
        if request.diff:
            args.append("--diff")
        if request.extra_vars:
            args += ["-e", json.dumps(request.extra_vars)]
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


class _EventHandler:
    """ansible-runner's event_handler: redact and record each event, then let ansible-runner write it."""

    def __init__(
        self,
        recorder: Recorder,
        redactor: Redactor,
        secrets: Future[tuple[set[str], dict[str, Any]]],
        on_event: Callable[[dict[str, Any]], None] | None,
        artifact_dir: Path,
    ) -> None:
        self.artifact_dir = artifact_dir
        self.recorder = recorder
        self.redactor = redactor
        self.secrets = secrets
        self.on_event = on_event
        self.stdout_lines: list[str] = []
        self._secrets_loaded = False

    def wait_for_secrets(self) -> None:
        if self._secrets_loaded:
            return
        self._secrets_loaded = True
        try:
            values, context = self.secrets.result(timeout=SECRETS_WAIT_S)
            self.redactor.add(values)
            self.recorder.context.update(context)
        except Exception as exc:  # noqa: BLE001 - ansible-playbook reports the same input error itself
            self.recorder.record.details.append(f"secret discovery skipped: {type(exc).__name__}")

    def __call__(self, event: dict[str, Any]) -> bool:
        if not self._secrets_loaded:
            self.wait_for_secrets()
            # ansible-runner wrote `command` (with the environment) before starting; mask it now.
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
    for path in artifact_dir.rglob("*"):
        if path.is_file() and path.stat().st_size < 50_000_000:
            scrub_file(path, redactor)
    (artifact_dir / "stdout").write_text("\n".join(stdout_lines) + "\n")


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

"""The one recorder: turns Ansible events into run records and memory entries.

Both adapters feed it the ansible-runner event shape, `{"event": NAME, "event_data": {...}}`:
the runner passes ansible-runner's events through, and the `aitbc.ops.memory` callback builds the
same dicts from its hooks. Redaction happens here, on the way in, so nothing downstream (artifacts,
memory, incidents, --json) ever holds a secret.

Hook points, called in this order:
  result(recorder, TaskResult)   every ok/failed result of an `aitbc.ops.*` module
  finish(recorder, RunRecord)    after the run, before the daily entry is written; may add
                                 incident ids or details to the record
"""

from __future__ import annotations

import datetime as dt
import os
import re
import secrets
from collections.abc import Callable, Mapping
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from .memory import DailyEntry, MemoryStore, format_time, one_line, utcnow
from .redact import Redactor

# Set by opsrunner for the runs it records itself; the memory callback then stays silent.
RUN_ID_ENV = "OPSRUNNER_RUN_ID"

# Actions whose full results the recorder keeps for hooks and reports; other results are only counted.
KEPT_ACTION_PREFIX = "aitbc.ops."

OUTCOME_EXIT_CODES = {
    "ok": 0,
    "failed": 1,
    "unhealthy": 1,
    "error": 1,
    "config-error": 2,
    "unreachable": 3,
    "canceled": 130,
}
# ansible-playbook's own codes for a parse error (4) and bad options (5) mean bad input.
BAD_INPUT_RCS = {4, 5}


@dataclass
class HostStats:
    ok: int = 0
    changed: int = 0
    failed: int = 0
    unreachable: int = 0
    skipped: int = 0
    rescued: int = 0
    ignored: int = 0


@dataclass
class TaskFailure:
    host: str
    task: str
    action: str
    message: str
    unreachable: bool = False

    def describe(self) -> str:
        if self.unreachable:
            return f"{self.host} unreachable: {self.message}"
        return f"{self.host} · {self.task} ({self.action}) · {self.message}"


@dataclass
class TaskResult:
    host: str
    task: str
    action: str
    failed: bool
    result: dict[str, Any]


@dataclass
class RunRecord:
    run_id: str
    playbook: str
    source: str
    event: str
    started: dt.datetime
    finished: dt.datetime | None = None
    check_mode: bool = False
    hosts: dict[str, HostStats] = field(default_factory=dict)
    failures: list[TaskFailure] = field(default_factory=list)
    results: list[TaskResult] = field(default_factory=list)
    incidents: list[str] = field(default_factory=list)
    details: list[str] = field(default_factory=list)
    outcome: str = "ok"
    rc: int | None = None
    # The first failure that is a mistake in the inventory or catalogue (config_error()), on one line.
    config_error: str | None = None

    @property
    def exit_code(self) -> int:
        if self.outcome == "error" and self.rc in BAD_INPUT_RCS:
            return 2
        return OUTCOME_EXIT_CODES.get(self.outcome, 1)

    def totals(self) -> HostStats:
        total = HostStats()
        for stats in self.hosts.values():
            for name, value in asdict(stats).items():
                setattr(total, name, getattr(total, name) + value)
        return total

    def results_for(self, action: str) -> list[TaskResult]:
        suffix = action.split(".")[-1]
        return [r for r in self.results if r.action in (action, f"{KEPT_ACTION_PREFIX}{suffix}")]

    def to_dict(self) -> dict[str, Any]:
        data = asdict(self)
        data["started"] = format_time(self.started)
        data["finished"] = format_time(self.finished) if self.finished else None
        data["exit_code"] = self.exit_code
        return data

    def daily_entry(self) -> DailyEntry:
        totals = self.totals()
        actions = (
            f"ok={totals.ok} changed={totals.changed} failed={totals.failed} "
            f"unreachable={totals.unreachable} skipped={totals.skipped}"
        )
        if self.check_mode:
            actions += " (check mode)"
        details = [failure.describe() for failure in self.failures] + self.details
        return DailyEntry(
            time=self.finished or self.started,
            event=self.event,
            title=self.playbook,
            outcome=self.outcome,
            hosts=sorted(self.hosts),
            actions=actions,
            details=details,
            incidents=list(self.incidents),
            run_id=self.run_id,
            source=self.source,
        )


ResultHook = Callable[["Recorder", TaskResult], None]
FinishHook = Callable[["Recorder", RunRecord], None]


def new_run_id() -> str:
    return f"{utcnow().strftime('%Y%m%dT%H%M%SZ')}-{secrets.token_hex(3)}"


def playbook_title(playbook: str | os.PathLike[str]) -> str:
    return Path(playbook).name if playbook else "-"


class Recorder:
    """Consumes one run's events; `finish()` produces the RunRecord and writes the daily entry."""

    def __init__(
        self,
        store: MemoryStore | None,
        redactor: Redactor | None = None,
        *,
        source: str,
        playbook: str = "",
        event: str = "run",
        run_id: str | None = None,
        check_mode: bool = False,
        extra_vars: Mapping[str, Any] | None = None,
    ) -> None:
        self.store = store
        self.redactor = redactor or Redactor()
        self.record = RunRecord(
            run_id=run_id or new_run_id(),
            playbook=playbook_title(playbook),
            source=source,
            event=event,
            started=utcnow(),
            check_mode=check_mode,
        )
        # Controller-side settings the adapters found among the run's variables (e.g. aitbc_alert_urls).
        self.context: dict[str, Any] = {}
        # The extra variables the run was started with, where the adapter knows them (the runner's
        # request; the memory callback gives none): hooks read their command's options here.
        self.extra_vars: dict[str, Any] = dict(extra_vars or {})
        self.result_hooks: list[ResultHook] = []
        self.finish_hooks: list[FinishHook] = []
        self.events_seen = 0
        self._stats_seen = False
        self._finished = False

    # -- input

    def handle(self, event: dict[str, Any]) -> dict[str, Any]:
        """Redact one event in place (so callers that persist it store the redacted form) and record it."""
        redacted = self.redactor.redact_in_place(event)
        if redacted is not event:  # a whole-event no_log censor returns a new dict
            event.clear()
            event.update(redacted)
        self.events_seen += 1
        handler = self._HANDLERS.get(event.get("event", ""))
        if handler is not None:
            handler(self, event.get("event_data") or {})
        return event

    def _on_playbook_start(self, data: Mapping[str, Any]) -> None:
        if data.get("playbook") and self.record.playbook == "-":
            self.record.playbook = playbook_title(data["playbook"])

    def _on_start(self, data: Mapping[str, Any]) -> None:
        # Hosts a run reached, even when it never gets to its stats (a canceled run).
        if data.get("host"):
            self.record.hosts.setdefault(str(data["host"]), HostStats())

    def _on_ok(self, data: Mapping[str, Any]) -> None:
        self._keep_result(data, failed=False)

    def _on_failed(self, data: Mapping[str, Any]) -> None:
        result = self._keep_result(data, failed=True)
        if data.get("ignore_errors"):
            return
        self.record.failures.append(
            TaskFailure(
                host=str(data.get("host", "?")),
                task=str(data.get("task", "?")),
                action=str(data.get("task_action", "?")),
                message=failure_message(result.result if result else data.get("res") or {}),
            )
        )

    def _on_unreachable(self, data: Mapping[str, Any]) -> None:
        res = data.get("res") or {}
        self.record.failures.append(
            TaskFailure(
                host=str(data.get("host", "?")),
                task=str(data.get("task", "?")),
                action=str(data.get("task_action", "?")),
                message=failure_message(res),
                unreachable=True,
            )
        )

    def _on_stats(self, data: Mapping[str, Any]) -> None:
        self._stats_seen = True
        columns = {
            "ok": "ok",
            "changed": "changed",
            "failures": "failed",
            "dark": "unreachable",
            "skipped": "skipped",
            "rescued": "rescued",
            "ignored": "ignored",
        }
        hosts: set[str] = set(data.get("processed") or {})
        for key in columns:
            hosts |= set(data.get(key) or {})
        for host in hosts:
            stats = self.record.hosts.setdefault(host, HostStats())
            for key, attr in columns.items():
                setattr(stats, attr, int((data.get(key) or {}).get(host, 0)))

    _HANDLERS: dict[str, Callable[[Recorder, Mapping[str, Any]], None]] = {
        "playbook_on_start": _on_playbook_start,
        "runner_on_start": _on_start,
        "runner_on_ok": _on_ok,
        "runner_on_failed": _on_failed,
        "runner_on_unreachable": _on_unreachable,
        "playbook_on_stats": _on_stats,
    }

    def _keep_result(self, data: Mapping[str, Any], *, failed: bool) -> TaskResult | None:
        action = str(data.get("task_action", ""))
        if not action.startswith(KEPT_ACTION_PREFIX):
            return None
        result = TaskResult(
            host=str(data.get("host", "?")),
            task=str(data.get("task", "")),
            action=action,
            failed=failed,
            result=dict(data.get("res") or {}),
        )
        self.record.results.append(result)
        for hook in self.result_hooks:
            hook(self, result)
        return result

    # -- output

    def finish(self, *, rc: int | None = None, canceled: bool = False) -> RunRecord:
        """Close the run: decide the outcome, run finish hooks, write the daily entry once."""
        record = self.record
        if self._finished:
            return record
        self._finished = True
        record.rc = rc
        record.finished = utcnow()
        record.config_error = first_config_error(record.failures)
        record.outcome = self._outcome(rc, canceled)
        for hook in self.finish_hooks:
            hook(self, record)
        record.details = [self.redactor.redact_text(d) for d in record.details]
        if self.store is not None:
            self.store.ensure_layout()
            self.store.append_daily(record.daily_entry())
        return record

    def _outcome(self, rc: int | None, canceled: bool) -> str:
        record = self.record
        if canceled:
            return "canceled"
        if record.config_error is not None:
            return "config-error"
        if not self._stats_seen:
            return "ok" if rc == 0 else "error"
        if any(f.unreachable for f in record.failures) or any(s.unreachable for s in record.hosts.values()):
            return "unreachable"
        if record.failures or any(s.failed for s in record.hosts.values()):
            return "failed"
        return "ok"


# Ansible's message for a loop whose items failed: the first failed item says why.
LOOP_FAILED = "One or more items failed"


def failure_message(res: Mapping[str, Any]) -> str:
    """The most useful single line of a failed result."""
    if str(res.get("msg", "")).startswith(LOOP_FAILED):
        items = [i for i in res.get("results") or [] if isinstance(i, Mapping) and i.get("failed")]
        if items:
            item = items[0].get("item")
            label = item if isinstance(item, str | int) else items[0].get("ansible_loop_var", "item")
            return one_line(f"{label}: {failure_message(items[0])}", 300)
    for key in ("msg", "reason", "stderr", "exception", "module_stderr", "stdout"):
        value = res.get(key)
        if value:
            text = str(value).strip().splitlines()
            if text:
                return one_line(text[-1] if key in ("exception", "module_stderr") else " ".join(text), 300)
    if res.get("censored"):
        return "failed (output hidden by no_log)"
    return "failed"


# -- configuration errors --------------------------------------------------------------------------
# A failure caused by the inventory or catalogue rather than by a host: Ansible's templating errors,
# the catalogue filters' errors, a module's argument spec rejecting what the catalogue gave it, and the
# health module's probe definition errors (probes/registry.py, ProbeConfigError). Such a run is not
# unhealthy: it never looked, so every command ends it with one line and exit 2.

# Ansible 2.19 wraps the cause in these prefixes; the cause is what names the variable or entry.
_WRAPPERS = (
    re.compile(r"^Task failed: "),
    re.compile(r"^Finalization of task args for '[^']+' failed: "),
    re.compile(r"^Error while resolving value for '[^']+': "),
    re.compile(r"^The task includes an option with an undefined variable\.? ?(The error was: )?"),
)
_TEMPLATING = re.compile(
    r"'[^']+' is undefined"
    r"|has no attribute '[^']+'"
    r"|^The filter plugin '[^']+' failed: "
    r"|template error while templating string"
    r"|^Syntax error in template"
    r"|An unhandled exception occurred while templating"
)
_ARGUMENT_SPEC = re.compile(
    r"^Unsupported parameters for \("
    r"|^missing required arguments: "
    r"|^missing parameter\(s\) required by "
    r"|^value of \S+ must be one of: "
    r"|^argument '[^']+' is of type "
    r"|^Elements value for option '[^']+' is of type "
    r"|^Validation of arguments failed"
)
# ProbeConfigError's shapes: "probe N (name): ..." and the empty list.
_PROBE_CONFIG = re.compile(r"^probe \d+( \([^)]*\))?: |^probes must be a non-empty list")


def _cause(message: str) -> str:
    """The message without Ansible's wrapping prefixes."""
    changed = True
    while changed:
        changed = False
        for wrapper in _WRAPPERS:
            stripped = wrapper.sub("", message, count=1)
            if stripped != message:
                message, changed = stripped, True
    return message


def config_error(failure: TaskFailure) -> str | None:
    """The one line a configuration error is reported with, or None for any other failure."""
    if failure.unreachable:
        return None
    cause = _cause(failure.message)
    is_health = failure.action.split(".")[-1] == "health" and bool(_PROBE_CONFIG.search(cause))
    if not (_TEMPLATING.search(cause) or _ARGUMENT_SPEC.search(cause) or is_health):
        return None
    return one_line(f"configuration error: {cause} (host {failure.host}, task: {failure.task})", 400)


# What the playbooks' request checks say when the operator named something that is not there: bad input
# (exit 2), not a failed run.
BAD_REQUEST_PREFIXES = ("unknown service:", "service not placed:")


def first_bad_request(failures: list[TaskFailure]) -> str | None:
    return next((f.message for f in failures if f.message.startswith(BAD_REQUEST_PREFIXES)), None)


def first_config_error(failures: list[TaskFailure]) -> str | None:
    return next((line for line in map(config_error, failures) if line is not None), None)

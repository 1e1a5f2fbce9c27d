"""The one table of recorder hooks, read by the runner and by the memory callback alike.

Every run gets the STANDARD hooks: capabilities whose results mean the same whatever playbook produced
them. A run's event adds its own hooks (BY_EVENT). Under opsrunner the event is the command's
(RunRequest.event); a plain ansible-playbook run (the memory callback) takes the event of its playbook
from PLAYBOOK_EVENTS, the same table the CLI takes its commands' events from.

A plain ansible-playbook run may hold heartbeat probes or log reviews in any playbook (a site.yml that
includes the heartbeat role), so the callback also installs the WATCHERS: each acts only once such
results show up. A run's own hooks take the place of the watcher of its event.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from pathlib import Path
from typing import TypeVar

from .backups import BackupHooks
from .decisions import decision_hooks
from .deploys import DeployHooks
from .diagnose import DiagnoseHooks
from .heartbeat import HeartbeatHooks
from .holds import ServiceHolds
from .logreview import EVENT as LOG_REVIEW
from .logreview import review_hooks
from .recorder import Recorder

# Registers its hooks on the recorder; returns the object that holds its results (or None).
HookFactory = Callable[[Recorder], object]

RUN = "run"  # the event of a run no table names (opsrunner run, any other playbook)
HEARTBEAT = "heartbeat"
DIAGNOSE = "diagnose"

STANDARD: tuple[HookFactory, ...] = (
    decision_hooks,  # decisions/ records from aitbc.ops.decision tasks
    BackupHooks,  # backup details; incidents for failed verification
    DeployHooks,  # incidents for automatic rollbacks
    ServiceHolds,  # a service stopped on purpose is held (the heartbeat leaves it stopped)
)

BY_EVENT: dict[str, tuple[HookFactory, ...]] = {
    HEARTBEAT: (HeartbeatHooks,),  # thresholds, incidents, escalations, alerts; the command's table
    LOG_REVIEW: (review_hooks,),  # per-source counts; proposed failure signatures
    DIAGNOSE: (DiagnoseHooks,),  # the bundle files, attached to open incidents
}


def watch_heartbeat(recorder: Recorder) -> HeartbeatHooks:
    """The heartbeat's hooks for a run that may not be one: they act once heartbeat probes show up."""
    return HeartbeatHooks(recorder, expected=False)


WATCHERS: dict[str, HookFactory] = {
    HEARTBEAT: watch_heartbeat,
    LOG_REVIEW: review_hooks,  # acts only on log_review results (or the log review's own playbook)
}

# The event of each command playbook with one event (service, schedule and demo name theirs per action).
PLAYBOOK_EVENTS: dict[str, str] = {
    "heartbeat.yml": HEARTBEAT,
    "logs_review.yml": LOG_REVIEW,
    "diagnose.yml": DIAGNOSE,
    "backup.yml": "backup",
    "backups_list.yml": "backups list",
    "backup_verify.yml": "backup verify",
    "restore.yml": "restore",
    "deploy.yml": "deploy",
    "rollback.yml": "rollback",
    "releases.yml": "releases",
    "env_sync.yml": "env sync",
    "report.yml": "report",
}


def playbook_event(playbook: str) -> str:
    """The event of a playbook (a file name or a path), RUN for one the table does not name."""
    return PLAYBOOK_EVENTS.get(Path(playbook).name, RUN)


def hook_factories(event: str, *, watch: bool = False) -> tuple[HookFactory, ...]:
    """What a run of `event` gets, in the order they are installed (the order of its details).

    `watch`: a plain ansible-playbook run, which also gets the WATCHERS.
    """
    own = BY_EVENT.get(event, ())
    if not watch:
        return STANDARD + own
    watched = tuple(f for name, watcher in WATCHERS.items() for f in (own if name == event else (watcher,)))
    return STANDARD + watched + (() if event in WATCHERS else own)


T = TypeVar("T")


class Hooks:
    """The hook objects installed on one recorder, for a command that reads their results."""

    def __init__(self, installed: Iterable[object] = ()) -> None:
        self.installed = list(installed)

    def get(self, kind: type[T]) -> T:
        found = next((hook for hook in self.installed if isinstance(hook, kind)), None)
        if found is None:
            raise LookupError(f"no {kind.__name__} installed on this run")
        return found


def install_hooks(recorder: Recorder, event: str, *, watch: bool = False) -> Hooks:
    """Register the table's hooks for `event` on the recorder; returns the installed hook objects."""
    installed = [factory(recorder) for factory in hook_factories(event, watch=watch)]
    return Hooks(hook for hook in installed if hook is not None)

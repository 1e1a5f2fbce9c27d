"""Maintenance windows: while a change runs on some hosts and services, failures there page nobody.

A change (deploy, restore, config apply, ...) opens a window on its hosts and services and closes it when it
ends; a window also closes by itself at its `closes` time (the policy's maintenance_timeout), so a change
that died never silences pages for long. The heartbeat and the intake still record failures in a window
(`Windows.covering` says whether one holds a host and service); pages wait until it closes.

State: <memory>/plans/.maintenance.json, read and written under the store's lock, replaced atomically.
Windows closed for over KEEP_CLOSED are dropped from it.
"""

from __future__ import annotations

import datetime as dt
import json
import logging
import re
from dataclasses import dataclass, field
from typing import Any

from .memory import MemoryStore, atomic_write, format_time, parse_time, utcnow

log = logging.getLogger(__name__)

STATE_FILE = "plans/.maintenance.json"
ID_RE = re.compile(r"^MW-\d{8}-\d{3,}$")
KEEP_CLOSED = dt.timedelta(days=30)


@dataclass
class MaintenanceWindow:
    id: str
    change: str
    hosts: list[str]  # [] = every host (the change's hosts could not be told)
    services: list[str]  # [] = every service
    opened: dt.datetime
    closes: dt.datetime  # the timeout: past it the window counts as closed
    closed: dt.datetime | None = None
    reason: str = ""

    def is_open(self, at: dt.datetime | None = None) -> bool:
        at = at or utcnow()
        return self.opened <= at < self.closes and (self.closed is None or at < self.closed)

    def covers(self, host: str, service: str, at: dt.datetime | None = None) -> bool:
        return (
            self.is_open(at)
            and (not self.hosts or host in self.hosts)
            and (not self.services or not service or service in self.services)
        )

    def ended(self) -> dt.datetime:
        """When it closed, or will time out."""
        return min(self.closed, self.closes) if self.closed else self.closes

    def to_json(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "change": self.change,
            "hosts": list(self.hosts),
            "services": list(self.services),
            "opened": format_time(self.opened),
            "closes": format_time(self.closes),
            "closed": format_time(self.closed) if self.closed else None,
            "reason": self.reason,
        }

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> MaintenanceWindow:
        return cls(
            id=str(data["id"]),
            change=str(data.get("change", "")),
            hosts=[str(h) for h in data.get("hosts") or []],
            services=[str(s) for s in data.get("services") or []],
            opened=parse_time(data["opened"]),
            closes=parse_time(data["closes"]),
            closed=parse_time(data["closed"]) if data.get("closed") else None,
            reason=str(data.get("reason", "")),
        )


@dataclass
class _State:
    windows: list[MaintenanceWindow] = field(default_factory=list)


class Windows:
    """The maintenance windows of a memory store."""

    def __init__(self, store: MemoryStore) -> None:
        self.store = store

    def open(
        self, change: str, hosts: list[str], services: list[str], timeout: dt.timedelta, reason: str
    ) -> MaintenanceWindow:
        now = utcnow()
        with self.store.locked(STATE_FILE) as path:
            state = self._read()
            window = MaintenanceWindow(
                id=self._next_id(state, now),
                change=change,
                hosts=sorted(set(hosts)),
                services=sorted(set(services)),
                opened=now,
                closes=now + timeout,
                reason=reason,
            )
            state.windows = [w for w in state.windows if now - w.ended() < KEEP_CLOSED] + [window]
            atomic_write(path, self._dump(state))
        return window

    def close(self, window_id: str) -> MaintenanceWindow | None:
        """Close a window now (one already closed keeps its time); None for an unknown id."""
        if not ID_RE.match(window_id):
            return None
        with self.store.locked(STATE_FILE) as path:
            state = self._read()
            found = next((w for w in state.windows if w.id == window_id), None)
            if found is None:
                return None
            if found.closed is None:
                found.closed = utcnow()
                atomic_write(path, self._dump(state))
        return found

    def get(self, window_id: str) -> MaintenanceWindow | None:
        return next((w for w in self._read().windows if w.id == window_id), None)

    def covering(self, host: str, service: str, at: dt.datetime | None = None) -> MaintenanceWindow | None:
        """The open window (not closed, not timed out) that holds this host and service, if any."""
        at = at or utcnow()
        return next((w for w in self._read().windows if w.covers(host, service, at)), None)

    def active(self) -> list[MaintenanceWindow]:
        now = utcnow()
        return [w for w in self._read().windows if w.is_open(now)]

    def all(self) -> list[MaintenanceWindow]:
        return self._read().windows

    # -- the state file -------------------------------------------------------------------------------

    def _read(self) -> _State:
        path = self.store.path(STATE_FILE)
        try:
            data = json.loads(path.read_text())
            return _State([MaintenanceWindow.from_json(item) for item in data.get("windows", [])])
        except FileNotFoundError:
            return _State()
        except (OSError, ValueError, KeyError, TypeError, AttributeError) as exc:
            # A torn or edited file must not stop a change or a heartbeat: no window holds anything then.
            log.warning("maintenance windows unreadable (%s): treated as none", exc)
            return _State()

    @staticmethod
    def _dump(state: _State) -> str:
        return json.dumps({"windows": [w.to_json() for w in state.windows]}, indent=2) + "\n"

    @staticmethod
    def _next_id(state: _State, now: dt.datetime) -> str:
        prefix = f"MW-{now:%Y%m%d}-"
        taken = [int(w.id[len(prefix) :]) for w in state.windows if w.id.startswith(prefix)]
        return f"{prefix}{max(taken, default=0) + 1:03d}"

"""The ticket desk: deduplicated tickets that never fail the caller.

`raise_ticket` finds the ticket of the request's signature and notes the repeat (open), reopens it
(closed), or creates one (none). A tracker that fails (down, a wrong key, a full disk) never raises here:
the request goes to <memory>/tickets/.pending.jsonl and `retry_pending` tries it again later (the
heartbeat or the intake calls it), in order, keeping what still fails. Notes and closes are kept the same
way. The pending file is JSON lines, rewritten atomically under the store's lock.

`tracker_from_settings` reads the inventory variable `aitbc_tracker` (default: the file tracker).
"""

from __future__ import annotations

import json
import re
import uuid
from collections.abc import Callable, Mapping
from dataclasses import dataclass, replace
from pathlib import Path
from typing import TYPE_CHECKING, Any, TypeVar

from ..memory import MemoryStore, atomic_write, format_time, one_line, utcnow
from ..redact import mask_secrets
from ..secret_files import read_secret_file
from .base import Ticket, TicketRequest, Tracker, TrackerError
from .files import TICKET_DIR, FileTracker

if TYPE_CHECKING:
    from .redmine import RedmineSettings

PENDING_FILE = f"{TICKET_DIR}/.pending.jsonl"
DESK_LOCK = f"{TICKET_DIR}/.desk"
BODY_IN_NOTE = 2000
ACTIONS = ("opened", "noted", "reopened", "closed", "pending")

T = TypeVar("T")


@dataclass(frozen=True)
class TicketOutcome:
    """What the desk did: opened | noted | reopened | closed, or pending (kept for a retry, see `error`).
    `ticket` is the ticket when the tracker answered; `ticket_id` the id it was about (also for pending
    notes); `request` the request that raised it, so a caller can link a ticket created by a retry."""

    action: str
    ticket: Ticket | None = None
    error: str = ""
    ticket_id: str = ""
    request: TicketRequest | None = None


class TicketDesk:
    def __init__(self, store: MemoryStore, tracker: Tracker) -> None:
        self.store = store
        self.tracker = tracker

    def raise_ticket(self, request: TicketRequest) -> TicketOutcome:
        """Create, note or reopen the ticket of `request.signature`; on a tracker failure, keep it.
        Callers pass text their redactor has masked; the pattern masker runs here too (password=...,
        Bearer tokens, URL credentials), as a ticket leaves the machine."""
        request = _masked(request)
        try:
            return self._raise(request)
        except TrackerError as exc:
            return self._keep({"kind": "raise", "request": request.to_dict()}, str(exc), request=request)

    def note(self, ticket_id: str, text: str) -> TicketOutcome:
        text = mask_secrets(text)
        try:
            self._with_lock(lambda: self.tracker.note(ticket_id, text))
        except TrackerError as exc:
            return self._keep({"kind": "note", "ticket_id": ticket_id, "text": text}, str(exc), ticket_id)
        return TicketOutcome("noted", ticket_id=ticket_id)

    def close(self, ticket_id: str, text: str) -> TicketOutcome:
        text = mask_secrets(text)
        try:
            self._with_lock(lambda: self.tracker.close(ticket_id, text))
        except TrackerError as exc:
            return self._keep({"kind": "close", "ticket_id": ticket_id, "text": text}, str(exc), ticket_id)
        return TicketOutcome("closed", ticket_id=ticket_id)

    def pending(self) -> list[dict[str, Any]]:
        """The kept requests, oldest first (unreadable lines are skipped)."""
        path = self.store.path(PENDING_FILE)
        if not path.is_file():
            return []
        entries = []
        for line in path.read_text(encoding="utf-8").split("\n"):
            try:
                entry = json.loads(line) if line.strip() else None
            except ValueError:
                continue
            if isinstance(entry, dict) and entry.get("kind") in ("raise", "note", "close"):
                entries.append(entry)
        return entries

    def retry_pending(self) -> list[TicketOutcome]:
        """Try each kept request again, in order. The ones that fail again stay, with their new error; a
        broken entry is dropped. The tracker is called outside the pending file's lock."""
        outcomes: list[TicketOutcome] = []
        done: set[str] = set()
        errors: dict[str, str] = {}
        for entry in self.pending():
            outcome = self._retry(entry)
            if outcome is None:
                done.add(entry.get("id", ""))
                continue
            outcomes.append(outcome)
            if outcome.action == "pending":
                errors[entry.get("id", "")] = outcome.error
            else:
                done.add(entry.get("id", ""))
        self._update_pending(done, errors)
        return outcomes

    # internals

    def _raise(self, request: TicketRequest) -> TicketOutcome:
        def dedup() -> TicketOutcome:
            found = self.tracker.find(request.signature)
            if found is None:
                created = self.tracker.create(request)
                return TicketOutcome("opened", created, ticket_id=created.id, request=request)
            if found.is_open:
                self.tracker.note(found.id, _repeat_text("seen again", request))
                return TicketOutcome("noted", found, ticket_id=found.id, request=request)
            self.tracker.reopen(found.id, _repeat_text("recurred", request))
            reopened = Ticket(found.id, found.url, "open", found.tracker, found.signature)
            return TicketOutcome("reopened", reopened, ticket_id=found.id, request=request)

        return self._with_lock(dedup)

    def _with_lock(self, action: Callable[[], T]) -> T:
        """One desk at a time per memory store: a find and its create must not race another controller's.
        A lock that cannot be had is a tracker failure like any other (kept, retried)."""
        try:
            with self.store.locked(DESK_LOCK):
                return action()
        except OSError as exc:  # filelock's Timeout is an OSError
            raise TrackerError(f"ticket desk lock: {one_line(exc, 200)}") from None

    def _retry(self, entry: dict[str, Any]) -> TicketOutcome | None:
        kind = entry.get("kind")
        try:
            if kind == "raise":
                request = TicketRequest.from_dict(entry.get("request") or {})
                try:
                    return self._raise(request)
                except TrackerError as exc:
                    return TicketOutcome("pending", error=str(exc), request=request)
            ticket_id, text = str(entry.get("ticket_id", "")), str(entry.get("text", ""))
        except (TypeError, ValueError):
            return None
        try:
            if kind == "note":
                self._with_lock(lambda: self.tracker.note(ticket_id, text))
                return TicketOutcome("noted", ticket_id=ticket_id)
            self._with_lock(lambda: self.tracker.close(ticket_id, text))
            return TicketOutcome("closed", ticket_id=ticket_id)
        except TrackerError as exc:
            return TicketOutcome("pending", error=str(exc), ticket_id=ticket_id)

    def _keep(
        self, entry: dict[str, Any], error: str, ticket_id: str = "", request: TicketRequest | None = None
    ) -> TicketOutcome:
        now = format_time(utcnow())
        entry = {"id": uuid.uuid4().hex, "time": now, **entry, "attempts": 1, "last_try": now, "error": error}
        try:
            with self.store.locked(PENDING_FILE) as path:
                atomic_write(path, _read_text(path) + json.dumps(entry, sort_keys=True) + "\n")
        except OSError as exc:
            error = f"{error}; not kept for a retry: {one_line(exc, 200)}"
        return TicketOutcome("pending", error=error, ticket_id=ticket_id, request=request)

    def _update_pending(self, done: set[str], errors: dict[str, str]) -> None:
        """Drop what was done and record the new errors; entries added meanwhile are kept as they are."""
        if not done and not errors:
            return
        now = format_time(utcnow())
        with self.store.locked(PENDING_FILE) as path:
            kept = []
            for line in _read_text(path).split("\n"):
                if not line.strip():
                    continue
                try:
                    entry = json.loads(line)
                except ValueError:
                    continue
                if not isinstance(entry, dict) or entry.get("id", "") in done:
                    continue
                if entry.get("id", "") in errors:
                    entry.update(
                        error=errors[entry["id"]], last_try=now, attempts=int(entry.get("attempts", 1)) + 1
                    )
                kept.append(json.dumps(entry, sort_keys=True) + "\n")
            if kept:
                atomic_write(path, "".join(kept))
            elif path.exists():
                path.unlink()


def _masked(request: TicketRequest) -> TicketRequest:
    return replace(request, title=mask_secrets(request.title), body=mask_secrets(request.body))


def _read_text(path: Path) -> str:
    return path.read_text(encoding="utf-8") if path.is_file() else ""


def _repeat_text(what: str, request: TicketRequest) -> str:
    links = [link for link in (request.incident, request.failure) if link]
    head = f"{what}: {one_line(request.title, 200)}" + (f" ({', '.join(links)})" if links else "")
    body = request.body.strip()
    if not body:
        return head
    return f"{head}\n\n{body if len(body) <= BODY_IN_NOTE else body[: BODY_IN_NOTE - 1] + '…'}"


# -- settings --------------------------------------------------------------------------------------

SETTINGS_NAME = "aitbc_tracker"
BACKENDS = ("file", "redmine")
KNOWN_KEYS = frozenset(
    {"backend", "url", "project", "api_key", "api_key_file", "timeout", "tracker_id", "priority_id"}
)
PROJECT_RE = re.compile(r"^[a-z][a-z0-9_-]{0,99}$")
DEFAULT_TIMEOUT = 10.0


def tracker_from_settings(settings: Mapping[str, Any] | None, store: MemoryStore) -> Tracker:
    """The tracker that `aitbc_tracker` names: {backend: file|redmine, url, project, api_key | api_key_file,
    timeout, tracker_id, priority_id}. None or {} is the file tracker. A bad value raises ValueError with
    one line that names the key (never its value when it is the key)."""
    if settings is None:
        settings = {}
    if not isinstance(settings, Mapping):
        raise ValueError(f"{SETTINGS_NAME} must be a mapping, not {type(settings).__name__}")
    unknown = sorted(str(key) for key in settings if key not in KNOWN_KEYS)
    if unknown:
        raise ValueError(
            f"{SETTINGS_NAME}.{unknown[0]}: unknown setting (known: {', '.join(sorted(KNOWN_KEYS))})"
        )
    backend = settings.get("backend") or "file"
    if backend not in BACKENDS:
        raise ValueError(
            f"{SETTINGS_NAME}.backend: {str(backend)[:40]!r} is not one of {', '.join(BACKENDS)}"
        )
    if backend == "file":
        return FileTracker(store)
    from .redmine import RedmineTracker  # deferred: python-redmine and requests take 80 ms to import

    return RedmineTracker(redmine_settings(settings))


def redmine_settings(settings: Mapping[str, Any]) -> RedmineSettings:
    url = _text(settings, "url")
    if not re.match(r"^https?://[^\s/]+", url):
        raise ValueError(f"{SETTINGS_NAME}.url: expected an http:// or https:// URL")
    project = _text(settings, "project")
    if not PROJECT_RE.match(project):
        raise ValueError(f"{SETTINGS_NAME}.project: {project[:40]!r} is not a Redmine project identifier")
    from .redmine import RedmineSettings

    return RedmineSettings(
        url=url,
        api_key=_api_key(settings),
        project=project,
        timeout=_timeout(settings.get("timeout")),
        tracker_id=_optional_id(settings, "tracker_id"),
        priority_id=_optional_id(settings, "priority_id"),
    )


def _text(settings: Mapping[str, Any], key: str) -> str:
    value = settings.get(key)
    if value is None or value == "":
        raise ValueError(f"{SETTINGS_NAME}.{key} is required for backend redmine")
    if not isinstance(value, str):
        raise ValueError(f"{SETTINGS_NAME}.{key} must be a string")
    return value.strip()


def _api_key(settings: Mapping[str, Any]) -> str:
    given, path = settings.get("api_key"), settings.get("api_key_file")
    if given and path:
        raise ValueError(f"{SETTINGS_NAME}.api_key and api_key_file: give one, not both")
    if given:
        if isinstance(given, Mapping | list | tuple | int | float | bool):
            raise ValueError(f"{SETTINGS_NAME}.api_key must be a string (or a vault value)")
        key = str(given).strip()  # a vaulted value decrypts on str()
        if "{{" in key or "{%" in key:
            raise ValueError(f"{SETTINGS_NAME}.api_key is an unrendered template")
    elif path:
        key = read_secret_file(str(path), f"{SETTINGS_NAME}.api_key_file")
    else:
        raise ValueError(f"{SETTINGS_NAME}.api_key or api_key_file is required for backend redmine")
    if not key or any(ch.isspace() for ch in key):
        raise ValueError(f"{SETTINGS_NAME}.api_key: empty or not one word")
    return key


def _timeout(value: Any) -> float:
    if value is None:
        return DEFAULT_TIMEOUT
    if isinstance(value, bool) or not isinstance(value, int | float | str):
        raise ValueError(f"{SETTINGS_NAME}.timeout must be a number of seconds")
    try:
        seconds = float(value)
    except ValueError:
        raise ValueError(f"{SETTINGS_NAME}.timeout must be a number of seconds") from None
    if not 0 < seconds <= 300:
        raise ValueError(f"{SETTINGS_NAME}.timeout must be between 0 and 300 seconds")
    return seconds


def _optional_id(settings: Mapping[str, Any], key: str) -> int | None:
    value = settings.get(key)
    if value is None or value == "":
        return None
    if (
        isinstance(value, bool)
        or not isinstance(value, int | str)
        or not str(value).isdigit()
        or int(value) < 1
    ):
        raise ValueError(f"{SETTINGS_NAME}.{key} must be a positive integer (a Redmine id)")
    return int(value)

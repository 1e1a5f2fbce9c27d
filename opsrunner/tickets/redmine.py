"""The Redmine tracker: issues over Redmine's REST API (python-redmine).

A ticket is an issue of one project whose subject starts with the signature's tag,
`[aitbc-ops F-1a2b3c4d] title`; the description ends with the signature and the incident and failure ids.
`find` searches subjects with status_id="*" (Redmine searches open issues only by default) and keeps only
issues whose subject starts with the exact tag. Closing sets a status Redmine calls closed
(/issue_statuses.json), reopening the issue tracker's default status; both are read back, because Redmine
ignores a status change its workflow does not allow.

Every failure (connection, timeout, 401/403/404/422/5xx, an answer that is not Redmine's) is a TrackerError
whose one-line message names the operation and never holds the API key.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any

import requests
from redminelib import Redmine
from redminelib import exceptions as rex

from ..memory import one_line
from ..redact import Redactor
from .base import Ticket, TicketRequest, TrackerError, signature_tag, signature_token

SUBJECT_MAX = 255  # Redmine's column
DESCRIPTION_MAX = 60_000
NOTE_MAX = 60_000
ISSUE_ID_RE = re.compile(r"^[1-9]\d{0,11}$")


@dataclass(frozen=True)
class RedmineSettings:
    url: str
    api_key: str
    project: str
    timeout: float = 10.0
    tracker_id: int | None = None
    priority_id: int | None = None


class RedmineTracker:
    """Issues of one Redmine project."""

    name = "redmine"

    def __init__(self, settings: RedmineSettings) -> None:
        self.settings = settings
        self.url = settings.url.rstrip("/")
        self._redactor = Redactor([settings.api_key])
        self._api = Redmine(self.url, key=settings.api_key, requests={"timeout": settings.timeout})
        self._checked = False
        self._closed_ids: set[int] | None = None

    # the Tracker protocol (each public method runs under `_guard`: any failure is a TrackerError)

    def find(self, signature: str) -> Ticket | None:
        tag = signature_tag(signature)
        with self._guard("search issues"):
            issues = self._api.issue.filter(
                project_id=self.settings.project,
                subject=f"~{signature_token(signature)}",
                status_id="*",
                sort="id",
            )
            # `~` matches anywhere in the subject: keep the issues whose subject starts with the exact tag.
            found = [issue for issue in issues if str(issue.subject).startswith(tag + " ")]
            if not found:
                return None
            closed = self._closed_statuses()
            # An open one first (a second comes only from a race between two controllers), else the newest.
            best = min(found, key=lambda issue: (int(issue.status.id) in closed, -int(issue.id)))
            return Ticket(
                id=str(best.id),
                url=self._issue_url(best.id),
                status="closed" if int(best.status.id) in closed else "open",
                tracker=self.name,
                signature=signature,
            )

    def create(self, request: TicketRequest) -> Ticket:
        fields: dict[str, Any] = {
            "project_id": self.settings.project,
            "subject": _subject(request),
            "description": _description(request),
        }
        if self.settings.tracker_id is not None:
            fields["tracker_id"] = self.settings.tracker_id
        if self.settings.priority_id is not None:
            fields["priority_id"] = self.settings.priority_id
        with self._guard("create issue"):
            issue = self._api.issue.create(**fields)
            return Ticket(
                id=str(int(issue.id)),
                url=self._issue_url(issue.id),
                status="open",
                tracker=self.name,
                signature=request.signature,
            )

    def note(self, ticket_id: str, text: str) -> None:
        issue_id = _issue_id(ticket_id)
        with self._guard("note issue"):
            self._api.issue.update(issue_id, notes=_bounded(text, NOTE_MAX))

    def close(self, ticket_id: str, text: str) -> None:
        issue_id = _issue_id(ticket_id)
        with self._guard("close issue"):
            self._set_status(issue_id, self._closed_status(), f"closed: {text}")

    def reopen(self, ticket_id: str, text: str) -> None:
        issue_id = _issue_id(ticket_id)
        with self._guard("reopen issue"):
            issue = self._api.issue.get(issue_id)
            self._set_status(issue_id, self._open_status(int(issue.tracker.id)), f"reopened: {text}")

    # internals

    @contextmanager
    def _guard(self, what: str) -> Iterator[None]:
        """Map every failure inside to a TrackerError naming `what`. The first use checks the key: Redmine
        answers reads with a wrong key as for an anonymous user, so a bad key would otherwise show only at
        the first write (or as "no ticket")."""
        try:
            if not self._checked:
                self._api.user.get("current")
                self._checked = True
            yield
        except TrackerError:
            raise
        except rex.AuthError:
            raise self._error(what, "authentication failed (HTTP 401): check the API key") from None
        except rex.ForbiddenError:
            raise self._error(what, "forbidden (HTTP 403): the key's user lacks the permission") from None
        except rex.ResourceNotFoundError:
            raise self._error(
                what, f"not found (HTTP 404): project {self.settings.project!r} or issue"
            ) from None
        except rex.ValidationError as exc:
            raise self._error(what, f"refused (HTTP 422): {exc}") from None
        except rex.ServerError:
            raise self._error(what, "Redmine server error (HTTP 5xx)") from None
        except rex.BaseRedmineError as exc:
            raise self._error(what, f"{type(exc).__name__}: {exc}") from None
        except requests.Timeout:
            raise self._error(what, f"no answer within {self.settings.timeout:g} s") from None
        except requests.RequestException as exc:
            raise self._error(what, f"{type(exc).__name__}: {_reason(exc)}") from None
        except (ValueError, KeyError, AttributeError, TypeError) as exc:  # not an answer of Redmine's
            raise self._error(what, f"unexpected answer: {type(exc).__name__}: {exc}") from None

    def _error(self, what: str, text: str) -> TrackerError:
        message = f"redmine {self.url}: {what}: {text}"
        return TrackerError(one_line(self._redactor.redact_text(message), 300))

    def _statuses(self) -> list[Any]:
        return list(self._api.issue_status.all())

    def _closed_statuses(self) -> set[int]:
        if self._closed_ids is None:
            self._closed_ids = {int(s.id) for s in self._statuses() if getattr(s, "is_closed", False)}
        return self._closed_ids

    def _closed_status(self) -> int:
        """The status called Closed, else the first closed one."""
        statuses = [s for s in self._statuses() if getattr(s, "is_closed", False)]
        if not statuses:
            raise self._error("close issue", "Redmine has no closed issue status")
        named = [s for s in statuses if str(s.name).lower() == "closed"]
        return int((named or statuses)[0].id)

    def _open_status(self, tracker_id: int) -> int:
        """The default status of the issue's tracker (Redmine >= 3.0), else the first open status."""
        for tracker in self._api.tracker.all():
            if int(tracker.id) == tracker_id:
                status = getattr(tracker, "default_status", None)  # python-redmine gives a dict
                found = status.get("id") if isinstance(status, dict) else getattr(status, "id", None)
                if found is not None:
                    return int(found)
        opened = [s for s in self._statuses() if not getattr(s, "is_closed", False)]
        if not opened:
            raise self._error("reopen issue", "Redmine has no open issue status")
        return int(opened[0].id)

    def _set_status(self, issue_id: int, status_id: int, text: str) -> None:
        """Set the status with a note, then read it back: Redmine answers 204 and keeps the old status when
        its workflow does not allow the change for the key's user."""
        self._api.issue.update(issue_id, status_id=status_id, notes=_bounded(text, NOTE_MAX))
        issue = self._api.issue.get(issue_id)
        if int(issue.status.id) != status_id:
            raise TrackerError(
                one_line(
                    f"redmine {self.url}: issue {issue_id} status is still {str(issue.status.name)!r}: "
                    "the workflow does not allow the change for this key's user",
                    300,
                )
            )

    def _issue_url(self, issue_id: object) -> str:
        return f"{self.url}/issues/{issue_id}"


def _issue_id(ticket_id: str) -> int:
    if not ISSUE_ID_RE.match(ticket_id):
        raise TrackerError(f"not a Redmine issue id: {ticket_id[:40]!r}")
    return int(ticket_id)


def _subject(request: TicketRequest) -> str:
    tag = signature_tag(request.signature)
    return one_line(f"{tag} {one_line(request.title, SUBJECT_MAX)}", SUBJECT_MAX)


def _description(request: TicketRequest) -> str:
    links = [
        f"Signature: {request.signature}",
        f"Incident: {request.incident or '-'}",
        f"Failure: {request.failure or '-'} (ai-memory/failures/failure-archive.md)",
        "Raised by aitbc-ops.",
    ]
    body = _bounded(request.body.strip(), DESCRIPTION_MAX)
    return (body + "\n\n---\n" if body else "") + "\n".join(links)


def _bounded(text: str, limit: int) -> str:
    return text if len(text) <= limit else text[: limit - 1] + "…"


def _reason(exc: requests.RequestException) -> str:
    """The innermost reason of a requests error, without the pool's repr noise."""
    text = str(exc)
    match = re.search(r"\[Errno -?\d+\] [^'\")]+", text)
    return match.group(0) if match else text

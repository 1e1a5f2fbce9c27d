"""The tracker interface: what a backend (file, Redmine) does with tickets for developers.

A ticket is keyed by a failure signature that the caller computes (a stable text, e.g. a hash of
host|service|check); the desk (desk.py) deduplicates on it. Every backend failure, whatever its cause
(connection, authentication, an HTTP error, a broken file), is a TrackerError with a one-line message that
holds no secret.
"""

from __future__ import annotations

import hashlib
import re
from dataclasses import asdict, dataclass
from typing import Any, Protocol, runtime_checkable

TICKET_STATUSES = ("open", "closed")
# Ids the caller links to; empty when there is none.
INCIDENT_RE = re.compile(r"^INC-\d{8}-\d{3,}$")
FAILURE_RE = re.compile(r"^F-[0-9a-f]{8}$")
# A signature is one line of printable text; a short token goes into a tracker's subject as it is.
SIGNATURE_MAX = 200
SIGNATURE_RE = re.compile(rf"^[^\x00-\x1f\x7f\u2028\u2029\x85]{{1,{SIGNATURE_MAX}}}$")
TOKEN_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._:-]{0,39}$")
TAG_PREFIX = "aitbc-ops"


class TrackerError(Exception):
    """A tracker could not do what was asked. The message is one masked line."""


@dataclass(frozen=True)
class TicketRequest:
    """What the caller wants a developer to look at. `signature` deduplicates; `incident` (INC-...) and
    `failure` (F-..., the failure-archive entry) are the links the ticket keeps."""

    signature: str
    title: str
    body: str
    incident: str = ""
    failure: str = ""

    def __post_init__(self) -> None:
        if not SIGNATURE_RE.match(self.signature) or self.signature != self.signature.strip():
            raise ValueError(f"ticket signature must be one line of 1-{SIGNATURE_MAX} characters")
        if not self.title.strip():
            raise ValueError("ticket title is empty")
        if self.incident and not INCIDENT_RE.match(self.incident):
            raise ValueError(f"not an incident id: {self.incident[:40]!r}")
        if self.failure and not FAILURE_RE.match(self.failure):
            raise ValueError(f"not a failure-archive id: {self.failure[:40]!r}")

    def to_dict(self) -> dict[str, str]:
        return asdict(self)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> TicketRequest:
        return cls(
            **{key: str(data.get(key, "")) for key in ("signature", "title", "body", "incident", "failure")}
        )


@dataclass(frozen=True)
class Ticket:
    id: str
    url: str
    status: str  # open | closed
    tracker: str  # file | redmine
    signature: str

    @property
    def is_open(self) -> bool:
        return self.status == "open"

    def to_dict(self) -> dict[str, str]:
        return asdict(self)


@runtime_checkable
class Tracker(Protocol):
    """A place where tickets live. Each method raises TrackerError when the tracker fails."""

    name: str

    def find(self, signature: str) -> Ticket | None:
        """The ticket of this signature, open or closed (an open one first), or None."""
        ...

    def create(self, request: TicketRequest) -> Ticket: ...

    def note(self, ticket_id: str, text: str) -> None: ...

    def reopen(self, ticket_id: str, text: str) -> None: ...

    def close(self, ticket_id: str, text: str) -> None: ...


def signature_token(signature: str) -> str:
    """A short token for the signature: itself when it is short and plain (F-1a2b3c4d), else S- and the
    first 12 hex digits of its SHA-256."""
    if TOKEN_RE.match(signature):
        return signature
    return "S-" + hashlib.sha256(signature.encode()).hexdigest()[:12]


def signature_tag(signature: str) -> str:
    """The tag that starts a ticket's subject: `[aitbc-ops F-1a2b3c4d]`."""
    return f"[{TAG_PREFIX} {signature_token(signature)}]"

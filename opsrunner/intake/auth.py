"""Authentication of the intake's writes: a bearer token and/or a Standard Webhooks signature.

A request passes when it carries a valid credential of a configured kind and no invalid one. A signed
request is also checked against the ids already accepted (SeenIds): Standard Webhooks senders retry with
the same webhook-id but a new timestamp and so a new signature, while a replay repeats the id AND the
signature. A replay is refused (401); an authentic retry of an accepted id is a duplicate (200, nothing
queued again).
"""

from __future__ import annotations

import enum
import hashlib
import hmac
import json
import time
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

from standardwebhooks.webhooks import Webhook, WebhookVerificationError

from ..memory import atomic_write
from ..settings import BadInput

# standardwebhooks refuses timestamps more than 5 minutes away from now (both ways).
TIMESTAMP_WINDOW_S = 300.0
# Accepted ids are kept an hour: far past the window (a replay needs a timestamp inside it), and long
# enough that a sender's retries within the hour stay idempotent.
SEEN_TTL_S = 3600.0
SEEN_MAX = 5000
MSG_ID_MAX = 256


def webhook_for(secret: str) -> Webhook:
    """The verifier of a Standard Webhooks secret (base64, optionally whsec_-prefixed). Raises BadInput."""
    try:
        return Webhook(secret)
    except Exception as exc:  # binascii.Error, EmptyWebhookSecretError
        raise BadInput(
            f"the signing secret is not a Standard Webhooks secret (whsec_<base64>): {exc}"
        ) from None


class Verdict(enum.Enum):
    ACCEPT = "accept"
    DUPLICATE = "duplicate"  # an authentic retry of an id already accepted
    REJECT = "reject"


@dataclass(frozen=True)
class AuthResult:
    verdict: Verdict
    reason: str = ""
    msg_id: str = ""  # a signed request's webhook-id, remembered once its reports are accepted
    signature: str = ""  # a digest of its webhook-signature header


class SeenIds:
    """The webhook ids accepted lately with their signature digest, in a file that survives a restart."""

    def __init__(self, path: Path, ttl: float = SEEN_TTL_S, limit: int = SEEN_MAX) -> None:
        self.path = path
        self.ttl = ttl
        self.limit = limit
        self.ids: dict[str, tuple[str, float]] = {}
        self.load()

    def load(self) -> None:
        try:
            data = json.loads(self.path.read_text())
        except (OSError, ValueError):
            return  # none yet, or torn beyond use: replay protection starts afresh
        if isinstance(data, dict):
            for key, value in data.items():
                if isinstance(value, list) and len(value) == 2:
                    self.ids[str(key)] = (str(value[0]), float(value[1]))
        self.prune()

    def prune(self, now: float | None = None) -> None:
        floor = (now or time.time()) - self.ttl
        self.ids = {k: v for k, v in self.ids.items() if v[1] >= floor}
        if len(self.ids) > self.limit:  # oldest out first
            kept = sorted(self.ids.items(), key=lambda item: item[1][1])[-self.limit :]
            self.ids = dict(kept)

    def get(self, msg_id: str) -> str | None:
        seen = self.ids.get(msg_id)
        if seen is None or seen[1] < time.time() - self.ttl:
            return None
        return seen[0]

    def add(self, msg_id: str, signature: str) -> None:
        """Hold an id in memory (its request is being stored); save() or forget() follows."""
        self.ids[msg_id] = (signature, time.time())

    def forget(self, msg_id: str) -> None:
        self.ids.pop(msg_id, None)

    def save(self) -> None:
        self.prune()
        text = json.dumps({k: list(v) for k, v in self.ids.items()}, separators=(",", ":"))
        atomic_write(self.path, text, mode=0o600)

    def remember(self, msg_id: str, signature: str) -> None:
        self.add(msg_id, signature)
        self.save()


def signature_digest(header: str) -> str:
    return hashlib.sha256(header.encode()).hexdigest()


class Authenticator:
    """Checks a write's credentials (headers with lowercase names) against the configured kinds."""

    def __init__(self, token: str | None, signing_secret: str | None, seen: SeenIds) -> None:
        if not token and not signing_secret:
            raise BadInput("the intake needs authentication: give --token-file and/or --signing-secret-file")
        self.token = token.encode() if token else None
        self.webhook = webhook_for(signing_secret) if signing_secret else None
        self.seen = seen

    def bearer_ok(self, headers: Mapping[str, str]) -> bool | None:
        """True or False for a bearer token presented where tokens are configured, else None."""
        value = headers.get("authorization")
        if self.token is None or value is None:
            return None
        scheme, _, presented = value.partition(" ")
        if scheme.lower() != "bearer":
            return False
        return hmac.compare_digest(presented.strip().encode(), self.token)

    def check(self, headers: Mapping[str, str], body: bytes) -> AuthResult:
        signed = "webhook-signature" in headers or "webhook-id" in headers
        if signed and self.webhook is not None:
            result = self.check_signature(headers, body)
            if result.verdict is Verdict.REJECT or self.bearer_ok(headers) is False:
                return AuthResult(Verdict.REJECT, result.reason or "wrong bearer token")
            return result
        bearer = self.bearer_ok(headers)
        if bearer:
            return AuthResult(Verdict.ACCEPT)
        if bearer is False:
            return AuthResult(Verdict.REJECT, "wrong bearer token")
        return AuthResult(
            Verdict.REJECT, "no credential: a bearer token or a Standard Webhooks signature is needed"
        )

    def check_signature(self, headers: Mapping[str, str], body: bytes) -> AuthResult:
        assert self.webhook is not None
        msg_id = headers.get("webhook-id", "")
        if len(msg_id) > MSG_ID_MAX:
            return AuthResult(Verdict.REJECT, "webhook-id is too long")
        try:
            self.webhook.verify(body, dict(headers), json_parse=False)
        except WebhookVerificationError as exc:
            return AuthResult(Verdict.REJECT, f"bad signature: {exc}")
        digest = signature_digest(headers.get("webhook-signature", ""))
        known = self.seen.get(msg_id)
        if known is None:
            return AuthResult(Verdict.ACCEPT, msg_id=msg_id, signature=digest)
        if hmac.compare_digest(known, digest):
            return AuthResult(Verdict.REJECT, f"replayed message {msg_id[:64]!r}")
        return AuthResult(Verdict.DUPLICATE, msg_id=msg_id, signature=digest)

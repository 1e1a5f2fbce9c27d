"""What every tool call passes through: one masker for every result, and one daily-memory entry per call.

The masker is seeded like a run's: the inventory's secrets (vault values, secret-named variables, through
the same discovery a run uses) and this process's secret-named environment variables; then the collection's
masker catches what looks secret whatever its name (password=..., tokens, credentials in URLs).
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ..ansible_secrets import redactor_for_environment
from ..memory import DailyEntry, MemoryStore, one_line, utcnow
from ..redact import Redactor
from ..respond import InventoryPolicy
from ..settings import Settings

CLIENT_RE = re.compile(r"[^A-Za-z0-9_.@-]")
CLIENT_MAX = 60  # mcp:<name> is a plan's approver name: 64 at most
UNKNOWN_CLIENT = "unknown"


def client_name(raw: object) -> str:
    """The MCP client's name (clientInfo.name of its initialize request), made safe for records: it comes
    from the peer, so it is reduced to name characters and bounded."""
    text = CLIENT_RE.sub("_", str(raw or "").strip())[:CLIENT_MAX].strip("_")
    return text or UNKNOWN_CLIENT


def seeded_redactor(settings: Settings, inventory: Path, extra: tuple[str, ...] = ()) -> tuple[Redactor, str]:
    """A Redactor seeded like a run's, and why the inventory's secrets could not be read ("" when they
    were). `extra`: more values to hide (the HTTP token)."""
    policy = InventoryPolicy.load(settings, inventory)
    redactor = policy.redactor
    redactor.add(redactor_for_environment().secrets)
    redactor.add([value for value in extra if value])
    return redactor, policy.error


@dataclass
class Refused:
    """A call the policy or a budget refused: nothing was changed. Not an error of the caller's input."""

    message: str
    data: dict[str, Any] = field(default_factory=dict)


@dataclass
class Guard:
    """Masks results and records calls (one DailyEntry, event "mcp", per tool call)."""

    store: MemoryStore
    redactor: Redactor

    def mask(self, text: str) -> str:
        return self.redactor.redact_text(text)

    def render(self, value: Any) -> str:
        """The text an agent gets: JSON of the value with every string masked, keys too (JSON text is not
        masked as a whole: the masker's patterns could swallow a closing quote and break it)."""
        plain = json.loads(json.dumps(value, default=str))  # only dicts, lists and scalars from here
        return json.dumps(self.redactor.redact_in_place(self._keys(plain)), indent=1, sort_keys=True)

    def _keys(self, value: Any) -> Any:
        if isinstance(value, dict):
            return {self.mask(str(key)): self._keys(item) for key, item in value.items()}
        if isinstance(value, list):
            return [self._keys(item) for item in value]
        return value

    def record(self, client: str, tool: str, args: dict[str, Any], outcome: str, summary: str) -> None:
        host = args.get("host")
        entry = DailyEntry(
            time=utcnow(),
            event="mcp",
            title=f"{tool} by mcp:{client}",
            outcome=outcome,
            hosts=[self.mask(str(host))] if isinstance(host, str) and host else [],
            actions=self.mask(one_line(f"{tool} {json.dumps(args, sort_keys=True, default=str)}")),
            details=[self.mask(one_line(summary))] if summary else [],
            source="mcp",
        )
        self.store.ensure_layout()
        self.store.append_daily(entry)

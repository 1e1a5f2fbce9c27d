"""A report of a problem from outside the heartbeat: one Alertmanager alert, an agent's event, or a person's
`opsrunner incidents open`. The intake's parsers and the CLI make them; incident work (intake/assess.py)
takes them. Values are validated where they are made: this is a plain, trusted record.
"""

from __future__ import annotations

import datetime as dt
import re
from dataclasses import dataclass, field

from .memory import utcnow

SOURCES = ("alertmanager", "agent", "manual", "heartbeat", "intake")  # intake: its dead-man's switch
SEVERITIES = ("critical", "warning", "info")
CATEGORIES = ("ops", "security", "code")
STATUSES = ("firing", "resolved")
# Host, service and check names that may key an incident: inventory-like names, no path or markup.
NAME_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.:@ -]{0,127}$")
FINGERPRINT_RE = re.compile(r"^[A-Za-z0-9_.:-]{1,128}$")


@dataclass(frozen=True)
class Report:
    source: str  # one of SOURCES
    host: str
    service: str
    check: str
    summary: str
    severity: str = "critical"
    category: str = "ops"
    fingerprint: str = ""  # the sender's identity of this problem (Alertmanager's alert fingerprint)
    status: str = "firing"
    labels: dict[str, str] = field(default_factory=dict)
    received: dt.datetime = field(default_factory=utcnow)

    @property
    def firing(self) -> bool:
        return self.status == "firing"

    def describe(self) -> str:
        what = f"{self.source} {self.status} {self.severity} {self.category}"
        return f"{what}: {self.host} {self.service}: {self.summary}"

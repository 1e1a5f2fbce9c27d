"""The change policy: `ops-policy.yml` beside the inventory (issue 15).

Where: for an inventory file, the same folder; for an inventory folder, inside it. No file, no policy:
every action runs directly, as before, with no freeze window and any package allowed.

A file that exists is validated on load (pydantic, unknown keys refused); a mistake is one PolicyError
line naming the file and the field (`ops-policy.yml:freeze.1.duration: ...`), exit 2. What it says:

- `require_plan`: the actions that need an approved plan (default: DEFAULT_REQUIRE_PLAN; `[]`: none);
- `packages.allowed`: fnmatch patterns of packages that install without a plan;
- `freeze`: windows in which deploys and restores are refused, by dates (`start`/`end`) or recurring
  (`cron` in UTC + `duration`: the window starts at each fire time and lasts `duration`);
- `approvers` (empty: anyone), `approval_ttl` (default 24h), `maintenance_timeout` (default 2h).

Durations: `90s`, `90m`, `24h`, `7d`, `1w`, combinations (`1h30m`), or a plain number of seconds.
"""

from __future__ import annotations

import datetime as dt
import fnmatch
import hashlib
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml
from pydantic import (
    BaseModel,
    ConfigDict,
    StrictInt,
    StrictStr,
    ValidationError,
    field_validator,
    model_validator,
)

from .settings import BadInput

POLICY_FILE = "ops-policy.yml"
ACTIONS = ("deploy", "rollback", "restore", "config", "devnet-reset", "packages", "service-stop")
# What a policy file that does not say `require_plan` asks for (rollback is recovery: it stays direct).
DEFAULT_REQUIRE_PLAN = ("deploy", "restore", "config", "devnet-reset", "packages", "service-stop")
DEFAULT_APPROVAL_TTL = dt.timedelta(hours=24)
DEFAULT_MAINTENANCE_TIMEOUT = dt.timedelta(hours=2)

DURATION_RE = re.compile(r"^(?:\d+[smhdw])+$")
DURATION_PART_RE = re.compile(r"(\d+)([smhdw])")
UNIT_SECONDS = {"s": 1, "m": 60, "h": 3600, "d": 86400, "w": 604800}


class PolicyError(BadInput):
    """The policy file is unreadable or breaks its schema: one line, file:field: problem (exit 2)."""


def parse_duration(value: Any) -> dt.timedelta:
    """'24h', '90m', '1h30m', '3600' or 3600 (seconds) -> timedelta; above zero, else ValueError."""
    if isinstance(value, bool):
        raise ValueError("a duration like 24h, 90m or a number of seconds, not a boolean")
    if isinstance(value, int | float):
        seconds = float(value)
    elif isinstance(value, str) and value.strip().isdigit():
        seconds = float(value.strip())
    elif isinstance(value, str) and DURATION_RE.match(value.strip()):
        seconds = sum(int(n) * UNIT_SECONDS[u] for n, u in DURATION_PART_RE.findall(value.strip()))
    else:
        raise ValueError(f"bad duration {value!r}: use e.g. 90s, 90m, 24h, 7d, 1h30m or seconds")
    if seconds <= 0:
        raise ValueError(f"bad duration {value!r}: must be above zero")
    return dt.timedelta(seconds=seconds)


def as_utc(value: dt.datetime | dt.date) -> dt.datetime:
    """Dates are midnight UTC; a time without a zone is UTC."""
    if not isinstance(value, dt.datetime):
        value = dt.datetime(value.year, value.month, value.day)
    return value.replace(tzinfo=dt.UTC) if value.tzinfo is None else value.astimezone(dt.UTC)


# -- the file's schema -----------------------------------------------------------------------------


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid")


class _Packages(_Strict):
    allowed: list[str] = []


class _Freeze(_Strict):
    start: dt.datetime | dt.date | None = None
    end: dt.datetime | dt.date | None = None
    cron: str | None = None
    duration: StrictStr | StrictInt | None = None
    reason: str = "freeze"

    @field_validator("cron")
    @classmethod
    def _cron(cls, value: str | None) -> str | None:
        from croniter import croniter

        if value is not None and not croniter.is_valid(value):
            raise ValueError(f"bad cron expression {value!r}")
        return value

    @field_validator("duration")
    @classmethod
    def _duration(cls, value: str | int | None) -> str | int | None:
        if value is not None:
            parse_duration(value)
        return value

    @model_validator(mode="after")
    def _shape(self) -> _Freeze:
        dated, recurring = self.start is not None or self.end is not None, self.cron is not None
        if dated and recurring:
            raise ValueError("a freeze has either start/end or cron/duration, not both")
        if recurring and self.duration is None:
            raise ValueError("a cron freeze needs a duration (e.g. 62h)")
        if not recurring:
            if self.start is None or self.end is None:
                raise ValueError("a freeze needs start and end (or cron and duration)")
            if self.duration is not None:
                raise ValueError("duration goes with cron; a dated freeze has start and end")
            if as_utc(self.end) <= as_utc(self.start):
                raise ValueError("end must be after start")
        return self


class _PolicyFile(_Strict):
    require_plan: list[str] = list(DEFAULT_REQUIRE_PLAN)
    packages: _Packages = _Packages()
    freeze: list[_Freeze] = []
    approvers: list[str] = []
    approval_ttl: StrictStr | StrictInt = "24h"
    maintenance_timeout: StrictStr | StrictInt = "2h"

    @field_validator("require_plan")
    @classmethod
    def _actions(cls, value: list[str]) -> list[str]:
        unknown = [name for name in value if name not in ACTIONS]
        if unknown:
            raise ValueError(f"unknown action(s) {', '.join(unknown)} (known: {', '.join(ACTIONS)})")
        return value

    @field_validator("approval_ttl", "maintenance_timeout")
    @classmethod
    def _duration(cls, value: str | int) -> str | int:
        parse_duration(value)
        return value

    @field_validator("approvers")
    @classmethod
    def _approvers(cls, value: list[str]) -> list[str]:
        if any(not name.strip() for name in value):
            raise ValueError("an approver's name cannot be empty")
        return value


# -- the policy ------------------------------------------------------------------------------------


@dataclass(frozen=True)
class FreezeWindow:
    """One occurrence of a freeze: deploys and restores are refused from start to end."""

    start: dt.datetime
    end: dt.datetime
    reason: str


@dataclass(frozen=True)
class FreezeRule:
    """A freeze as the file says it: dated (start/end) or recurring (cron + duration)."""

    reason: str
    start: dt.datetime | None = None
    end: dt.datetime | None = None
    cron: str = ""
    duration: dt.timedelta = dt.timedelta(0)

    def window_at(self, at: dt.datetime) -> FreezeWindow | None:
        """The occurrence that holds `at` (start inclusive, end exclusive), if any."""
        at = as_utc(at)
        if not self.cron:
            assert self.start is not None and self.end is not None
            return FreezeWindow(self.start, self.end, self.reason) if self.start <= at < self.end else None
        start = last_fire(self.cron, at)
        end = start + self.duration
        return FreezeWindow(start, end, self.reason) if at < end else None


def last_fire(expression: str, at: dt.datetime) -> dt.datetime:
    """The most recent fire time of a cron expression at or before `at` (UTC)."""
    from croniter import croniter

    # get_prev is strictly before its start: start just after `at`, so a fire time equal to it counts.
    fired = croniter(expression, at + dt.timedelta(microseconds=1)).get_prev(dt.datetime)
    return as_utc(fired).replace(fold=0)


@dataclass
class Policy:
    """What the inventory's ops-policy.yml allows; `Policy.load(inventory)`."""

    path: Path | None = None
    require_plan: frozenset[str] = frozenset()
    allowed_packages: tuple[str, ...] = ()
    freezes: list[FreezeRule] = field(default_factory=list)
    approvers: tuple[str, ...] = ()
    approval_ttl: dt.timedelta = DEFAULT_APPROVAL_TTL
    maintenance_timeout: dt.timedelta = DEFAULT_MAINTENANCE_TIMEOUT
    raw: bytes = field(default=b"", repr=False)

    @staticmethod
    def file_for(inventory: Path) -> Path | None:
        """Where the policy of an inventory lives (None for an inventory that is not a path here)."""
        inventory = Path(inventory)
        if inventory.is_dir():
            return inventory / POLICY_FILE
        if inventory.is_file():
            return inventory.parent / POLICY_FILE
        return None

    @classmethod
    def load(cls, inventory: Path) -> Policy:
        """The policy beside `inventory`; no file: no policy (everything direct). PolicyError if bad."""
        path = cls.file_for(inventory)
        if path is None or not path.exists():
            return cls()
        return cls.from_file(path)

    @classmethod
    def from_file(cls, path: Path) -> Policy:
        try:
            raw = path.read_bytes()
            data = yaml.safe_load(raw)
        except OSError as exc:
            raise PolicyError(f"{path}: cannot read it: {exc.strerror or exc}") from None
        except yaml.YAMLError as exc:
            mark = getattr(exc, "problem_mark", None)
            where = f":{mark.line + 1}" if mark is not None else ""
            problem = getattr(exc, "problem", None) or "not valid YAML"
            raise PolicyError(f"{path}{where}: {problem}") from None
        if data is None:
            data = {}
        if not isinstance(data, dict):
            raise PolicyError(f"{path}: the policy is a mapping (require_plan, packages, freeze, ...)")
        try:
            parsed = _PolicyFile.model_validate(data)
        except ValidationError as exc:
            raise PolicyError(first_error(path, exc)) from None
        return cls.from_model(path, parsed, raw)

    @classmethod
    def from_model(cls, path: Path, parsed: _PolicyFile, raw: bytes) -> Policy:
        return cls(
            path=path,
            require_plan=frozenset(parsed.require_plan),
            allowed_packages=tuple(parsed.packages.allowed),
            freezes=[freeze_rule(item) for item in parsed.freeze],
            approvers=tuple(name.strip() for name in parsed.approvers),
            approval_ttl=parse_duration(parsed.approval_ttl),
            maintenance_timeout=parse_duration(parsed.maintenance_timeout),
            raw=raw,
        )

    def needs_plan(self, action: str) -> bool:
        if action not in ACTIONS:
            raise ValueError(f"unknown action {action!r}")
        return action in self.require_plan

    def package_allowed(self, name: str) -> bool:
        """May `name` be installed without a plan: packages need no plan here, or it is on the allow-list."""
        if not self.needs_plan("packages"):
            return True
        return any(fnmatch.fnmatchcase(name, pattern) for pattern in self.allowed_packages)

    def frozen(self, at: dt.datetime) -> FreezeWindow | None:
        """The freeze window holding `at` (the one that ends last when several do), else None."""
        windows = [w for w in (rule.window_at(at) for rule in self.freezes) if w is not None]
        return max(windows, key=lambda w: w.end) if windows else None

    def may_approve(self, name: str) -> bool:
        return bool(name.strip()) and (not self.approvers or name.strip() in self.approvers)

    def digest(self) -> str:
        """sha256 of the file's bytes, "" without a file: a plan's inputs include it."""
        return hashlib.sha256(self.raw).hexdigest() if self.path is not None else ""


def freeze_rule(item: _Freeze) -> FreezeRule:
    if item.cron:
        assert item.duration is not None
        return FreezeRule(reason=item.reason, cron=item.cron, duration=parse_duration(item.duration))
    assert item.start is not None and item.end is not None
    return FreezeRule(reason=item.reason, start=as_utc(item.start), end=as_utc(item.end))


def first_error(path: Path, exc: ValidationError) -> str:
    """file:field: problem, for the first error pydantic found (the field as a dotted path)."""
    error = exc.errors(include_url=False)[0]
    # Union members add their type names to the location (str, int, datetime...): not fields of the file.
    parts = [str(p) for p in error["loc"] if not (isinstance(p, str) and p in _TYPE_TAGS)]
    where = ".".join(parts) or "(top)"
    message = str(error["msg"]).removeprefix("Value error, ")
    if error["type"] == "extra_forbidden":
        message = "unknown key"
    elif parts and parts[-1] in DURATION_FIELDS and error["type"] in ("string_type", "int_type"):
        message = "a duration like 90m, 24h, 1h30m or a number of seconds"
    return f"{path}:{where}: {message}"


DURATION_FIELDS = ("duration", "approval_ttl", "maintenance_timeout")
_TYPE_TAGS = frozenset({"str", "int", "datetime", "date", "float", "bool", "list[str]", "none"})

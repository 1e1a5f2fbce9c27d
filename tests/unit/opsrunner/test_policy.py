"""ops-policy.yml: parsing, defaults, each bad field named, durations, dated and cron freeze windows."""

from __future__ import annotations

import datetime as dt
from pathlib import Path

import pytest

from opsrunner.policy import ACTIONS, DEFAULT_REQUIRE_PLAN, Policy, PolicyError, parse_duration

UTC = dt.UTC

GOOD = """
require_plan: [deploy, restore, packages]
packages:
  allowed: [jq, "python3-*"]
freeze:
  - {start: 2026-12-24T00:00:00Z, end: 2026-12-27, reason: holidays}
  - {cron: "0 18 * * 5", duration: 62h, reason: weekend}
approvers: [alice, "mcp:claude"]
approval_ttl: 12h
maintenance_timeout: 90m
"""


def write(tmp_path: Path, text: str) -> Path:
    (tmp_path / "ops-policy.yml").write_text(text)
    inventory = tmp_path / "hosts.yml"
    inventory.write_text("all: {}\n")
    return inventory


def at(*parts: int) -> dt.datetime:
    return dt.datetime(*parts, tzinfo=UTC)


def test_no_file_is_no_policy(tmp_path: Path) -> None:
    inventory = tmp_path / "hosts.yml"
    inventory.write_text("all: {}\n")
    policy = Policy.load(inventory)
    assert policy.path is None and policy.digest() == ""
    assert not any(policy.needs_plan(action) for action in ACTIONS)
    assert policy.package_allowed("anything") and policy.may_approve("anyone")
    assert policy.frozen(at(2026, 12, 25)) is None


def test_a_good_file(tmp_path: Path) -> None:
    policy = Policy.load(write(tmp_path, GOOD))
    assert policy.path == tmp_path / "ops-policy.yml"
    assert policy.require_plan == {"deploy", "restore", "packages"}
    assert policy.needs_plan("deploy") and not policy.needs_plan("config")
    assert policy.package_allowed("jq") and policy.package_allowed("python3-yaml")
    assert not policy.package_allowed("nginx") and not policy.package_allowed("jq2")
    assert policy.may_approve("alice") and policy.may_approve("mcp:claude") and not policy.may_approve("eve")
    assert policy.approval_ttl == dt.timedelta(hours=12)
    assert policy.maintenance_timeout == dt.timedelta(minutes=90)
    assert len(policy.digest()) == 64


def test_an_inventory_folder_holds_its_policy(tmp_path: Path) -> None:
    (tmp_path / "ops-policy.yml").write_text("approvers: [bob]\n")
    assert Policy.load(tmp_path).approvers == ("bob",)


def test_defaults_when_the_file_exists(tmp_path: Path) -> None:
    policy = Policy.load(write(tmp_path, "# nothing but a comment\n"))
    assert policy.require_plan == frozenset(DEFAULT_REQUIRE_PLAN)
    assert not policy.needs_plan("rollback")
    assert not policy.package_allowed("jq")  # packages need a plan and nothing is allowed
    assert policy.approval_ttl == dt.timedelta(hours=24)
    assert policy.maintenance_timeout == dt.timedelta(hours=2)
    assert Policy.load(write(tmp_path, "require_plan: []\n")).package_allowed("nginx")


def test_the_digest_follows_the_bytes(tmp_path: Path) -> None:
    first = Policy.load(write(tmp_path, "approvers: [a]\n")).digest()
    assert Policy.load(write(tmp_path, "approvers: [a]\n")).digest() == first
    assert Policy.load(write(tmp_path, "approvers: [a] \n")).digest() != first


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("bogus: 1\n", "ops-policy.yml:bogus: unknown key"),
        ("packages: {allow: [jq]}\n", "ops-policy.yml:packages.allow: unknown key"),
        ("packages: {allowed: [1]}\n", "ops-policy.yml:packages.allowed.0:"),
        ("require_plan: [deploy, nuke]\n", "ops-policy.yml:require_plan: unknown action(s) nuke"),
        ("require_plan: deploy\n", "ops-policy.yml:require_plan:"),
        ("approvers: ['']\n", "ops-policy.yml:approvers: an approver's name cannot be empty"),
        ("approval_ttl: 0\n", "ops-policy.yml:approval_ttl: bad duration 0"),
        ("approval_ttl: 2x\n", "ops-policy.yml:approval_ttl: bad duration '2x'"),
        ("maintenance_timeout: true\n", "ops-policy.yml:maintenance_timeout: a duration like"),
        ("freeze: [{cron: 'x y', duration: 1h}]\n", "ops-policy.yml:freeze.0.cron: bad cron expression"),
        ("freeze: [{cron: '0 18 * * 5'}]\n", "ops-policy.yml:freeze.0: a cron freeze needs a duration"),
        ("freeze: [{cron: '0 18 * * 5', duration: 6x}]\n", "ops-policy.yml:freeze.0.duration: bad duration"),
        ("freeze: [{start: 2026-01-02}]\n", "ops-policy.yml:freeze.0: a freeze needs start and end"),
        (
            "freeze: [{start: 2026-01-02, end: 2026-01-01}]\n",
            "ops-policy.yml:freeze.0: end must be after start",
        ),
        ("freeze: [{start: nope, end: 2026-01-01}]\n", "ops-policy.yml:freeze.0.start:"),
        (
            "freeze: [{start: 2026-01-01, end: 2026-01-02, cron: '* * * * *', duration: 1h}]\n",
            "ops-policy.yml:freeze.0: a freeze has either start/end or cron/duration",
        ),
        (
            "freeze: [{start: 2026-01-01, end: 2026-01-02, when: x}]\n",
            "ops-policy.yml:freeze.0.when: unknown key",
        ),
        ("- a list\n", "ops-policy.yml: the policy is a mapping"),
        ("[1\n", "ops-policy.yml:2:"),
    ],
)
def test_a_bad_file_is_one_line_naming_the_field(tmp_path: Path, text: str, expected: str) -> None:
    with pytest.raises(PolicyError) as caught:
        Policy.load(write(tmp_path, text))
    message = str(caught.value)
    assert "\n" not in message and caught.value.exit_code == 2
    assert message.startswith(str(tmp_path) + "/"), message
    assert expected in message, message


@pytest.mark.parametrize(
    ("text", "seconds"),
    [("90s", 90), ("90m", 5400), ("24h", 86400), ("62h", 223200), ("2d", 172800), ("1w", 604800),
     ("1h30m", 5400), ("3600", 3600), (3600, 3600)],
)  # fmt: skip
def test_durations(text: str | int, seconds: int) -> None:
    assert parse_duration(text) == dt.timedelta(seconds=seconds)


@pytest.mark.parametrize("bad", ["", "h", "1.5h", "-1h", "0", "1 h", "1y", True, None])
def test_bad_durations(bad: object) -> None:
    with pytest.raises(ValueError, match="duration"):
        parse_duration(bad)


def test_a_dated_freeze_holds_from_start_to_end(tmp_path: Path) -> None:
    policy = Policy.load(write(tmp_path, GOOD))
    window = policy.frozen(at(2026, 12, 24))
    assert window is not None and window.reason == "holidays"
    assert (window.start, window.end) == (at(2026, 12, 24), at(2026, 12, 27))
    dated = policy.freezes[0]  # (the 27th is a Sunday: the weekend freeze holds it)
    assert dated.window_at(at(2026, 12, 23, 23, 59, 59)) is None
    assert dated.window_at(at(2026, 12, 26, 23, 59, 59)) == window
    assert dated.window_at(at(2026, 12, 27)) is None  # the end is not in it


def test_a_cron_freeze_starts_at_each_fire_time_and_lasts_its_duration(tmp_path: Path) -> None:
    policy = Policy.load(write(tmp_path, GOOD))
    # Friday 2026-12-04 18:00 UTC + 62 h = Monday 2026-12-07 08:00.
    assert policy.frozen(at(2026, 12, 4, 17, 59, 59)) is None
    window = policy.frozen(at(2026, 12, 4, 18, 0))  # a fire time itself is inside
    assert window is not None and window.reason == "weekend"
    assert (window.start, window.end) == (at(2026, 12, 4, 18), at(2026, 12, 7, 8))
    assert policy.frozen(at(2026, 12, 7, 7, 59, 59)) == window
    assert policy.frozen(at(2026, 12, 7, 8, 0)) is None


def test_a_cron_freeze_across_a_year_boundary(tmp_path: Path) -> None:
    text = "freeze: [{cron: '0 22 31 12 *', duration: 4h, reason: new year}]\n"
    policy = Policy.load(write(tmp_path, text))
    window = policy.frozen(at(2027, 1, 1, 1, 30))
    assert window is not None and (window.start, window.end) == (at(2026, 12, 31, 22), at(2027, 1, 1, 2))
    assert policy.frozen(at(2027, 1, 1, 2)) is None and policy.frozen(at(2026, 12, 31, 21, 59)) is None


def test_overlapping_freezes_give_the_one_that_ends_last(tmp_path: Path) -> None:
    text = (
        "freeze:\n  - {start: 2026-12-24, end: 2026-12-25, reason: a}\n"
        "  - {start: 2026-12-23, end: 2026-12-30, reason: b}\n"
    )
    window = Policy.load(write(tmp_path, text)).frozen(at(2026, 12, 24, 12))
    assert window is not None and window.reason == "b"


def test_naive_times_are_utc(tmp_path: Path) -> None:
    policy = Policy.load(
        write(tmp_path, "freeze: [{start: '2026-12-24T10:00:00', end: '2026-12-24T11:00:00'}]\n")
    )
    assert policy.frozen(at(2026, 12, 24, 10, 30)) is not None
    assert policy.frozen(dt.datetime(2026, 12, 24, 12, 30, tzinfo=dt.timezone(dt.timedelta(hours=2))))


def test_the_shipped_example_parses() -> None:
    example = Path(__file__).resolve().parents[3] / "inventory" / "examples"
    policy = Policy.load(example)
    assert policy.path == example / "ops-policy.yml"
    assert policy.needs_plan("deploy") and not policy.needs_plan("rollback")
    assert policy.package_allowed("jq") and not policy.package_allowed("nginx")
    assert [rule.reason for rule in policy.freezes] == ["holidays", "weekend"]

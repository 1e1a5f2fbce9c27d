"""The one masker (plugins/module_utils/masking.py): secret-looking values whatever their names, in linear
time (the controller's Redactor applies it too: tests/unit/opsrunner/test_redact.py)."""

from __future__ import annotations

import time

import pytest
from ansible_collections.aitbc.ops.plugins.module_utils.masking import mask_secrets, might_hold_secret


@pytest.mark.parametrize(
    ("line", "masked"),
    [
        ("Authorization: Bearer abc.def-ghi", "Authorization: Bearer <secret>"),
        ("curl -H 'authorization: token ghp_1234567890'", "curl -H 'authorization: token <secret>'"),
        ("login ok password=hunter2 user=bob", "login ok password=<secret> user=bob"),
        ('{"db_password": "p w", "token":\'t\'}', '{"db_password": <secret>, "token":<secret>}'),
        ("GITHUB_PAT=ghp_abcdef012345 make", "GITHUB_PAT=<secret> make"),
        ("dsn postgresql://ops:S3cr3t@db:5432/aitbc", "dsn postgresql://ops:<secret>@db:5432/aitbc"),
        ("redis://:onlypass@127.0.0.1:6379/0", "redis://:<secret>@127.0.0.1:6379/0"),
        ("sent with Bearer eyJhbGciOiJIUzI1NiJ9.x.y", "sent with Bearer <secret>"),
        ("clone with ghp_0123456789abcdefghijABCDEFGHIJ ok", "clone with <secret> ok"),
        ("x=github_pat_11ABCDEFG0123456789_abcdefghij", "x=<secret>"),
        ("glpat-abcdefghij0123456789 and xoxb-1234567890-abc", "<secret> and <secret>"),
    ],
)
def test_secret_values_are_masked(line: str, masked: str) -> None:
    assert mask_secrets(line) == masked


@pytest.mark.parametrize(
    "line",
    [
        "GET /path/to/thing 200 in 3 ms",
        "https://example.org/path?q=1",
        "user@example.org wrote to /var/lib/app",
        "keystore unlocked for wallet 7",
    ],
)
def test_ordinary_text_is_left_alone(line: str) -> None:
    assert mask_secrets(line) is line


def test_the_trigger_covers_every_pattern() -> None:
    for line in ("x password=1", "Bearer abcdefgh1", "a://u:p@h", "API-KEY: 1", "my_pat: 1"):
        assert might_hold_secret(line), line


@pytest.mark.parametrize("unit", ["a-", "password-", "x://u:", "token=", "Bearer ", "ghp_", "xoxb-"])
def test_masking_time_is_linear(unit: str) -> None:
    """A 16x longer line takes about 16x longer (quadratic would be 256x); bounded generously."""

    def seconds(n: int) -> float:
        text = unit * (n // len(unit))
        start = time.perf_counter()
        mask_secrets(text)
        return time.perf_counter() - start

    small = min(seconds(64 * 1024) for _round in range(3))
    large = min(seconds(1024 * 1024) for _round in range(3))
    assert large < max(small, 0.002) * 60, (unit, small, large)

"""A deploy request is checked before a version becomes a path or a batch size reaches the play."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

from opsrunner import deploys

RELEASE_PY = Path(__file__).resolve().parents[3] / "plugins" / "module_utils" / "release.py"


def test_the_version_rule_is_the_release_modules() -> None:
    """Read from the source: host-side code is not importable from the controller's package."""
    tree = ast.parse(RELEASE_PY.read_text())
    (pattern,) = [
        node.value.args[0].value
        for node in tree.body
        if isinstance(node, ast.Assign) and getattr(node.targets[0], "id", "") == "VERSION_RE"
    ]
    assert deploys.VERSION_RE.pattern == pattern


@pytest.mark.parametrize("serial", ["1", "3", "25%", "100%", "1%"])
@pytest.mark.parametrize("version", ["1.2.3", "v2", "2026.12.04+build.7", "rc_1-x"])
def test_good_requests(version: str, serial: str) -> None:
    assert deploys.request_error(version, serial) is None


@pytest.mark.parametrize(
    ("version", "serial", "message"),
    [
        ("../../../../tmp/x", "1", "bad version '../../../../tmp/x'"),
        ("", "1", "bad version ''"),
        (".hidden", "1", "bad version '.hidden'"),
        ("a/b", "1", "bad version 'a/b'"),
        ("1.0", "0", "bad --serial '0'"),
        ("1.0", "0%", "bad --serial '0%'"),
        ("1.0", "101%", "bad --serial '101%'"),
        ("1.0", "-1", "bad --serial '-1'"),
        ("1.0", "two", "bad --serial 'two'"),
    ],
)
def test_bad_requests_name_what_is_wrong(version: str, serial: str, message: str) -> None:
    assert (deploys.request_error(version, serial) or "").startswith(message)

"""Names a host returns for a backup set, checked before the controller makes paths of them."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from ansible_collections.aitbc.ops.plugins.module_utils.backup.base import (
    BackupError,
    is_plain_file_name,
    is_set_name,
)
from ansible_collections.aitbc.ops.plugins.module_utils.backup.sets import read_manifest
from ansible_collections.aitbc.ops.plugins.test.names import TestModule as JinjaTests


@pytest.mark.parametrize("name", ["20261204T201500Z", "20261204T201500Z-2"])
def test_set_names(name: str) -> None:
    assert is_set_name(name)


@pytest.mark.parametrize("name", ["../x", "/tmp", "20261204T201500Z/..", "", None, 20261204, "latest"])
def test_not_set_names(name: object) -> None:
    assert not is_set_name(name)


@pytest.mark.parametrize("name", ["coordinator-api.coordinator.db", "wallet.keystore.tar.gz", "SHA256SUMS"])
def test_plain_file_names(name: str) -> None:
    assert is_plain_file_name(name)


@pytest.mark.parametrize(
    "name", ["", ".", "..", ".hidden", "a/b", "../x", "a\\b", "a\0b", "x" * 256, None, 3]
)
def test_not_plain_file_names(name: object) -> None:
    assert not is_plain_file_name(name)


def test_a_manifest_naming_a_path_is_refused(tmp_path: Path) -> None:
    (tmp_path / "manifest.json").write_text(json.dumps({"files": [{"file": "../../etc/shadow"}]}))
    with pytest.raises(BackupError, match="not a plain file name: '../../etc/shadow'"):
        read_manifest(str(tmp_path))


def test_the_jinja_tests_are_the_same_functions() -> None:
    tests = JinjaTests().tests()
    assert (tests["backup_set_name"], tests["plain_file_name"]) == (is_set_name, is_plain_file_name)

# Copyright: (c) 2025, aitbc-ops developers
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Pure functions of plugins/module_utils/backup.py: names, sources, retention and restore selection."""

from __future__ import annotations

import datetime
import errno
from pathlib import Path

import pytest
import yaml
from ansible_collections.aitbc.ops.plugins.module_utils._files import describe_os_error
from ansible_collections.aitbc.ops.plugins.module_utils._text import iso, parse_iso
from ansible_collections.aitbc.ops.plugins.module_utils.backup.base import (
    COLLECTION_VERSION,
    TIME_FORMAT,
    BackupError,
)
from ansible_collections.aitbc.ops.plugins.module_utils.backup.kinds.registry import kind_of
from ansible_collections.aitbc.ops.plugins.module_utils.backup.restore import select_entries, side_path
from ansible_collections.aitbc.ops.plugins.module_utils.backup.retention import retention_plan
from ansible_collections.aitbc.ops.plugins.module_utils.backup.sets import host_dir, newest, normalize_sources
from ansible_collections.aitbc.ops.plugins.module_utils.backup.verify import failure_summary

REPO = Path(__file__).resolve().parents[4]  # the collection root (the checkout, or ansible-test's copy)
NOW = datetime.datetime(2025, 6, 10, 12, 0, 0, tzinfo=datetime.UTC)


def make_set(moment, verified=False):
    return {"set": moment.strftime(TIME_FORMAT), "created": iso(moment), "verified": verified}


def test_iso_round_trip():
    assert iso(NOW) == "2025-06-10T12:00:00Z"
    assert parse_iso(iso(NOW)) == NOW


@pytest.mark.parametrize("host", ["", ".", "..", "a/b"])
def test_host_dir_rejects_bad_names(host):
    with pytest.raises(BackupError, match="bad host name"):
        host_dir("/backups", host)


def test_host_dir():
    assert host_dir("/backups", "node1") == "/backups/node1"


def test_kind_of_names_the_known_kinds():
    assert kind_of("sqlite").name == "sqlite"
    with pytest.raises(BackupError, match=r"unknown backup kind 'tape' \(known: files, redis, sqlite\)"):
        kind_of("tape")


def test_file_names_per_kind():
    assert kind_of("sqlite").file_name({"path": "/data/chain.db", "service": "node"}) == "node.chain.db"
    assert kind_of("files").file_name({"path": "/etc/keys/"}) == "host.keys.tar.gz"
    assert kind_of("redis").file_name({"service": "cache"}) == "cache.dump.rdb"


def test_normalize_sources_drops_a_path_listed_twice():
    sources = [
        {"kind": "sqlite", "path": "/data/a.db", "service": "api"},
        {"kind": "sqlite", "path": "/data/a.db", "service": "api"},
        {"kind": "redis", "host": "127.0.0.1", "port": 6379},
    ]
    assert normalize_sources(sources) == [sources[0], sources[2]]


@pytest.mark.parametrize(
    ("sources", "message"),
    [
        ([], "no backup sources given"),
        ([{"path": "/x"}], "backup source 1: kind is required"),
        ([{"kind": "files"}], r"backup source 1 \(files\): path is required"),
        (
            [{"kind": "sqlite", "path": "/a/x.db"}, {"kind": "sqlite", "path": "/b/x.db"}],
            "backup source 2: two sources would both be stored as host.x.db",
        ),
    ],
)
def test_normalize_sources_errors(sources, message):
    with pytest.raises(BackupError, match=message):
        normalize_sources(sources)


def test_describe_os_error():
    full = OSError(errno.ENOSPC, "No space left on device")
    assert describe_os_error(full, "copying") == "no space left on device while copying"
    denied = OSError(errno.EACCES, "Permission denied", "/data/a.db")
    assert describe_os_error(denied, "reading") == "Permission denied while reading (/data/a.db)"


def test_retention_keeps_last_daily_and_newest_verified():
    old_verified = make_set(NOW - datetime.timedelta(days=30), verified=True)
    day_before = [make_set(NOW - datetime.timedelta(days=1, hours=h)) for h in (3, 2)]
    today = [make_set(NOW - datetime.timedelta(hours=h)) for h in (3, 2, 1)]
    sets = [old_verified, *day_before, *today]

    keep, delete = retention_plan(sets, keep_last=2, keep_days=3, now=NOW)

    assert keep == {
        today[2]["set"]: "one of the last 2",
        today[1]["set"]: "one of the last 2",
        day_before[1]["set"]: "newest of 2025-06-09 (daily, 3 days)",
        old_verified["set"]: "newest verified set",
    }
    assert [row["set"] for row in delete] == [day_before[0]["set"], today[0]["set"]]


def test_retention_with_nothing_to_keep_by_count_or_day():
    sets = [make_set(NOW - datetime.timedelta(hours=h)) for h in (2, 1)]
    keep, delete = retention_plan(sets, keep_last=0, keep_days=0, now=NOW)
    assert keep == {}
    assert delete == sets


def test_newest():
    sets = [make_set(NOW, verified=True), make_set(NOW + datetime.timedelta(hours=1))]
    assert newest(sets) is sets[1]
    assert newest(sets, verified=True) is sets[0]
    assert newest([]) is None


MANIFEST = {
    "set": "20250610T120000Z",
    "files": [
        {"file": "api.coordinator.db", "service": "api", "source": "/data/coordinator.db"},
        {"file": "node.chain.db", "service": "node", "source": "/data/chain.db"},
        {"file": "host.keys.tar.gz", "source": "/etc/keys"},
    ],
}


def test_select_entries_by_file_service_or_source():
    assert select_entries(MANIFEST, []) == MANIFEST["files"]
    chosen = select_entries(MANIFEST, ["node", "/etc/keys"])
    assert [entry["file"] for entry in chosen] == ["node.chain.db", "host.keys.tar.gz"]


def test_select_entries_names_what_is_missing():
    with pytest.raises(BackupError, match="not in set 20250610T120000Z: wallet, /nope"):
        select_entries(MANIFEST, ["api", "wallet", "/nope"])


def test_failure_summary():
    result = {
        "set": "20250610T120000Z",
        "checks": [
            {"file": "a.db", "check": "sha256", "ok": True, "detail": "ok"},
            {"file": "b.db", "check": "integrity", "ok": False, "detail": "malformed"},
        ],
    }
    assert failure_summary(result) == "20250610T120000Z/b.db: integrity failed: malformed"


def test_collection_version_constant_matches_galaxy_yml():
    galaxy = yaml.safe_load((REPO / "galaxy.yml").read_text())
    assert galaxy["version"] == COLLECTION_VERSION, "bump backup/base.py's COLLECTION_VERSION with galaxy.yml"


@pytest.mark.parametrize(
    "source, expected",
    [
        ("/var/lib/aitbc/chain/chain.db", "/side/var/lib/aitbc/chain/chain.db"),
        ("/var/lib/aitbc/wallet/keystore/", "/side/var/lib/aitbc/wallet/keystore"),
        ("/var/lib/../../etc/shadow", "/side/etc/shadow"),  # never outside dest
    ],
)
def test_side_path_keeps_the_path_relative_to_root(source, expected):
    assert side_path("/side", source) == expected


def test_side_path_refuses_the_root_itself():
    with pytest.raises(BackupError, match="not a file or folder path"):
        side_path("/side", "/")

# -*- coding: utf-8 -*-
# Copyright: (c) 2025, aitbc-ops developers
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Retention: which sets to keep (and why), and pruning the rest with stale partial folders."""

from __future__ import annotations

import datetime
import os
import shutil
import time
from typing import Any

from ansible_collections.aitbc.ops.plugins.module_utils._diff import DifferenceTracker
from ansible_collections.aitbc.ops.plugins.module_utils._text import parse_iso, utcnow
from ansible_collections.aitbc.ops.plugins.module_utils.backup.base import Row
from ansible_collections.aitbc.ops.plugins.module_utils.backup.sets import list_sets, newest


def retention_plan(
    sets: list[Row], keep_last: int, keep_days: int, now: datetime.datetime | None = None
) -> tuple[dict[str, str], list[Row]]:
    """Which complete sets to keep and which to delete, with the reason for each kept one.

    Kept: every set marked ``keep`` in its manifest (the backup module's ``keep: true``: a record points
    at it, as the decision of a devnet reset does); the newest ``keep_last``; the newest set of each UTC day
    for the last ``keep_days`` days; and always the newest verified set, whatever its age."""
    now = now or utcnow()
    keep: dict[str, str] = {}
    for row in sets:
        if row.get("keep") is True:
            label = f" ({row['label']})" if row.get("label") else ""
            keep[row["set"]] = f"marked keep{label}"
    for row in sets[-keep_last:] if keep_last > 0 else []:
        keep.setdefault(row["set"], f"one of the last {keep_last}")
    cutoff = (now - datetime.timedelta(days=keep_days)).date()
    by_day: dict[datetime.date, Row] = {}
    for row in sets:
        day = parse_iso(row["created"]).date()
        if keep_days > 0 and day > cutoff:
            by_day[day] = row  # sets are oldest first: the last one of a day wins
    for day, row in by_day.items():
        keep.setdefault(row["set"], f"newest of {day.isoformat()} (daily, {keep_days} days)")
    verified = newest(sets, verified=True)
    if verified:
        keep.setdefault(verified["set"], "newest verified set")
    delete = [row for row in sets if row["set"] not in keep]
    return keep, delete


def _names(rows: list[Row]) -> list[str]:
    return [os.path.basename(row["path"]) for row in rows]


def prune(
    root: str,
    host: str,
    keep_last: int,
    keep_days: int,
    partial_max_age_h: float = 6.0,
    check_mode: bool = False,
    now: datetime.datetime | None = None,
    tracker: DifferenceTracker | None = None,
) -> dict[str, Any]:
    """Delete the sets retention_plan does not keep, and partial folders older than partial_max_age_h.

    With a ``tracker``, records ``sets`` and ``leftovers`` (folder names) before and after: after the
    deletion as found on disk, or in check mode as it would be."""
    sets, leftovers = list_sets(root, host, now)
    keep, delete = retention_plan(sets, keep_last, keep_days, now)
    stale = [
        row for row in leftovers if time.time() - row.get("mtime", time.time()) > partial_max_age_h * 3600
    ]
    if tracker is not None:
        gone = {row["path"] for row in delete + stale}
        tracker.add("sets", _names(sets), _names([row for row in sets if row["path"] not in gone]))
        tracker.add(
            "leftovers", _names(leftovers), _names([row for row in leftovers if row["path"] not in gone])
        )
    if not check_mode:
        for row in delete + stale:
            shutil.rmtree(row["path"])
        if tracker is not None:
            sets_after, leftovers_after = list_sets(root, host, now)
            tracker.update_after("sets", _names(sets_after))
            tracker.update_after("leftovers", _names(leftovers_after))
    return {
        "kept": [{"set": name, "reason": reason} for name, reason in sorted(keep.items())],
        "deleted": [row["set"] for row in delete],
        "deleted_leftovers": [os.path.basename(row["path"]) for row in stale],
        "changed": bool(delete or stale),
    }

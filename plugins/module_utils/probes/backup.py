# -*- coding: utf-8 -*-
# Copyright: (c) 2025, aitbc-ops developers
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""The backup probe: is the newest verified backup set young enough?"""

from __future__ import annotations

import os

from ansible_collections.aitbc.ops.plugins.module_utils.probes.base import Outcome, Probe


class BackupProbe(Probe):
    """The freshness of a host's backups: its newest verified set must be younger than max_age_hours."""

    type_name = "backup"
    options = {
        "backup_dir": {"type": "path", "required": True},
        "max_age_hours": {"type": "float", "required": True},
    }

    def setup(self) -> None:
        if self.params["max_age_hours"] <= 0:
            raise ValueError("max_age_hours must be greater than 0")

    def default_name(self) -> str:
        return f"backup:{self.params['backup_dir']}"

    def run(self, deadline: float) -> Outcome:
        from ansible_collections.aitbc.ops.plugins.module_utils.backup.sets import list_sets, newest

        folder = self.params["backup_dir"].rstrip("/")
        sets, _leftovers = list_sets(os.path.dirname(folder), os.path.basename(folder))
        good = newest(sets, verified=True)
        limit = self.params["max_age_hours"]
        if good is None:
            latest = newest(sets)
            why = f"newest set {latest['set']} is not verified" if latest else "no backup set"
            return False, f"no verified backup set in {folder} ({why})", {"sets": len(sets)}
        hours = good["age_s"] / 3600.0
        data = {"set": good["set"], "age_hours": round(hours, 2), "sets": len(sets)}
        if hours > limit:
            return False, f"newest verified set {good['set']} is {hours:.1f} h old (max {limit:g} h)", data
        return True, f"newest verified set {good['set']} is {hours:.1f} h old", data

# -*- coding: utf-8 -*-
# Copyright: (c) 2026, aitbc-ops developers
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
"""Jinja tests for names a managed host returns, checked on the controller before they become paths.

The rules are the backup package's own (plugins/module_utils/backup/base.py), so the host-side writer and
the controller-side reader agree on one definition. Documentation: ``plugins/test/NAME.yml``.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from ansible_collections.aitbc.ops.plugins.module_utils.backup.base import is_plain_file_name, is_set_name


class TestModule:
    """aitbc.ops tests for host-returned names."""

    def tests(self) -> dict[str, Callable[[Any], bool]]:
        return {"backup_set_name": is_set_name, "plain_file_name": is_plain_file_name}

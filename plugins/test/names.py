# -*- coding: utf-8 -*-
# Copyright: (c) 2026, aitbc-ops developers
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
"""Jinja tests for names that become paths: those a managed host returns, checked on the controller, and
those an operator gives, checked before the first task uses them.

The rules are the host-side code's own (plugins/module_utils), so the writer and the reader agree on one
definition. Documentation: ``plugins/test/NAME.yml``.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from ansible_collections.aitbc.ops.plugins.module_utils.backup.base import is_plain_file_name, is_set_name
from ansible_collections.aitbc.ops.plugins.module_utils.release import VERSION_RE


def is_release_version(value: Any) -> bool:
    """A release's version: the name of its folder under releases/."""
    return isinstance(value, str) and bool(VERSION_RE.match(value))


class TestModule:
    """aitbc.ops tests for names that become paths."""

    def tests(self) -> dict[str, Callable[[Any], bool]]:
        return {
            "backup_set_name": is_set_name,
            "plain_file_name": is_plain_file_name,
            "release_version": is_release_version,
        }

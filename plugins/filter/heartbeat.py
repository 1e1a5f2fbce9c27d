# -*- coding: utf-8 -*-
# Copyright: (c) 2026, aitbc-ops developers
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
"""The heartbeat's settings, checked by the class the recorder and the restart planner use (opsrunner's
HeartbeatConfig), so the rule lives in one place. Documentation: ``plugins/filter/heartbeat_settings.yml``."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any

from ansible.errors import AnsibleFilterError
from ansible_collections.aitbc.ops.plugins.plugin_utils.recorder import ensure_opsrunner


def heartbeat_settings(labels: Mapping[str, Any]) -> bool:
    """True when the thresholds in ``labels`` (the role's heartbeat_labels) are usable; else an error
    naming the role variable."""
    if not ensure_opsrunner():
        raise AnsibleFilterError("aitbc.ops.heartbeat_settings needs the opsrunner package (shipped here)")
    from opsrunner.heartbeat import HeartbeatConfig, SettingsError

    try:
        HeartbeatConfig.from_labels(dict(labels))
    except SettingsError as exc:
        raise AnsibleFilterError(str(exc)) from exc
    return True


class FilterModule:
    """aitbc.ops heartbeat filters."""

    def filters(self) -> dict[str, Callable[..., Any]]:
        return {"heartbeat_settings": heartbeat_settings}

# -*- coding: utf-8 -*-
# Copyright: (c) 2026, aitbc-ops developers
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""aitbc.ops.decision: validate a decision's fields on the controller and return them.

Nothing runs on a host and nothing changes. The run's recorder (opsrunner, or the aitbc.ops.memory
callback) turns the returned `decision` into a record in decisions/ of the memory store. The options and
their checks are the module's (module_utils/decision.py), so the two cannot drift apart.
"""

from __future__ import annotations

from typing import Any

from ansible.errors import AnsibleActionFail
from ansible.plugins.action import ActionBase
from ansible_collections.aitbc.ops.plugins.module_utils.decision import (
    ARGUMENT_SPEC,
    DecisionError,
)
from ansible_collections.aitbc.ops.plugins.module_utils.decision import (
    normalize as normalize_fields,
)

__all__ = ["ARGUMENT_SPEC", "ActionModule", "normalize"]


def normalize(params: dict[str, Any]) -> dict[str, Any]:
    """The fields as recorded; a field that cannot be recorded fails the task with one line."""
    try:
        return normalize_fields(params)
    except DecisionError as exc:
        raise AnsibleActionFail(str(exc)) from None


class ActionModule(ActionBase):
    """Controller-only: no connection, no module transfer, the same result in check mode."""

    TRANSFERS_FILES = False
    _requires_connection = False
    _supports_check_mode = True
    _supports_async = False

    def run(self, tmp: Any = None, task_vars: dict[str, Any] | None = None) -> dict[str, Any]:
        result = super().run(tmp, task_vars)
        del tmp
        _validation, params = self.validate_argument_spec(argument_spec=ARGUMENT_SPEC)
        result.update(changed=False, decision=normalize(params))
        return result

# -*- coding: utf-8 -*-
# Copyright: (c) 2026, aitbc-ops developers
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""aitbc.ops.decision: validate a decision's fields on the controller and return them.

Nothing runs on a host and nothing changes. The run's recorder (opsrunner, or the aitbc.ops.memory
callback) turns the returned `decision` into a record in decisions/ of the memory store.
"""

from __future__ import annotations

import re

from ansible.errors import AnsibleActionFail
from ansible.plugins.action import ActionBase

ARGUMENT_SPEC = dict(
    decision=dict(type="str", required=True),
    kind=dict(type="str", required=True),
    context=dict(type="str", default=""),
    rationale=dict(type="str", default=""),
    impact=dict(type="str", default=""),
    outcome=dict(type="str", default="ok"),
    details=dict(type="list", elements="str", default=[]),
)
KIND_RE = re.compile(r"^[a-z0-9]+(?:-[a-z0-9]+)*$")
KIND_MAX = 32
TITLE_MAX = 200


def _one_line(name, value, limit):
    """A required one-line field, stripped; AnsibleActionFail with one clear line otherwise."""
    text = (value or "").strip()
    if not text:
        raise AnsibleActionFail(f"{name} must not be empty")
    if "\n" in text or "\r" in text:
        raise AnsibleActionFail(f"{name} must be one line: {text.splitlines()[0][:60]!r}...")
    if len(text) > limit:
        raise AnsibleActionFail(f"{name} is {len(text)} characters long; at most {limit} are allowed")
    return text


def normalize(params):
    """The fields as recorded, from validated and type-converted task arguments."""
    kind = _one_line("kind", params["kind"], KIND_MAX)
    if not KIND_RE.match(kind):
        raise AnsibleActionFail(
            f"kind must be lowercase letters, digits and '-' (like deploy, rollback, restore, "
            f"devnet-reset, config), not {kind!r}"
        )
    details = params["details"] or []
    for index, line in enumerate(details):
        if line is None or "\n" in str(line) or "\r" in str(line):
            raise AnsibleActionFail(f"details[{index}] must be one line of text")
    return dict(
        decision=_one_line("decision", params["decision"], TITLE_MAX),
        kind=kind,
        context=(params["context"] or "").strip(),
        rationale=(params["rationale"] or "").strip(),
        impact=(params["impact"] or "").strip(),
        outcome=_one_line("outcome", params["outcome"], 40),
        details=[str(line).strip() for line in details],
    )


class ActionModule(ActionBase):
    """Controller-only: no connection, no module transfer, the same result in check mode."""

    TRANSFERS_FILES = False
    _requires_connection = False
    _supports_check_mode = True
    _supports_async = False

    def run(self, tmp=None, task_vars=None):
        result = super().run(tmp, task_vars)
        del tmp
        _validation, params = self.validate_argument_spec(argument_spec=ARGUMENT_SPEC)
        result.update(changed=False, decision=normalize(params))
        return result

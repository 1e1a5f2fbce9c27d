# -*- coding: utf-8 -*-
# Copyright: (c) 2026, aitbc-ops developers
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""The fields of a decision record: the one argument spec and their validation.

The aitbc.ops.decision module declares its options with ARGUMENT_SPEC, and its action plugin validates the
task's arguments against the same spec on the controller, then normalizes them here.
"""

from __future__ import annotations

import re
from typing import Any

ARGUMENT_SPEC: dict[str, dict[str, Any]] = dict(
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
OUTCOME_MAX = 40


class DecisionError(ValueError):
    """A field that cannot be recorded; the message is one line for the task's failure."""


def one_line(name: str, value: str | None, limit: int) -> str:
    """A required one-line field, stripped; DecisionError with one clear line otherwise."""
    text = (value or "").strip()
    if not text:
        raise DecisionError(f"{name} must not be empty")
    if "\n" in text or "\r" in text:
        raise DecisionError(f"{name} must be one line: {text.splitlines()[0][:60]!r}...")
    if len(text) > limit:
        raise DecisionError(f"{name} is {len(text)} characters long; at most {limit} are allowed")
    return text


def normalize(params: dict[str, Any]) -> dict[str, Any]:
    """The fields as recorded, from validated and type-converted task arguments."""
    kind = one_line("kind", params["kind"], KIND_MAX)
    if not KIND_RE.match(kind):
        raise DecisionError(
            f"kind must be lowercase letters, digits and '-' (like deploy, rollback, restore, "
            f"devnet-reset, config), not {kind!r}"
        )
    details = params["details"] or []
    for index, line in enumerate(details):
        if line is None or "\n" in str(line) or "\r" in str(line):
            raise DecisionError(f"details[{index}] must be one line of text")
    return dict(
        decision=one_line("decision", params["decision"], TITLE_MAX),
        kind=kind,
        context=(params["context"] or "").strip(),
        rationale=(params["rationale"] or "").strip(),
        impact=(params["impact"] or "").strip(),
        outcome=one_line("outcome", params["outcome"], OUTCOME_MAX),
        details=[str(line).strip() for line in details],
    )

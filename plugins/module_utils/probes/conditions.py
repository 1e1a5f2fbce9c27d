# -*- coding: utf-8 -*-
# Copyright: (c) 2025, aitbc-ops developers
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""JSON conditions for http probes: "status == ok", "chains contains ait-devnet", "a.b.c exists"."""

from __future__ import annotations

import json
import re
from typing import Any

from ansible_collections.aitbc.ops.plugins.module_utils.probes.base import show

_MISSING = object()
_CMP_RE = re.compile(r"^\s*(?P<path>[^\s=!<>]+)\s*(?P<op>==|!=|>=|<=|>|<)\s*(?P<value>.*?)\s*$")
_WORD_RE = re.compile(r"^\s*(?P<path>\S+)\s+(?P<op>contains|exists)(?:\s+(?P<value>.*?))?\s*$")
_NUMBER_OPS = (">", ">=", "<", "<=")


class Condition:
    """One parsed JSON condition: ``path`` (list of keys), ``op`` and ``value`` (text, or None)."""

    __slots__ = ("text", "path", "op", "value", "quoted")

    def __init__(self, text: str, path: list[str], op: str, value: str | None, quoted: bool) -> None:
        self.text = text
        self.path = path
        self.op = op
        self.value = value
        self.quoted = quoted

    def __repr__(self) -> str:
        return f"Condition({self.text!r})"

    @property
    def field(self) -> str:
        return ".".join(self.path)


def parse_condition(text: Any) -> Condition:
    """Parse 'PATH OP [VALUE]'. PATH is dotted (a.b.0.c: numbers index lists); OP is one of
    == != > >= < <= contains exists. VALUE may be quoted to keep spaces or to force a string."""
    if not isinstance(text, str) or not text.strip():
        raise ValueError("empty json condition")
    text = text.strip()
    match = _CMP_RE.match(text) or _WORD_RE.match(text)
    if not match:
        raise ValueError(
            f"cannot parse json condition '{text}' (expected 'PATH OP VALUE' with OP one of "
            "==, !=, >, >=, <, <=, contains, or PATH exists)"
        )
    path, op, value = match.group("path"), match.group("op"), match.group("value")
    if any(not part for part in path.split(".")):
        raise ValueError(f"json condition '{text}': bad path '{path}'")
    quoted = False
    if value is not None and len(value) >= 2 and value[0] == value[-1] and value[0] in "'\"":
        value, quoted = value[1:-1], True
    if op == "exists":
        if value:
            raise ValueError(f"json condition '{text}': exists takes no value")
        value = None
    elif not value and not quoted:
        raise ValueError(f"json condition '{text}': {op} needs a value")
    if op in _NUMBER_OPS:
        try:
            float(value)
        except ValueError:
            raise ValueError(f"json condition '{text}': {op} needs a number, got '{value}'") from None
    return Condition(text, path.split("."), op, value, quoted)


def lookup(doc: Any, path: list[str]) -> Any:
    """Follow a list of keys through dicts and lists; returns _MISSING when a step is absent."""
    current = doc
    for part in path:
        if isinstance(current, dict):
            if part not in current:
                return _MISSING
            current = current[part]
        elif isinstance(current, list) and re.match(r"^-?\d+$", part):
            index = int(part)
            if not -len(current) <= index < len(current):
                return _MISSING
            current = current[index]
        else:
            return _MISSING
    return current


def _as_number(value: Any) -> float | None:
    if isinstance(value, bool):
        return None
    if isinstance(value, (int, float)):
        return float(value)
    if isinstance(value, str):
        try:
            return float(value)
        except ValueError:
            return None
    return None


def _equals(actual: Any, expected: str, quoted: bool = False) -> bool:
    """Compare a JSON value with condition text: numbers numerically, booleans and null by their
    words (true/false/null), strings as text. A quoted value is always compared as a string."""
    if quoted or isinstance(actual, str):
        return isinstance(actual, str) and actual == expected
    if isinstance(actual, bool):
        word = expected.strip().lower()
        return (word in ("true", "yes") and actual) or (word in ("false", "no") and not actual)
    if actual is None:
        return expected.strip().lower() in ("null", "none", "~")
    if isinstance(actual, (int, float)):
        number = _as_number(expected)
        return number is not None and float(actual) == number
    try:
        return actual == json.loads(expected)
    except ValueError:
        return False


def evaluate_condition(cond: Condition, doc: Any) -> tuple[bool, str]:
    """Returns (ok, message). The message reads well in a probe detail either way."""
    actual = lookup(doc, cond.path)
    field = cond.field
    if cond.op == "exists":
        return (True, cond.text) if actual is not _MISSING else (False, f"json field {field} is missing")
    if actual is _MISSING:
        return False, f"json field {field} is missing (condition {cond.text})"
    if cond.op == "==":
        if _equals(actual, cond.value, cond.quoted):
            return True, cond.text
        return False, f"json field {field} is {show(actual)}, expected '{cond.value}'"
    if cond.op == "!=":
        if not _equals(actual, cond.value, cond.quoted):
            return True, cond.text
        return False, f"json field {field} is {show(actual)}, expected anything but '{cond.value}'"
    if cond.op == "contains":
        if isinstance(actual, list):
            found = any(_equals(item, cond.value, cond.quoted) for item in actual)
        elif isinstance(actual, (str, dict)):  # substring, or key of an object
            found = cond.value in actual
        else:
            return False, f"json field {field} is {show(actual)}, not a list, string or object"
        if found:
            return True, cond.text
        return False, f"json field {field} does not contain '{cond.value}' (it is {show(actual)})"
    # ordering operators
    number = _as_number(actual)
    if number is None:
        return False, f"json field {field} is {show(actual)}, not a number (condition {cond.text})"
    limit = float(cond.value)
    ok = {
        ">": number > limit,
        ">=": number >= limit,
        "<": number < limit,
        "<=": number <= limit,
    }[cond.op]
    if ok:
        return True, cond.text
    return False, f"json field {field} is {show(actual)}, expected {cond.op} {cond.value}"

# -*- coding: utf-8 -*-
# Copyright: (c) 2026, aitbc-ops developers
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""The one difference tracker for check and diff mode (after community.docker's DifferenceTracker).

A module records each property it inspects with its value before the change and the value after it (or
what it would be, in check mode). The tracker answers whether anything differs and renders Ansible's
``diff`` result: ``{"before": {...}, "after": {...}}`` holding only the properties that differ, or, for a
module whose subject is a text (a file), ``before``/``after`` strings with their headers.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any


@dataclass
class Difference:
    name: str
    before: Any
    after: Any

    @property
    def differs(self) -> bool:
        return self.before != self.after


class DifferenceTracker:
    """Properties with their before and after values, in the order they were added."""

    def __init__(self) -> None:
        self._items: dict[str, Difference] = {}

    def add(self, name: str, before: Any, after: Any = None, *, same: bool = False) -> None:
        """Record `name`; with `same=True`, `after` is `before` (inspected, not changed)."""
        self._items[name] = Difference(name, before, before if same else after)

    def update_after(self, name: str, after: Any) -> None:
        """Set the after value of an added property once the action has run."""
        self._items[name].after = after

    def merge(self, other: DifferenceTracker, prefix: str = "") -> None:
        for item in other._items.values():
            self._items[prefix + item.name] = Difference(prefix + item.name, item.before, item.after)

    @property
    def changed(self) -> bool:
        return any(item.differs for item in self._items.values())

    def differs(self, name: str) -> bool:
        item = self._items.get(name)
        return item is not None and item.differs

    def names(self) -> list[str]:
        """The properties that differ."""
        return [item.name for item in self._items.values() if item.differs]

    def before_after(self) -> tuple[dict[str, Any], dict[str, Any]]:
        before = {i.name: i.before for i in self._items.values() if i.differs}
        after = {i.name: i.after for i in self._items.values() if i.differs}
        return before, after

    def diff(self) -> dict[str, Any]:
        """Ansible's `diff` result: the properties that differ, before and after."""
        before, after = self.before_after()
        return {"before": before, "after": after}


def text_diff(before: str, after: str, path: str) -> dict[str, str]:
    """Ansible's `diff` result for a text file (rendered by the callback as a unified diff)."""
    return {"before": before, "after": after, "before_header": path, "after_header": path}

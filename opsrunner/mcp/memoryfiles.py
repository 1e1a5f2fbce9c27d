"""The ai-memory files an agent may read, as MCP resources `aitbc-memory://KIND/NAME`, and a bounded text
search over them. Names come from the peer: each kind takes only its own file names (no separators, no
'..'), and the file found must be a regular file inside the memory root (a symlink out of it is refused)."""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path

from ..memory import MemoryStore

SCHEME = "aitbc-memory"
# kind -> the names it serves: daily entries by date, incident records by id, two fixed files.
NAME_RULES: dict[str, re.Pattern[str]] = {
    "daily": re.compile(r"^\d{4}-\d{2}-\d{2}\.md$"),
    "incidents": re.compile(r"^INC-\d{8}-\d{3,6}\.md$"),
    "knowledge": re.compile(r"^environment\.md$"),
    "failures": re.compile(r"^debugging-notes\.md$"),
}
SEARCH_MAX_FILES = 400  # newest first: the daily files of over a year, and the incidents
SEARCH_MAX_MATCHES = 200
SEARCH_MAX_BYTES = 2_000_000  # per file
LINE_MAX = 300
QUERY_MAX = 200


class MemoryNameError(ValueError):
    """A resource name that is not one of the memory files an agent may read."""


def uri(kind: str, name: str) -> str:
    return f"{SCHEME}://{kind}/{name}"


def memory_file(store: MemoryStore, kind: str, name: str) -> Path:
    """The file of KIND/NAME, validated; raises MemoryNameError (also for a file that does not exist)."""
    rule = NAME_RULES.get(kind)
    if rule is None:
        raise MemoryNameError(f"unknown memory kind {kind[:40]!r}: one of {', '.join(NAME_RULES)}")
    if not rule.match(name):
        raise MemoryNameError(f"not a {kind} file name: {name[:80]!r}")
    root = store.root.resolve()
    path = store.path(kind, name)
    if path.is_symlink() or not path.is_file():
        raise MemoryNameError(f"no such memory file: {kind}/{name}")
    if not path.resolve().is_relative_to(root):
        raise MemoryNameError(f"no such memory file: {kind}/{name}")
    return path


def listing(store: MemoryStore) -> list[tuple[str, str]]:
    """(kind, name) of every readable memory file, newest daily and incident files first."""
    found: list[tuple[str, str]] = []
    for kind, rule in NAME_RULES.items():
        folder = store.path(kind)
        if not folder.is_dir():
            continue
        names = sorted((p.name for p in folder.iterdir() if rule.match(p.name)), reverse=True)
        for name in names:
            try:
                memory_file(store, kind, name)
            except MemoryNameError:
                continue
            found.append((kind, name))
    return found


@dataclass
class Match:
    uri: str
    line: int
    text: str


def search(store: MemoryStore, query: str, max_matches: int = 50) -> list[Match]:
    """Lines of the memory files holding `query` (case-insensitive), bounded in files, bytes and matches."""
    needle = query.strip().lower()[:QUERY_MAX]
    if not needle:
        raise MemoryNameError("the search needs some text")
    limit = max(1, min(max_matches, SEARCH_MAX_MATCHES))
    matches: list[Match] = []
    for kind, name in listing(store)[:SEARCH_MAX_FILES]:
        path = store.path(kind, name)
        with path.open(encoding="utf-8", errors="replace") as handle:
            text = handle.read(SEARCH_MAX_BYTES)
        for number, line in enumerate(text.splitlines(), start=1):
            if needle in line.lower():
                matches.append(Match(uri(kind, name), number, line.strip()[:LINE_MAX]))
                if len(matches) >= limit:
                    return matches
    return matches

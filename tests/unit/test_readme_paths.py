"""Every file or folder of the repository that the README names exists (a new user follows them)."""

from __future__ import annotations

import re
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
# Paths under these folders are the repository's; others (ai-memory/..., a role's meta/...) are not.
TOP = ("plugins", "roles", "playbooks", "inventory", "opsrunner", "tests", "demo", "changelogs", "docs")
PATH = re.compile(rf"(?<![\w./<-])((?:{'|'.join(TOP)})/[\w./*<>-]*)")


def named_paths(text: str) -> set[str]:
    """The repository paths in TEXT; placeholders (<capability>) are left out, globs kept."""
    return {match.rstrip(".,:;") for match in PATH.findall(text) if "<" not in match}


def test_named_paths_are_found() -> None:
    assert "plugins/module_utils/_*.py" in named_paths("see plugins/module_utils/_*.py, and roles/<x>/")
    assert "roles/<x>/" not in named_paths("roles/<x>/")


def test_every_path_the_readme_names_exists() -> None:
    missing = [
        path for path in sorted(named_paths((REPO / "README.md").read_text())) if not any(REPO.glob(path))
    ]
    assert missing == []

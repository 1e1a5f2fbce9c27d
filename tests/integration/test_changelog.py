"""changelogs/: the antsibull-changelog fragments and changelog.yaml are valid, CHANGELOG.md is generated from
them, and galaxy.yml's version is the newest released one or the next one (with fragments waiting for it)."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest
import yaml
from packaging.version import Version

REPO = Path(__file__).resolve().parents[2]
ANTSIBULL_CHANGELOG = Path(sys.executable).parent / "antsibull-changelog"

pytestmark = pytest.mark.skipif(
    not ANTSIBULL_CHANGELOG.exists(),
    reason="antsibull-changelog is not installed in this venv (pip install -e '.[test]')",
)


def test_fragments_and_changelog_lint_clean() -> None:
    done = subprocess.run(
        [str(ANTSIBULL_CHANGELOG), "lint"], cwd=REPO, capture_output=True, text=True, timeout=120
    )
    assert done.returncode == 0, done.stdout + done.stderr
    assert done.stdout.strip() == "", done.stdout


def test_galaxy_version_is_released_or_next() -> None:
    version = Version(yaml.safe_load((REPO / "galaxy.yml").read_text())["version"])
    releases = yaml.safe_load((REPO / "changelogs" / "changelog.yaml").read_text())["releases"]
    newest = max(Version(name) for name in releases)
    assert version >= newest
    fragments = [p for p in (REPO / "changelogs" / "fragments").iterdir() if p.suffix in (".yml", ".yaml")]
    if version > newest:
        assert fragments, f"galaxy.yml says {version}, unreleased: it needs changelog fragments"
    changelog_md = (REPO / "CHANGELOG.md").read_text()
    for name in releases:
        heading = "## v" + name.replace(".", "\\.")  # antsibull-changelog's markdown escapes the dots
        assert heading in changelog_md, f"CHANGELOG.md lacks {name}: run antsibull-changelog generate"

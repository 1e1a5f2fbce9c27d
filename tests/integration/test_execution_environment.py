"""execution-environment.yml: `ansible-builder create` (no container engine, no network) writes a build
context that holds the built collection and its requirements; the context's galaxy stage installs the
collection, and ansible-builder's introspection finds the collection's own Python and system requirements."""

from __future__ import annotations

import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

REPO = Path(__file__).resolve().parents[2]
BIN = Path(sys.executable).parent
ANSIBLE_BUILDER = BIN / "ansible-builder"
EE_FILES = ("execution-environment.yml", "requirements.txt", "bindep.txt")

pytestmark = pytest.mark.skipif(
    not ANSIBLE_BUILDER.exists(),
    reason="ansible-builder is not installed in this venv (pip install -e '.[test]')",
)


def run(args: list[str], cwd: Path) -> subprocess.CompletedProcess[str]:
    env = {"PATH": f"{BIN}:/usr/bin:/bin", "HOME": str(Path.home()), "ANSIBLE_NOCOLOR": "1"}
    return subprocess.run(args, cwd=cwd, env=env, capture_output=True, text=True, timeout=300)


def requirement_names(text: str) -> set[str]:
    names = set()
    for line in text.splitlines():
        line = line.split("#", 1)[0].strip()
        if line:
            names.add(re.split(r"[\s<>=!~;\[]", line, maxsplit=1)[0].lower())
    return names


@pytest.fixture(scope="module")
def definition() -> dict:
    return yaml.safe_load((REPO / "execution-environment.yml").read_text())


def test_definition_names_the_tarball_of_the_current_version(definition: dict) -> None:
    version = yaml.safe_load((REPO / "galaxy.yml").read_text())["version"]
    tarball = f"aitbc-ops-{version}.tar.gz"
    assert definition["version"] == 3
    assert definition["additional_build_files"] == [{"src": tarball, "dest": "collections"}]
    assert definition["dependencies"]["galaxy"] == {
        "collections": [{"name": f"collections/{tarball}", "type": "file"}]
    }
    assert definition["dependencies"]["python"] == "requirements.txt"
    assert definition["dependencies"]["system"] == "bindep.txt"
    # the collection declares the same files for EEs that install it from a Galaxy server
    meta = yaml.safe_load((REPO / "meta" / "execution-environment.yml").read_text())
    assert meta["dependencies"] == {"python": "requirements.txt", "system": "bindep.txt"}


def test_create_writes_a_context_with_the_collection_and_its_requirements(
    definition: dict, tmp_path: Path
) -> None:
    src = tmp_path / "src"
    src.mkdir()
    for name in EE_FILES:
        shutil.copy(REPO / name, src / name)
    built = run([str(BIN / "ansible-galaxy"), "collection", "build", "--output-path", str(src)], REPO)
    assert built.returncode == 0, built.stderr
    [tarball] = src.glob("aitbc-ops-*.tar.gz")
    assert tarball.name == definition["additional_build_files"][0]["src"]

    context = tmp_path / "context"
    created = run(
        [
            str(ANSIBLE_BUILDER),
            "create",
            "-f",
            str(src / "execution-environment.yml"),
            "--context",
            str(context),
            "--output-filename",
            "Containerfile",
        ],
        src,
    )
    assert created.returncode == 0, created.stdout + created.stderr
    assert "No matches" not in created.stdout + created.stderr, "the tarball must be in the build context"
    build = context / "_build"
    assert (build / "collections" / tarball.name).read_bytes() == tarball.read_bytes()
    assert (build / "requirements.txt").read_text() == (REPO / "requirements.txt").read_text()
    assert (build / "bindep.txt").read_text() == (REPO / "bindep.txt").read_text()
    assert yaml.safe_load((build / "requirements.yml").read_text()) == definition["dependencies"]["galaxy"]

    containerfile = (context / "Containerfile").read_text()
    assert "FROM $EE_BASE_IMAGE AS base" in containerfile
    assert f'ARG EE_BASE_IMAGE="{definition["images"]["base_image"]["name"]}"' in containerfile
    assert "ansible-galaxy collection install $ANSIBLE_GALAXY_CLI_COLLECTION_OPTS -r requirements.yml" in (
        containerfile
    )
    assert "--user-pip=requirements.txt --user-bindep=bindep.txt" in containerfile
    assert "ansible-core>=2.16,<2.20 ansible-runner>=2.4" in containerfile

    # The galaxy stage, as the Containerfile runs it (WORKDIR /build), offline: the collection installs.
    collections = tmp_path / "ee-collections"
    installed = run(
        [
            str(BIN / "ansible-galaxy"),
            "collection",
            "install",
            "-r",
            "requirements.yml",
            "--collections-path",
            str(collections),
        ],
        build,
    )
    assert installed.returncode == 0, installed.stdout + installed.stderr
    root = collections / "ansible_collections" / "aitbc" / "ops"
    assert (root / "plugins" / "modules" / "health.py").is_file()
    assert (root / "opsrunner" / "recorder.py").is_file(), (
        "the memory callback's recorder ships in the collection"
    )

    # The builder stage's introspection (as the Containerfile runs it) finds the collection's own requirements
    # through its meta/execution-environment.yml, besides the ones the definition lists.
    introspected = run(
        [
            str(ANSIBLE_BUILDER),
            "introspect",
            "--sanitize",
            "--user-pip=requirements.txt",
            "--user-bindep=bindep.txt",
            str(collections),
        ],
        build,
    )
    assert introspected.returncode == 0, introspected.stdout + introspected.stderr
    found = yaml.safe_load(introspected.stdout)

    def lines_from(kind: str, source: str) -> str:
        return "\n".join(line for line in found[kind] if line.endswith(f"# from collection {source}"))

    # ansible-builder leaves out what every EE has (PyYAML); the rest of the collection's list is there
    assert requirement_names(lines_from("python", "aitbc.ops")) == {
        "filelock",
        "apprise",
        "cryptography",
        "prometheus-client",
    }
    assert requirement_names(lines_from("python", "user")) == requirement_names(
        (REPO / "requirements.txt").read_text()
    )
    assert "openssh-clients [platform:rpm]" in lines_from("system", "aitbc.ops")
    assert "openssh-client [platform:dpkg]" in lines_from("system", "aitbc.ops")

"""Where things are: the project checkout, the memory store, the runner's work folder."""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path

from .memory import resolve_memory_dir

PROJECT_ENV = "OPSRUNNER_PROJECT"
WORK_DIR_ENV = "OPSRUNNER_WORK_DIR"
KEEP_ARTIFACTS_ENV = "OPSRUNNER_KEEP_ARTIFACTS"
ARTIFACT_MAX_AGE_ENV = "OPSRUNNER_ARTIFACT_MAX_AGE_DAYS"
VAULT_PASSWORD_FILE_ENV = "ANSIBLE_VAULT_PASSWORD_FILE"


class BadInput(Exception):
    """Usage or input error: the CLI prints it on one line and exits 2."""

    exit_code = 2


def is_project_root(path: Path) -> bool:
    return (path / "galaxy.yml").is_file() and (path / "playbooks").is_dir()


def find_project_root() -> Path:
    """$OPSRUNNER_PROJECT, else the checkout around the cwd, else the checkout holding this package."""
    explicit = os.environ.get(PROJECT_ENV)
    if explicit:
        return Path(explicit).resolve()
    for start in (Path.cwd(), Path(__file__).resolve().parent):
        for candidate in (start, *start.parents):
            if is_project_root(candidate):
                return candidate
    return Path(__file__).resolve().parent.parent


@dataclass
class Settings:
    project_root: Path
    memory_dir: Path
    work_dir: Path
    keep_artifacts: int = 20
    artifact_max_age_days: float = 14.0
    vault_password_files: list[str] = field(default_factory=list)

    @classmethod
    def load(cls, memory_dir: str | None = None, work_dir: str | None = None) -> Settings:
        project = find_project_root()
        vault_file = os.environ.get(VAULT_PASSWORD_FILE_ENV)
        return cls(
            project_root=project,
            memory_dir=resolve_memory_dir(memory_dir),
            work_dir=Path(work_dir or os.environ.get(WORK_DIR_ENV) or ".work/opsrunner").absolute(),
            keep_artifacts=int(os.environ.get(KEEP_ARTIFACTS_ENV, "20")),
            artifact_max_age_days=float(os.environ.get(ARTIFACT_MAX_AGE_ENV, "14")),
            vault_password_files=[vault_file] if vault_file else [],
        )

    @property
    def default_inventory(self) -> Path:
        return self.project_root / "inventory" / "local.yml"

    @property
    def ansible_cfg(self) -> Path:
        return self.project_root / "ansible.cfg"

    def playbook_path(self, name: str) -> Path:
        """A path as given, else a name under playbooks/ (with or without .yml)."""
        given = Path(name)
        if given.is_file():
            return given.resolve()
        for candidate in (name, f"{name}.yml"):
            path = self.project_root / "playbooks" / candidate
            if path.is_file():
                return path
        raise BadInput(f"unknown playbook: {name} (no such file, nor playbooks/{name}.yml)")

"""Fault: bad input from the operator. A version that is a path, or a batch size of 0, is refused with
exit 2 before anything is copied: by the CLI, and for plain ansible-playbook runs by the role's first task."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import pytest
import yaml

pytestmark = pytest.mark.integration

REPO = Path(__file__).resolve().parents[2]


def deployable_inventory(tmp_path: Path) -> Path:
    root = tmp_path / "root"
    (root / "apps" / "web").mkdir(parents=True)
    web = {
        "backend": "process",
        "app_root": f"{root}/apps/web",
        "command": f"{sys.executable} -m http.server 1 --directory {root}/apps/web/current",
        "pidfile": f"{root}/web.pid",
    }
    host = {
        "ansible_connection": "local",
        "ansible_python_interpreter": sys.executable,
        "aitbc_root": str(root),
        "aitbc_services": {"web": web},
    }
    inventory = tmp_path / "hosts.yml"
    inventory.write_text(yaml.safe_dump({"all": {"hosts": {"localhost": host}}}))
    return inventory


def artifact(tmp_path: Path) -> Path:
    folder = tmp_path / "release"
    folder.mkdir()
    (folder / "index.html").write_text("hello\n")
    return folder


@pytest.mark.parametrize(
    ("version", "serial", "message"),
    [
        ("../../../../x", "1", "bad version '../../../../x'"),
        ("1.0", "0", "bad --serial '0'"),
    ],
)
def test_the_cli_refuses_a_bad_deploy_request(
    tmp_path: Path, opsrunner, version: str, serial: str, message: str
) -> None:
    inventory = deployable_inventory(tmp_path)
    before = sorted(tmp_path.rglob("*"))
    done = opsrunner(
        "deploy",
        version,
        "--from",
        str(artifact(tmp_path)),
        "--service",
        "web",
        "--serial",
        serial,
        "-i",
        str(inventory),
    )
    assert done.rc == 2, done.stdout + done.stderr
    assert message in done.stderr
    assert not (tmp_path / "x").exists()
    assert not (tmp_path / "root" / "apps" / "web" / "artifacts").exists()
    assert [p for p in tmp_path.rglob("*") if p not in before and p.name != "release"] == [
        tmp_path / "release" / "index.html"
    ]


@pytest.mark.parametrize(
    ("extra", "message"),
    [
        ({"deploy_version": "../../../../x"}, "bad version"),
        ({"deploy_version": "1.0", "deploy_serial": 0}, "bad deploy_serial"),
    ],
)
def test_the_role_refuses_a_bad_request_before_its_first_copy(
    tmp_path: Path, ansible_playbook, extra: dict, message: str
) -> None:
    inventory = deployable_inventory(tmp_path)
    source = artifact(tmp_path)
    extra_vars = {"deploy_service": "web", "deploy_artifact": str(source), **extra}
    done = ansible_playbook(
        str(REPO / "playbooks" / "deploy.yml"), "-i", str(inventory), "-e", json.dumps(extra_vars)
    )
    assert done.rc != 0
    assert message in done.stdout, done.stdout
    assert not (tmp_path / "x").exists()
    assert not (tmp_path / "root" / "apps" / "web" / "artifacts").exists()

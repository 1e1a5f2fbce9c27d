"""aitbc.ops.release over SSH on the real test host t1: deploy, idempotence, rollback, pruning, refusals,
--check --diff, three hosts deploying into one app root at once, and module processes killed with SIGKILL
mid-unpack and mid-switch (the next run repairs)."""

from __future__ import annotations

import hashlib
import io
import json
import os
import signal
import subprocess
import tarfile
from collections.abc import Iterator
from pathlib import Path

import pytest
from adhoc import REPO, run_module

MODULE = "aitbc.ops.release"
HOST_PYTHON = "/usr/bin/python3"  # what the hosts run (3.11.2, no tarfile filter=)


def t1_of(pool):
    return next(h for h in pool.hosts if h.name == "t1")


@pytest.fixture
def app_root(ssh_hosts, request) -> Iterator[Path]:
    """A fresh app root under t1's state dir (hosts share this machine's filesystem)."""
    root = t1_of(ssh_hosts).state_dir / "release-tests" / request.node.name
    subprocess.run(["rm", "-rf", str(root)], check=True)
    root.mkdir(parents=True)
    yield root
    subprocess.run(["rm", "-rf", str(root)], check=True)


def build_release(folder: Path, version: str, members: list[tuple[str, bytes]] | None = None) -> Path:
    """releases are shipped as app-<version>/... in a .tar.gz, as `tar czf` of a build folder makes them."""
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / f"{version}.tar.gz"
    members = members or [
        (f"app-{version}/run.py", f"VERSION = {version!r}\n".encode()),
        (f"app-{version}/static/index.html", b"<h1>aitbc</h1>\n"),
    ]
    with tarfile.open(path, "w:gz") as archive:
        for name, data in members:
            info = tarfile.TarInfo(name)
            info.size, info.mode = len(data), 0o644
            archive.addfile(info, io.BytesIO(data))
    return path


def sha(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def release(pool, env, args: dict, *options: str, pattern: str = "t1"):
    return run_module(MODULE, env, args, *options, inventory=str(pool.inventory), pattern=pattern)


def on_t1(pool, env, args: dict, *options: str) -> tuple[str, dict]:
    run = release(pool, env, args, *options)
    return run.result("t1")


def info_on_t1(pool, env, app_root: Path) -> tuple[str, dict]:
    """aitbc.ops.release_info on t1."""
    run = run_module(
        "aitbc.ops.release_info",
        env,
        {"app_root": str(app_root)},
        inventory=str(pool.inventory),
        pattern="t1",
    )
    return run.result("t1")


def contents(root: Path) -> dict[str, tuple[int, int]]:
    """Everything the module manages under root (not the artifacts), with mtimes and sizes."""
    return {
        str(p.relative_to(root)): (p.lstat().st_mtime_ns, p.lstat().st_size)
        for p in root.rglob("*")
        if p.relative_to(root).parts[0] != "artifacts"
    }


def state_of(root: Path) -> dict:
    return json.loads((root / ".release-state.json").read_text())


def whole_diffs(env: dict[str, str]) -> dict[str, str]:
    """Ansible's environment with diffs shown whole (context beyond any diff of this module)."""
    return {**env, "ANSIBLE_DIFF_CONTEXT": "100"}


def shown_diff(stdout: str) -> tuple[dict, dict]:
    """The before and after that Ansible printed for --diff (Ansible takes the diff out of the result and
    shows it, as JSON text, before it): read back from the unified diff of one module result."""
    lines = stdout[stdout.index("--- before\n+++ after\n") :].splitlines()[3:]  # after the @@ line
    before: list[str] = []
    after: list[str] = []
    for line in lines:
        if not line or line[0] not in " -+":
            break
        if line[0] in " -":
            before.append(line[1:])
        if line[0] in " +":
            after.append(line[1:])
    return json.loads("\n".join(before)), json.loads("\n".join(after))


def test_deploy_idempotence_rollback_and_prune_over_ssh(ssh_hosts, ansible_env, app_root):
    artifacts = app_root / "artifacts"
    tarballs = {v: build_release(artifacts, v) for v in ("1.0", "1.1", "1.2")}

    status, res = on_t1(
        ssh_hosts,
        ansible_env,
        {
            "app_root": str(app_root),
            "version": "1.0",
            "src": str(tarballs["1.0"]),
            "checksum": "sha256:" + sha(tarballs["1.0"]),
            "state": "current",
            "deployed_by": "alice",
            "labels": {"deploy": "deployed", "service": "coordinator-api"},
        },
    )
    assert status == "CHANGED", res
    assert res["labels"] == {"deploy": "deployed", "service": "coordinator-api"}
    assert res["current"] == "1.0" and res["switched"] == {"from": None, "to": "1.0"}
    assert os.readlink(app_root / "current") == "releases/1.0"
    assert (app_root / "current" / "run.py").read_text() == "VERSION = '1.0'\n"  # app-1.0/ stripped
    assert res["history"][-1]["by"] == "alice" and res["history"][-1]["action"] == "deploy"

    status, again = on_t1(
        ssh_hosts,
        ansible_env,
        {"app_root": str(app_root), "version": "1.0", "src": str(tarballs["1.0"]), "state": "current"},
    )
    assert status == "SUCCESS" and again["changed"] is False, again

    for version in ("1.1", "1.2"):
        args = {"app_root": str(app_root), "version": version, "src": str(tarballs[version])}
        status, res = on_t1(ssh_hosts, ansible_env, {**args, "state": "present"})
        assert status == "CHANGED" and res["current"] != version and res["unpacked"] == version
        status, res = on_t1(ssh_hosts, ansible_env, {**args, "state": "current", "keep": 2})
        assert status == "CHANGED" and res["current"] == version
    assert res["pruned"] == ["1.0"] and res["previous"] == "1.1"
    assert sorted(p.name for p in (app_root / "releases").iterdir()) == ["1.1", "1.2"]

    status, back = on_t1(ssh_hosts, ansible_env, {"app_root": str(app_root), "state": "rollback"})
    assert status == "CHANGED" and back["switched"] == {"from": "1.2", "to": "1.1"}, back
    assert (app_root / "current" / "run.py").read_text() == "VERSION = '1.1'\n"
    assert [(r["version"], r["current"], r["previous"]) for r in back["releases"]] == [
        ("1.1", True, False),
        ("1.2", False, True),
    ]

    status, info = info_on_t1(ssh_hosts, ansible_env, app_root)
    assert status == "SUCCESS" and info["changed"] is False and info["current"] == "1.1"
    assert [h["action"] for h in info["history"]] == ["deploy", "deploy", "deploy", "rollback"]


def test_bad_artifacts_fail_clearly_and_change_nothing(ssh_hosts, ansible_env, app_root):
    good = build_release(app_root / "artifacts", "1")
    on_t1(
        ssh_hosts,
        ansible_env,
        {"app_root": str(app_root), "version": "1", "src": str(good), "state": "current"},
    )
    before = contents(app_root)

    other = build_release(app_root / "artifacts", "2")
    status, res = on_t1(
        ssh_hosts,
        ansible_env,
        {
            "app_root": str(app_root),
            "version": "2",
            "src": str(other),
            "checksum": "0" * 64,
            "state": "current",
        },
    )
    assert status == "FAILED!" and res["msg"].startswith("checksum mismatch") and "\n" not in res["msg"], res

    evil = build_release(
        app_root / "artifacts", "3", [("app/run.py", b"x"), ("../../evil-release", b"pwned")]
    )
    status, res = on_t1(
        ssh_hosts,
        ansible_env,
        {"app_root": str(app_root), "version": "3", "src": str(evil), "state": "current"},
    )
    assert status == "FAILED!" and "unsafe archive" in res["msg"] and "'..'" in res["msg"], res
    assert not (app_root.parent / "evil-release").exists()

    status, res = on_t1(
        ssh_hosts,
        ansible_env,
        {"app_root": str(app_root), "version": "1", "src": str(other), "state": "current"},
    )
    assert status == "FAILED!" and "refusing to overwrite" in res["msg"], res

    status, res = on_t1(
        ssh_hosts, ansible_env, {"app_root": str(app_root), "version": "1", "state": "absent"}
    )
    assert status == "FAILED!" and "it is the current release" in res["msg"], res

    after = contents(app_root)
    assert after == before and os.readlink(app_root / "current") == "releases/1"


def test_check_diff_reports_the_plan_and_changes_nothing(ssh_hosts, ansible_env, app_root):
    artifacts = app_root / "artifacts"
    for version in ("1", "2"):
        tarball = build_release(artifacts, version)
        args = {"app_root": str(app_root), "version": version, "src": str(tarball), "state": "current"}
        assert on_t1(ssh_hosts, ansible_env, args)[0] == "CHANGED"
    new = build_release(artifacts, "3")
    snapshot = contents(app_root)
    state_before = (app_root / ".release-state.json").read_bytes()

    run = release(
        ssh_hosts,
        whole_diffs(ansible_env),
        {"app_root": str(app_root), "version": "3", "src": str(new), "state": "current", "keep": 2},
        "--check",
        "--diff",
    )
    status, res = run.result("t1")
    assert status == "CHANGED", run.stdout + run.stderr
    assert "would unpack 3" in res["msg"] and "would switch from 2 to 3" in res["msg"]
    assert "would prune 1" in res["msg"] and res["pruned"] == ["1"]
    assert shown_diff(run.stdout) == (
        {"current": "2", "previous": "1", "releases": ["1", "2"]},
        {"current": "3", "previous": "2", "releases": ["2", "3"]},
    ), run.stdout

    after = contents(app_root)
    assert after == snapshot and (app_root / ".release-state.json").read_bytes() == state_before
    assert not (app_root / "releases" / "3").exists() and os.readlink(app_root / "current") == "releases/2"


def test_diff_of_a_switch_is_predicted_by_check_mode(ssh_hosts, ansible_env, app_root):
    """--diff shows current, previous and the releases on disk before and after; --check --diff shows the
    same for the switch it would make."""
    artifacts = app_root / "artifacts"
    for version in ("1", "2"):
        args = {"app_root": str(app_root), "version": version, "src": str(build_release(artifacts, version))}
        assert on_t1(ssh_hosts, ansible_env, {**args, "state": "current"})[0] == "CHANGED"
    args = {"app_root": str(app_root), "version": "3", "src": str(build_release(artifacts, "3")), "keep": 2}
    expected = (
        {"current": "2", "previous": "1", "releases": ["1", "2"]},
        {"current": "3", "previous": "2", "releases": ["2", "3"]},
    )

    env = whole_diffs(ansible_env)
    planned = release(ssh_hosts, env, {**args, "state": "current"}, "--check", "--diff")
    assert planned.result("t1")[0] == "CHANGED", planned.stdout + planned.stderr
    assert shown_diff(planned.stdout) == expected
    assert os.readlink(app_root / "current") == "releases/2"

    done = release(ssh_hosts, env, {**args, "state": "current"}, "--diff")
    assert done.result("t1")[0] == "CHANGED", done.stdout + done.stderr
    assert shown_diff(done.stdout) == expected
    assert os.readlink(app_root / "current") == "releases/3"

    back = release(ssh_hosts, env, {"app_root": str(app_root), "state": "rollback"}, "--diff")
    assert back.result("t1")[0] == "CHANGED", back.stdout + back.stderr
    assert shown_diff(back.stdout) == ({"current": "3", "previous": "2"}, {"current": "2", "previous": "3"})

    again = release(
        ssh_hosts, env, {"app_root": str(app_root), "state": "rollback", "version": "2"}, "--diff"
    )
    assert again.result("t1")[0] == "SUCCESS" and "--- before" not in again.stdout, again.stdout


def test_three_hosts_deploying_into_one_app_root_at_once(ssh_hosts, ansible_env, app_root):
    """t1..t3 share the filesystem: three module runs race for one app root, the lock serialises them."""
    tarball = build_release(app_root / "artifacts", "7")
    run = release(
        ssh_hosts,
        ansible_env,
        {"app_root": str(app_root), "version": "7", "src": str(tarball), "state": "current"},
        "--forks",
        "3",
        pattern="t1:t2:t3",
    )
    results = {name: run.result(name) for name in ("t1", "t2", "t3")}
    assert [s for s, _r in results.values()].count("CHANGED") == 1, run.stdout + run.stderr
    assert all(r["current"] == "7" for _s, r in results.values())
    assert sorted(p.name for p in (app_root / "releases").iterdir()) == ["7"]
    assert [h["version"] for h in state_of(app_root)["history"]] == ["7"]


# --------------------------------------------------------------------------------------------------
# SIGKILL in the middle. The hook is in the test's driver script only: it wraps the shipped functions
# (switch_current, os.replace of the temp link, extract_archive), says where it stopped, and waits to die.

DRIVER = r"""
import json, os, sys, time
sys.path.insert(0, sys.argv[1])
from ansible_collections.aitbc.ops.plugins.module_utils import release as rl

where, root, version, src = sys.argv[2:6]

def stop(point):
    print(point, flush=True)
    time.sleep(3600)

if where == "after-switch":          # the symlink is switched, the state not yet written
    real_switch = rl.switch_current
    def hooked(layout, v):
        real_switch(layout, v)
        stop("switched")
    rl.switch_current = hooked
elif where == "before-replace":      # current.tmp-<pid> made, not yet renamed over current
    real_replace = os.replace
    def hooked(a, b, **kw):
        if os.path.basename(str(a)).startswith(rl.LINK_TMP_PREFIX):
            stop("temp link made")
        return real_replace(a, b, **kw)
    os.replace = hooked
elif where == "mid-unpack":          # members written to releases/.tmp-<version>-<pid>/
    real_extract = rl.extract_archive
    def hooked(artifact, dest):
        real_extract(artifact, dest)
        stop("unpacked to tmp")
    rl.extract_archive = hooked

rl.release(rl.Request(app_root=root, state="current", version=version, src=src, deployed_by="killed"))
print("finished", flush=True)
"""


def kill_at(where: str, root: Path, version: str, src: Path) -> int:
    """Run a deploy in a subprocess with the host's Python, SIGKILL it at ``where``; returns its pid."""
    env = {**os.environ, "PYTHONDONTWRITEBYTECODE": "1"}
    proc = subprocess.Popen(
        [HOST_PYTHON, "-c", DRIVER, str(REPO / "collections"), where, str(root), version, str(src)],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env=env,
    )
    try:
        line = proc.stdout.readline().strip()
        assert line and line != "finished", proc.stderr.read()
        os.kill(proc.pid, signal.SIGKILL)
        assert proc.wait(timeout=30) == -signal.SIGKILL
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    return proc.pid


def deployed(ssh_hosts, ansible_env, root: Path, version: str) -> None:
    src = build_release(root / "artifacts", version)
    args = {"app_root": str(root), "version": version, "src": str(src), "state": "current"}
    status, res = on_t1(ssh_hosts, ansible_env, args)
    assert status == "CHANGED", res


def assert_current_is_complete(root: Path, version: str) -> None:
    current = root / "current"
    assert os.readlink(current) == f"releases/{version}"
    assert (current / "run.py").read_text() == f"VERSION = {version!r}\n"
    assert json.loads((current / ".release.json").read_text())["version"] == version


def test_sigkill_between_the_switch_and_the_state_write_is_repaired(ssh_hosts, ansible_env, app_root):
    deployed(ssh_hosts, ansible_env, app_root, "1")
    kill_at("after-switch", app_root, "2", build_release(app_root / "artifacts", "2"))

    assert_current_is_complete(app_root, "2")  # the switch is atomic: a whole release either way
    stale = state_of(app_root)
    assert stale["current"] == "1" and stale["pending"]["to"] == "2"

    status, info = info_on_t1(ssh_hosts, ansible_env, app_root)
    assert status == "SUCCESS" and info["current"] == "2" and "needs repair" in info["msg"], info
    assert state_of(app_root) == stale  # info only reports

    status, fixed = on_t1(
        ssh_hosts, ansible_env, {"app_root": str(app_root), "version": "2", "state": "current"}
    )
    assert status == "CHANGED" and fixed["repaired"] is True and fixed["switched"] is None, fixed
    assert fixed["current"] == "2" and fixed["previous"] == "1"
    assert "completed the interrupted deploy to 2" in fixed["msg"]
    state = state_of(app_root)
    assert state["current"] == "2" and state["previous"] == "1" and "pending" not in state
    assert [(h["version"], h["by"]) for h in state["history"]][-1] == ("2", "killed")

    status, settled = on_t1(
        ssh_hosts, ansible_env, {"app_root": str(app_root), "version": "2", "state": "current"}
    )
    assert status == "SUCCESS" and settled["changed"] is False and settled["repaired"] is False

    status, back = on_t1(ssh_hosts, ansible_env, {"app_root": str(app_root), "state": "rollback"})
    assert status == "CHANGED" and back["current"] == "1"
    assert_current_is_complete(app_root, "1")


def test_sigkill_before_the_link_is_renamed_leaves_the_old_release(ssh_hosts, ansible_env, app_root):
    deployed(ssh_hosts, ansible_env, app_root, "1")
    pid = kill_at("before-replace", app_root, "2", build_release(app_root / "artifacts", "2"))

    assert_current_is_complete(app_root, "1")
    assert os.readlink(app_root / f"current.tmp-{pid}") == "releases/2"  # the leftover temp link
    assert (app_root / "releases" / "2" / "run.py").is_file()  # unpacked before the switch

    status, res = on_t1(
        ssh_hosts, ansible_env, {"app_root": str(app_root), "version": "1", "state": "current"}
    )
    assert status == "CHANGED" and res["repaired"] is True and res["current"] == "1", res
    assert "dropped the unfinished switch to 2" in res["msg"]
    assert not os.path.lexists(app_root / f"current.tmp-{pid}")
    assert [r["version"] for r in res["releases"]] == ["1", "2"]

    status, res = on_t1(
        ssh_hosts, ansible_env, {"app_root": str(app_root), "version": "2", "state": "current"}
    )
    assert status == "CHANGED" and res["switched"] == {"from": "1", "to": "2"} and res["unpacked"] is None
    assert_current_is_complete(app_root, "2")


def test_sigkill_mid_unpack_leaves_no_half_release(ssh_hosts, ansible_env, app_root):
    deployed(ssh_hosts, ansible_env, app_root, "1")
    src = build_release(app_root / "artifacts", "2")
    pid = kill_at("mid-unpack", app_root, "2", src)

    assert not (app_root / "releases" / "2").exists()
    assert (app_root / "releases" / f".tmp-2-{pid}").is_dir()
    assert_current_is_complete(app_root, "1")
    status, info = info_on_t1(ssh_hosts, ansible_env, app_root)
    assert [r["version"] for r in info["releases"]] == ["1"]

    status, res = on_t1(
        ssh_hosts,
        ansible_env,
        {"app_root": str(app_root), "version": "2", "src": str(src), "state": "current"},
    )
    assert status == "CHANGED" and res["repaired"] and res["unpacked"] == "2", res
    assert not (app_root / "releases" / f".tmp-2-{pid}").exists()
    assert_current_is_complete(app_root, "2")

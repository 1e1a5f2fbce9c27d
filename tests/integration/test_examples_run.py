"""Every module's EXAMPLES run: one real ansible-playbook run (local connection) executes each module's
EXAMPLES block, verbatim, on the example host (examples_host.py: private namespaces that look like a
production AITBC host) and every example task must come back ok or changed, never skipped.

One play per module, in an order where state and registered results flow from one module's examples to
the next: the service examples start the coordinator that the health examples probe and stop the node
whose chain database the restore example puts back; the backup set is verified, listed (`backups`),
restored from and pruned; the release examples' `deploy` is the decision example's `deploy_result`.
A few "Given:" tasks make what the examples assume true (earlier releases deployed with the release
module, an off-host copy of the set). The variables the examples reference are the host's: the
collection's own service catalogue (inventory/group_vars/all/aitbc.yml) with the production layout in
host_vars. The unit test tests/unit/test_module_examples.py checks the same EXAMPLES statically.
"""

from __future__ import annotations

import concurrent.futures
import hashlib
import importlib
import json
import os
import secrets
import subprocess
import sys
from collections.abc import Iterator
from dataclasses import astuple, dataclass
from pathlib import Path
from typing import Any

import pytest
import yaml
from dockerd import DockerEngine, docker_engine  # noqa: F401 - the session fixture
from examples_host import (
    APP_ROOT,
    CHAIN_ID,
    DATA_DIR,
    LOG_DIR,
    PORTS,
    PYTHON,
    RUN_DIR,
    ExampleHost,
    unavailable,
)

from opsrunner.memory import MemoryStore

pytestmark = pytest.mark.integration

REPO = Path(__file__).resolve().parents[2]
if str(REPO / "collections") not in sys.path:
    sys.path.insert(0, str(REPO / "collections"))
ANSIBLE_PLAYBOOK = str(Path(sys.executable).parent / "ansible-playbook")
CATALOGUE = REPO / "inventory" / "group_vars" / "all" / "aitbc.yml"

# The play order (see the module docstring); every module of plugins/modules appears once.
ORDER = (
    "service",
    "health",
    "diagnostics",
    "log_review",
    "env_file",
    "backup",
    "backup_verify",
    "backup_info",
    "restore",
    "backup_prune",
    "release",
    "release_info",
    "decision",
)
APP = f"{APP_ROOT}/apps/coordinator-api"
# Deployed before the examples run, so theirs has something to roll back to and an old one to delete.
EARLIER_RELEASES = ("1.2.0", "1.3.9", "1.4.1")
NEW_RELEASE = "1.4.2"
CONTAINER = "aitbc-redis"  # the docker example's container
GIVEN = "Given: "
OK = ("ok", "changed")
# ansible-core has no JSON stdout callback (that one is in ansible.posix, not installed here): this one
# prints the run as one document, each task with every host's result, as the examples registered it.
CALLBACK = """
from __future__ import annotations

import json

from ansible.plugins.callback import CallbackBase


class CallbackModule(CallbackBase):
    CALLBACK_VERSION = 2.0
    CALLBACK_TYPE = "stdout"
    CALLBACK_NAME = "examples_report"

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self.plays = []

    def v2_playbook_on_play_start(self, play):
        self.plays.append({"play": {"name": play.get_name()}, "tasks": []})

    def v2_playbook_on_task_start(self, task, is_conditional):
        self.plays[-1]["tasks"].append({"task": {"name": task.get_name()}, "hosts": {}})

    def _record(self, result, **status):
        # _dump_results drops internal keys and masks no_log results, as the screen output does.
        data = {**json.loads(self._dump_results(result._result)), **status}
        self.plays[-1]["tasks"][-1]["hosts"][result._host.get_name()] = data

    def v2_runner_on_ok(self, result):
        self._record(result)

    def v2_runner_on_failed(self, result, ignore_errors=False):
        self._record(result, failed=True)

    def v2_runner_on_skipped(self, result):
        self._record(result, skipped=True)

    def v2_runner_on_unreachable(self, result):
        self._record(result, unreachable=True)

    def v2_playbook_on_stats(self, stats):
        totals = {host: stats.summarize(host) for host in sorted(stats.processed)}
        self._display.display(json.dumps({"plays": self.plays, "stats": totals}))
"""


# --------------------------------------------------------------------------- the playbook


def example_tasks(module: str) -> list[dict[str, Any]]:
    plugin = importlib.import_module(f"ansible_collections.aitbc.ops.plugins.modules.{module}")
    tasks = yaml.safe_load(plugin.EXAMPLES)
    assert isinstance(tasks, list) and tasks, f"{module}: EXAMPLES is not a list of tasks"
    return tasks


def given_releases(dist: Path) -> list[dict[str, Any]]:
    """Earlier deploys, done the way the deploy role does them: artifact to the host, then the module."""
    return [
        {
            "name": f"{GIVEN}the artifacts folder of the coordinator",
            "ansible.builtin.file": {"path": f"{APP}/artifacts", "state": "directory", "mode": "0750"},
        },
        {
            "name": f"{GIVEN}the artifacts of earlier deploys on the host",
            "ansible.builtin.copy": {
                "src": f"{dist}/coordinator-api-{{{{ item }}}}.tar.gz",
                "dest": f"{APP}/artifacts/{{{{ item }}}}.tar.gz",
                "mode": "0640",
            },
            "loop": list(EARLIER_RELEASES),
        },
        {
            "name": f"{GIVEN}releases {', '.join(EARLIER_RELEASES)} deployed one after the other",
            "aitbc.ops.release": {
                "app_root": APP,
                "version": "{{ item }}",
                "src": f"{APP}/artifacts/{{{{ item }}}}.tar.gz",
                "state": "current",
            },
            "loop": list(EARLIER_RELEASES),
        },
    ]


def given_offhost_copy() -> list[dict[str, Any]]:
    """The role's off-host copy of the newest set, for the example that re-checks it on the controller."""
    return [
        {
            "name": f"{GIVEN}the newest set copied to the controller's backup store",
            "ansible.builtin.copy": {
                "src": "{{ backup.backup.path }}/",
                "dest": "/srv/backup-store/{{ inventory_hostname }}/{{ backup.backup.set }}/",
                "remote_src": True,
                "mode": "preserve",
            },
            "delegate_to": "localhost",
        }
    ]


def play(name: str, tasks: list[dict[str, Any]], pre_tasks: list[dict[str, Any]] | None = None) -> dict:
    return {
        "name": name,
        "hosts": "localhost",
        "gather_facts": False,
        **({"pre_tasks": pre_tasks} if pre_tasks else {}),
        "tasks": tasks,
    }


def playbook(dist: Path) -> list[dict[str, Any]]:
    plays = [play(f"{GIVEN}the coordinator's earlier releases", given_releases(dist))]
    for module in ORDER:
        pre = given_offhost_copy() if module == "backup_verify" else None
        plays.append(play(play_name(module), example_tasks(module), pre))
    return plays


def play_name(module: str) -> str:
    return f"EXAMPLES of aitbc.ops.{module}"


@dataclass(frozen=True)
class Secrets:
    redis_password: str
    backup_key: str
    api_keys: str
    hmac_secret: str

    @classmethod
    def new(cls) -> Secrets:
        return cls(*(secrets.token_urlsafe(18) for _ in range(4)))


def host_vars(keys: Secrets, artifact_sha256: str) -> dict[str, Any]:
    """What the examples reference, as a production host's inventory would hold it."""
    return {
        # The catalogue derives every path from aitbc_root; a production host keeps the FHS layout.
        "aitbc_root": APP_ROOT,
        "aitbc_run_dir": RUN_DIR,
        "aitbc_log_dir": LOG_DIR,
        "aitbc_data_dir": DATA_DIR,
        "aitbc_python": PYTHON,
        "aitbc_chain_id": CHAIN_ID,
        "aitbc_ports": PORTS,
        "aitbc_service_overrides": {"coordinator-api": {"env": {"APP_ENV": "production"}}},
        # In ansible-vault on a real host.
        "redis_password": keys.redis_password,
        "vault_aitbc_backup_key": keys.backup_key,
        "vault_coordinator_api_keys": keys.api_keys,
        "vault_hmac_secret": keys.hmac_secret,
        # What a deploy pipeline passes in: the build's version and checksum. Its result, for the
        # decision example, is the release examples' switch (registered as `deploy`).
        "version": NEW_RELEASE,
        "artifact_sha256": artifact_sha256,
        "deploy_result": "{{ deploy }}",
    }


def write_project(workdir: Path, keys: Secrets, dist: Path) -> Path:
    """Playbook, host_vars and group_vars (the catalogue) side by side, as ansible-playbook finds them."""
    artifact = dist / f"coordinator-api-{NEW_RELEASE}.tar.gz"
    sha = hashlib.sha256(artifact.read_bytes()).hexdigest()
    (workdir / "host_vars").mkdir()
    (workdir / "host_vars" / "localhost.yml").write_text(yaml.safe_dump(host_vars(keys, sha)))
    (workdir / "group_vars" / "all").mkdir(parents=True)
    (workdir / "group_vars" / "all" / "aitbc.yml").symlink_to(CATALOGUE)
    path = workdir / "examples.yml"
    path.write_text(yaml.safe_dump(playbook(dist), sort_keys=False, width=120))
    return path


def build_artifacts(dist: Path) -> None:
    """Release tarballs of the demo coordinator, where the release example's copy looks (dist/)."""
    for version in (*EARLIER_RELEASES, NEW_RELEASE):
        out = dist / f"coordinator-api-{version}.tar.gz"
        subprocess.run(
            [
                PYTHON,
                str(REPO / "demo" / "aitbc_demo.py"),
                "release",
                "--version",
                version,
                "--out",
                str(out),
            ],
            check=True,
            capture_output=True,
        )


# --------------------------------------------------------------------------- results


@dataclass(frozen=True)
class Outcome:
    play: str
    task: str
    result: dict[str, Any]

    @property
    def status(self) -> str:
        if self.result.get("unreachable"):
            return "unreachable"
        if self.result.get("failed"):
            return "failed"
        if self.result.get("skipped"):  # a loop is skipped only when every item is
            return "skipped"
        return "changed" if self.result.get("changed") else "ok"

    def why(self) -> str:
        items = [r for r in self.result.get("results") or [] if r.get("failed")]
        detail = self.result.get("msg") or (items[0].get("msg") if items else "")
        return f"{self.play} / {self.task}: {self.status}: {str(detail)[:400]}"


def outcomes(report: dict[str, Any]) -> list[Outcome]:
    return [
        Outcome(p["play"]["name"], t["task"]["name"], t["hosts"]["localhost"])
        for p in report["plays"]
        for t in p["tasks"]
        if "localhost" in t["hosts"]
    ]


def one(found: list[Outcome], play_of: str, task: str) -> dict[str, Any]:
    [match] = [o.result for o in found if o.play == play_name(play_of) and o.task == task]
    return match


def sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


# --------------------------------------------------------------------------- fixtures


@dataclass
class World:
    host: ExampleHost
    workdir: Path
    keys: Secrets
    dist: Path


def start_container(engine: DockerEngine) -> None:
    # No redis in the image: the example only asks the daemon whether the container runs.
    engine.run("rm", "-f", CONTAINER, check=False)
    engine.run(
        "run", "-d", "--name", CONTAINER, "--network", "none", "--init", engine.image, "sleep", "infinity"
    )


@pytest.fixture
def world(tmp_path: Path, docker_engine: DockerEngine) -> Iterator[World]:  # noqa: F811 - pytest fixture
    reason = unavailable()
    if reason:
        pytest.skip(reason)
    engine = docker_engine
    keys, dist = Secrets.new(), tmp_path / "dist"
    host: ExampleHost | None = None
    try:
        # The container and the artifacts while the host's world comes up.
        with concurrent.futures.ThreadPoolExecutor(max_workers=2) as pool:
            jobs = [pool.submit(start_container, engine), pool.submit(build_artifacts, dist)]
            host = ExampleHost.start(tmp_path / "host", keys.redis_password, str(engine.socket))
            for job in jobs:
                job.result()
        yield World(host, tmp_path, keys, dist)
    finally:
        try:
            if host is not None:
                host.close()
        finally:
            engine.run("rm", "-f", CONTAINER, check=False)


def run_examples(world: World) -> tuple[subprocess.CompletedProcess[str], dict[str, Any]]:
    path = write_project(world.workdir, world.keys, world.dist)
    plugins = world.workdir / "callback_plugins"
    plugins.mkdir()
    (plugins / "examples_report.py").write_text(CALLBACK)
    env = {k: v for k, v in os.environ.items() if not k.startswith(("ANSIBLE_", "OPSRUNNER_"))}
    env |= {
        "ANSIBLE_CONFIG": str(REPO / "ansible.cfg"),
        "ANSIBLE_CALLBACK_PLUGINS": str(plugins),
        "ANSIBLE_STDOUT_CALLBACK": "examples_report",
        # The decision records come from this callback, into a memory store of the test's own.
        "ANSIBLE_CALLBACKS_ENABLED": "aitbc.ops.memory",
        "OPSRUNNER_MEMORY_DIR": str(world.workdir / "ai-memory"),
        "ANSIBLE_NOCOLOR": "1",
        "ANSIBLE_DEPRECATION_WARNINGS": "0",
        "USER": env.get("USER") or "root",  # the release example records who deployed
    }
    argv = [ANSIBLE_PLAYBOOK, "-i", "localhost,", "-c", "local", str(path)]
    proc = world.host.run(argv, env=env, cwd=world.workdir, timeout=300)
    (world.workdir / "report.json").write_text(proc.stdout)  # kept with the test's tmp_path
    try:
        report = json.loads(proc.stdout)
    except ValueError:
        pytest.fail(
            f"ansible-playbook printed no JSON (rc {proc.returncode}):\n{proc.stdout[-3000:]}\n{proc.stderr}"
        )
    return proc, report


# --------------------------------------------------------------------------- the test


def test_module_order_covers_every_module() -> None:
    modules = sorted(p.stem for p in (REPO / "plugins" / "modules").glob("*.py") if p.stem != "__init__")
    assert sorted(ORDER) == modules


def test_every_example_runs(world: World) -> None:
    proc, report = run_examples(world)
    found = outcomes(report)

    failed = [o.why() for o in found if o.status not in (*OK, "skipped")]
    assert not failed, "\n".join(failed)
    assert proc.returncode == 0, proc.stderr[-3000:]
    for module in ORDER:
        ran = [o for o in found if o.play == play_name(module) and not o.task.startswith(GIVEN)]
        assert [o.task for o in ran] == [t["name"] for t in example_tasks(module)], module
        # Each `when:` of the examples holds on this host, so every example really ran.
        assert all(o.status in OK for o in ran), [o.why() for o in ran if o.status not in OK]
    given = [o for o in found if o.task.startswith(GIVEN)]
    assert len(given) == 4 and all(o.status in OK for o in given), [o.why() for o in given]

    check_services(found)
    check_backups(world.host, found)
    check_releases(world.host, found)
    check_records(world, found)
    check_no_secret_leaked(world, proc)


def check_services(found: list[Outcome]) -> None:
    started = one(found, "service", "Start the coordinator API from the service catalogue")
    assert started["changed"] and started["service"]["active"], started
    stopped = one(found, "service", "Stop a service, whichever manager runs it (backend detected)")
    assert stopped["changed"] and stopped["service"]["backend"] == "supervisor", stopped
    container = one(found, "service", "Query a container on a rootless Docker daemon")
    assert container["service"]["active"] is True and container["service"]["backend"] == "docker"

    assert one(found, "health", "Check the AITBC stack")["healthy"] is True
    outside = one(found, "health", "Heartbeat - report instead of failing")
    assert outside["healthy"] is False  # api.example.org and db.internal answer on loopback: refused

    bundle = one(found, "diagnostics", "Collect an incident bundle for the AITBC stack")["diagnostics"]
    coordinator = bundle["processes"]["services"]["coordinator-api"]
    assert coordinator["found_by"] == "pidfile" and coordinator["running"], coordinator
    assert bundle["logs"]["services"]["coordinator-api"]["lines"], bundle["logs"]

    review = one(found, "log_review", "Review the new lines of two logs and a journal unit")
    errors = {r["service"]: r["errors"] for r in review["reviews"]}
    assert errors["coordinator-api"] == 2, review["reviews"]


def check_backups(host: ExampleHost, found: list[Outcome]) -> None:
    written = one(
        found, "backup", "Back up the coordinator and chain databases, the wallet keystore and Redis"
    )
    folder = host.path(written["backup"]["path"])
    manifest = json.loads((folder / "manifest.json").read_text())
    assert manifest["verification"]["ok"] is True, manifest.get("verification")
    sums = [line.split(None, 1) for line in (folder / "SHA256SUMS").read_text().splitlines()]
    assert len(sums) == 4 and all(sha256(folder / name.lstrip("*")) == digest for digest, name in sums)

    restored = one(
        found, "restore", "Restore the chain database from the newest verified set (the node is stopped)"
    )
    assert restored["changed"] and restored["set"] == written["backup"]["path"], restored
    [item] = restored["restored"]
    assert item["target"] == f"{DATA_DIR}/chain/chain.db"
    assert sha256(host.path(item["target"])) == sha256(folder / item["file"])


def check_releases(host: ExampleHost, found: list[Outcome]) -> None:
    assert one(found, "release", "Back to a named release still on the host")["switched"] == {
        "from": "1.4.1",
        "to": "1.3.9",
    }
    app = host.path(APP)
    assert os.readlink(app / "current") == "releases/1.3.9"
    assert sorted(p.name for p in (app / "releases").iterdir()) == ["1.3.9", "1.4.1", NEW_RELEASE]
    info = one(found, "release_info", "Read the coordinator's releases")
    assert (info["current"], info["previous"]) == ("1.3.9", "1.4.1"), info


def check_records(world: World, found: list[Outcome]) -> None:
    env_file = world.host.path(f"{APP_ROOT}/config/coordinator-api.env")
    assert env_file.stat().st_mode & 0o777 == 0o600
    assert f"HMAC_SECRET={world.keys.hmac_secret}" in env_file.read_text()

    decisions = MemoryStore(world.workdir / "ai-memory").decisions()
    assert sorted((d.kind, d.outcome) for d in decisions) == [("deploy", "ok"), ("restore", "ok")], decisions
    assert {d.decision for d in decisions} >= {f"Deploy coordinator-api {NEW_RELEASE}"}


def check_no_secret_leaked(world: World, proc: subprocess.CompletedProcess[str]) -> None:
    """The vault values reach the host's files (the .env, Redis' AUTH) but no output and no memory record."""
    memory = [p.read_text() for p in (world.workdir / "ai-memory").rglob("*") if p.is_file()]
    for text in (proc.stdout, proc.stderr, *memory):
        assert not [value for value in astuple(world.keys) if value in text]

"""A real Redmine (Debian's redmine + redmine-sqlite) for integration tests.

`redmine_server` (session fixture) starts Redmine 5 from a fresh SQLite database in a temp folder of its
own, on a free loopback port, as www-data (as root it would take over Redmine's log files), enables the
REST API, reads the admin's API key and creates a project; at the end it stops Redmine by PID and removes
the folder. Use it from a test module with `from redmine import redmine_server  # noqa: F401`.

Nothing of the system's Redmine is changed: the Gemfile that adds webrick (Ruby 3.1 dropped it; Redmine's
Gemfile.local would be the system-wide place) and its lock live in the temp folder (BUNDLE_GEMFILE), and
DATABASE_URL points at the copied database. The pristine database (migrated, default data loaded, about
8 s) is built once and cached in .work/redmine/ (gitignored); each session copies it.

Recipe measured on these machines: ../shared/notes/real-parts.md ("Redmine 5.0").
CLI (prebuild the cached database):  python tests/integration/redmine.py pristine
"""

from __future__ import annotations

import os
import pwd
import shutil
import signal
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from ports import free_port

REPO = Path(__file__).resolve().parents[2]
REDMINE_ROOT = Path("/usr/share/redmine")
SYSTEM_GEMFILE = REDMINE_ROOT / "Gemfile"
SYSTEM_LOCK = Path("/var/lib/redmine/Gemfile.lock")
CACHE = REPO / ".work" / "redmine"
USER = "www-data"
PROJECT = "aitbc-ops"
START_TIMEOUT = 120.0  # it listens only once fully loaded: about 20 s cold, 3-10 s warm
STOP_GRACE = 15.0
TOOLS = ("setpriv", "bundle", "rackup")


class Unavailable(RuntimeError):
    """Redmine cannot run here; the message says why (tests skip with it)."""


def _log(msg: str) -> None:
    print(f"redmine: {msg}", file=sys.stderr, flush=True)


def redmine_unavailable() -> str | None:
    """Why a Redmine cannot start here (before anything is built), or None."""
    if os.geteuid() != 0:
        return "Redmine runs as www-data, which needs root to switch to"
    if not SYSTEM_GEMFILE.is_file():
        return "Redmine is not installed (Debian packages redmine, redmine-sqlite)"
    missing = [tool for tool in TOOLS if shutil.which(tool) is None]
    if missing:
        return f"Redmine needs {', '.join(missing)} on PATH (from util-linux, ruby-bundler, ruby-rack)"
    try:
        pwd.getpwnam(USER)
    except KeyError:
        return f"Redmine runs as {USER}, which does not exist here"
    if not list(Path("/usr/share/redmine/instances").glob("*/config")) and not Path("/etc/redmine").is_dir():
        return "Redmine has no instance configuration (/etc/redmine)"
    return None


def _redmine_version() -> str:
    """The package version, so a Redmine upgrade builds a new pristine database."""
    done = subprocess.run(
        ["dpkg-query", "-W", "-f=${Version}", "redmine"], capture_output=True, text=True, check=False
    )
    return done.stdout.strip().replace(":", "_").replace("/", "_") or "unknown"


# --------------------------------------------------------------------------- a folder www-data owns


@dataclass
class Workspace:
    """A temp folder owned by www-data with the Gemfile, its lock and the database of one Redmine."""

    folder: Path

    @property
    def database(self) -> Path:
        return self.folder / "db.sqlite3"

    @property
    def log(self) -> Path:
        return self.folder / "rackup.log"

    def env(self) -> dict[str, str]:
        return {
            "PATH": "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin",
            "LANG": "C.UTF-8",
            "HOME": str(self.folder),
            "BUNDLE_GEMFILE": str(self.folder / "Gemfile"),
            "REDMINE_INSTANCE": "default",
            "RAILS_ENV": "production",
            "DATABASE_URL": f"sqlite3:{self.database}",
        }

    def argv(self, *args: str, extra_env: dict[str, str] | None = None) -> list[str]:
        """`args` as www-data with this workspace's environment only (run them in Redmine's folder)."""
        env = [f"{key}={value}" for key, value in {**self.env(), **(extra_env or {})}.items()]
        return ["setpriv", f"--reuid={USER}", f"--regid={USER}", "--init-groups", "env", "-i", *env, *args]

    def run(self, *args: str, timeout: float = 120.0, extra_env: dict[str, str] | None = None) -> str:
        argv = self.argv(*args, extra_env=extra_env)
        done = subprocess.run(
            argv, cwd=REDMINE_ROOT, capture_output=True, text=True, timeout=timeout, check=False
        )
        if done.returncode != 0:
            tail = (done.stderr or done.stdout).strip().splitlines()[-5:]
            raise Unavailable(f"{' '.join(args[:3])} failed (exit {done.returncode}): {' / '.join(tail)}")
        return done.stdout

    def remove(self) -> None:
        shutil.rmtree(self.folder, ignore_errors=True)


def new_workspace(database: Path | None) -> Workspace:
    """A fresh workspace: /tmp/aitbc-redmine-XXXX (pytest's tmp folders are 0700 root, closed to www-data)."""
    user = pwd.getpwnam(USER)
    folder = Path(tempfile.mkdtemp(prefix="aitbc-redmine-"))
    workspace = Workspace(folder)
    (folder / "Gemfile").write_text(f'eval_gemfile "{SYSTEM_GEMFILE}"\ngem "webrick"\n')
    shutil.copyfile(SYSTEM_LOCK, folder / "Gemfile.lock")
    if database is not None:
        shutil.copyfile(database, workspace.database)
    for path in (folder, *folder.iterdir()):
        os.chown(path, user.pw_uid, user.pw_gid)
    # Resolves the bundle from installed gems only (no network): about 0.5 s.
    workspace.run("bundle", "install", "--local", "--quiet", timeout=120)
    return workspace


# --------------------------------------------------------------------------- the pristine database


def ensure_pristine(cache: Path = CACHE) -> Path:
    """The migrated database with Redmine's default data (English), built once per Redmine version."""
    target = cache / f"pristine-{_redmine_version()}.sqlite3"
    if target.is_file():
        return target
    _log(f"building {target} (once; about 8 s)")
    workspace = new_workspace(None)
    try:
        # SCHEMA=/dev/null: the package's db/schema.rb cannot be dumped into (exit 1 otherwise).
        workspace.run("bundle", "exec", "rake", "db:migrate", extra_env={"SCHEMA": "/dev/null"}, timeout=300)
        workspace.run("bundle", "exec", "rake", "redmine:load_default_data", extra_env={"REDMINE_LANG": "en"})
        cache.mkdir(parents=True, exist_ok=True)
        building = target.with_name(f".{target.name}.{os.getpid()}.tmp")
        shutil.copyfile(workspace.database, building)
        os.replace(building, target)
    finally:
        workspace.remove()
    return target


# --------------------------------------------------------------------------- the server


ENABLE_API = (
    'Setting.rest_api_enabled = "1"; u = User.find_by_login("admin"); u.must_change_passwd = false; '
    'u.save!; puts "KEY=#{u.api_key}"'
)


@dataclass
class RedmineServer:
    url: str
    api_key: str
    project: str
    pid: int
    workspace: Workspace

    def settings(self, **overrides: Any) -> dict[str, Any]:
        """The inventory variable `aitbc_tracker` for this server."""
        return {
            "backend": "redmine",
            "url": self.url,
            "project": self.project,
            "api_key": self.api_key,
            "timeout": 20,
            **overrides,
        }

    def api(self, key: str | None = None) -> Any:
        from redminelib import Redmine

        return Redmine(self.url, key=key or self.api_key, requests={"timeout": 20})

    def log_tail(self, lines: int = 20) -> str:
        try:
            return "\n".join(self.workspace.log.read_text(errors="replace").splitlines()[-lines:])
        except OSError:
            return ""

    def stop(self) -> None:
        _stop(self.pid)
        self.workspace.remove()


def _stop(pid: int) -> None:
    """SIGTERM, then SIGKILL after STOP_GRACE; the PID is our child (setpriv execs into ruby)."""
    try:
        os.kill(pid, signal.SIGTERM)
    except ProcessLookupError:
        return
    deadline = time.monotonic() + STOP_GRACE
    while time.monotonic() < deadline:
        finished, _ = os.waitpid(pid, os.WNOHANG)
        if finished:
            return
        time.sleep(0.1)
    os.kill(pid, signal.SIGKILL)
    os.waitpid(pid, 0)


def _wait_ready(url: str, proc: subprocess.Popen[bytes], log: Path) -> None:
    deadline = time.monotonic() + START_TIMEOUT
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            tail = log.read_text(errors="replace").strip().splitlines()[-5:]
            raise Unavailable(f"rackup exited with {proc.returncode}: {' / '.join(tail)}")
        try:
            with urllib.request.urlopen(f"{url}/issue_statuses.json", timeout=5) as answer:
                if answer.status == 200:
                    return
        except (urllib.error.URLError, OSError):
            pass
        time.sleep(0.5)
    raise Unavailable(f"Redmine did not answer on {url} within {START_TIMEOUT:g} s")


def start_redmine(project: str = PROJECT) -> RedmineServer:
    """Redmine on a free loopback port from a copy of the pristine database, with `project` created."""
    reason = redmine_unavailable()
    if reason:
        raise Unavailable(reason)
    workspace = new_workspace(ensure_pristine())
    try:
        output = workspace.run("bin/rails", "runner", ENABLE_API)
        keys = [line[4:].strip() for line in output.splitlines() if line.startswith("KEY=")]
        if not keys or not keys[0]:
            raise Unavailable("rails runner printed no admin API key")
        port = free_port()
        url = f"http://127.0.0.1:{port}"
        started = time.monotonic()
        with workspace.log.open("wb") as log:
            proc = subprocess.Popen(
                workspace.argv("rackup", "-E", "production", "-o", "127.0.0.1", "-p", str(port)),
                cwd=REDMINE_ROOT,
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=subprocess.STDOUT,
            )
        try:
            _wait_ready(url, proc, workspace.log)
        except BaseException:
            _stop(proc.pid)
            raise
        _log(f"ready on {url} in {time.monotonic() - started:.1f} s (pid {proc.pid})")
        server = RedmineServer(url=url, api_key=keys[0], project=project, pid=proc.pid, workspace=workspace)
    except BaseException:
        workspace.remove()
        raise
    try:
        server.api().project.create(name="aitbc-ops tickets", identifier=project, is_public=False)
    except BaseException:
        server.stop()
        raise
    return server


@pytest.fixture(scope="session")
def redmine_server() -> Iterator[RedmineServer]:
    """A private Redmine (`.url`, `.api_key`, `.project`, `.settings()` for aitbc_tracker), stopped at the
    end of the session."""
    try:
        server = start_redmine()
    except Unavailable as exc:
        pytest.skip(f"no Redmine: {exc}")
    try:
        yield server
    finally:
        server.stop()


if __name__ == "__main__":
    if sys.argv[1:] == ["pristine"]:
        why = redmine_unavailable()
        if why:
            sys.exit(f"redmine: {why}")
        print(ensure_pristine())
    else:
        sys.exit("usage: python tests/integration/redmine.py pristine")

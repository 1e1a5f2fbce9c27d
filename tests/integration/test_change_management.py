"""Change management on a local one-file inventory (faultlib's web site: http.server services on this
machine, local connection): a deploy in a freeze window is refused and changes nothing; with
--override-freeze --reason it runs, in a maintenance window, announced (override, start, end) to a real
local webhook receiver and in the daily memory. Packages: one on the allow-list installs (Debian's jq,
already installed: `state: present` runs the module and changes nothing); one that is not exits 2 and names
the plan command. A direct deploy the policy wants planned is refused the same way."""

from __future__ import annotations

import datetime as dt
import json
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "faults"))
from faultlib import Site, http_get, web_site, webhook  # noqa: E402

from opsrunner.memory import MemoryStore, format_time, utcnow  # noqa: E402
from opsrunner.windows import Windows  # noqa: E402

pytestmark = pytest.mark.integration


def deployable(tmp_path: Path, hook_url: str) -> tuple[Site, Path]:
    """One host serving app_root/current with http.server, a release of one page, the announce route."""
    site = web_site(
        tmp_path,
        ["web1"],
        extra={"aitbc_announce_urls": [hook_url]},
        command=f"{sys.executable} -m http.server {{{{ web_port }}}} --bind 127.0.0.1 --directory "
        "{{ aitbc_root }}/apps/web/current",
        service={"app_root": "{{ aitbc_root }}/apps/web"},
    )
    page = tmp_path / "page"
    page.mkdir()
    (page / "index.html").write_text("release 1\n")
    return site, page


def write_policy(site: Site, policy: dict) -> None:
    (site.inventory.parent / "ops-policy.yml").write_text(yaml.safe_dump(policy))


def freeze_now() -> dict:
    now = utcnow()
    start, end = now - dt.timedelta(hours=1), now + dt.timedelta(hours=1)
    return {"start": format_time(start), "end": format_time(end), "reason": "year-end freeze"}


def current(site: Site) -> Path | None:
    link = site.root / "web1" / "apps" / "web" / "current"
    return link.readlink() if link.is_symlink() else None


def test_a_deploy_in_a_freeze_window_is_refused_then_overridden_and_announced(tmp_path: Path) -> None:
    with webhook() as hook:
        site, page = deployable(tmp_path, hook.url)
        try:
            write_policy(site, {"require_plan": [], "freeze": [freeze_now()]})
            refused = site.run("deploy", "1", "--from", str(page), "--service", "web", "--json")
            assert refused.returncode == 2, refused.stdout + refused.stderr
            error = refused.stderr.strip()
            assert error.startswith("opsrunner: error: deploy refused: freeze window year-end freeze ("), (
                error
            )
            assert error.endswith("; use --override-freeze --reason TEXT"), error
            assert json.loads(refused.stdout)["exit_code"] == 2
            assert current(site) is None and site.pid("web1") is None, "a refused deploy changed the host"
            assert hook.pages == [] and Windows(MemoryStore(site.memory)).all() == []

            no_reason = site.run("deploy", "1", "--from", str(page), "--service", "web", "--override-freeze")
            assert no_reason.returncode == 2 and "--override-freeze needs --reason" in no_reason.stderr
            assert current(site) is None

            done = site.run(
                "deploy", "1", "--from", str(page), "--service", "web", "--override-freeze",
                "--reason", "hotfix for INC-42",
            )  # fmt: skip
            assert done.returncode == 0, done.stdout + done.stderr
            assert http_get(f"http://127.0.0.1:{site.ports['web1']}/") == (200, b"release 1\n")

            titles = [page["title"] for page in hook.pages]
            assert len(titles) == 3, titles
            assert "overridden" in titles[0] and "hotfix for INC-42" in titles[0], titles
            assert "change start: deploy web 1 started on web1" in titles[1], titles
            assert "change end: deploy web 1 ended: ok" in titles[2], titles
            assert all(page["type"] == "info" for page in hook.pages)

            store = MemoryStore(site.memory)
            (window,) = Windows(store).all()
            assert (window.change, window.hosts, window.services) == ("deploy web 1", ["web1"], ["web"])
            assert window.reason == "hotfix for INC-42" and window.closed is not None
            assert Windows(store).covering("web1", "web") is None  # closed with the change
            changes = [e for e in store.read_daily(utcnow().date()) if e.event == "change"]
            assert [e.outcome for e in changes] == ["refused", "override", "start", "end"]
            assert all(any("sent" in d for d in e.details) for e in changes[1:]), changes
        finally:
            site.stop_all()


def test_a_direct_deploy_the_policy_wants_planned_exits_2_naming_the_plan_command(tmp_path: Path) -> None:
    with webhook() as hook:
        site, page = deployable(tmp_path, hook.url)
        try:
            write_policy(site, {"require_plan": ["deploy"]})
            refused = site.run("deploy", "1", "--from", str(page), "--service", "web")
            assert refused.returncode == 2, refused.stdout + refused.stderr
            assert (
                "the policy needs an approved plan for deploy: opsrunner plan deploy 1 --from"
                in refused.stderr
            )
            assert "then opsrunner approve PLAN --by NAME and opsrunner apply PLAN" in refused.stderr
            assert current(site) is None and hook.pages == []
        finally:
            site.stop_all()


@pytest.mark.skipif(shutil.which("dpkg-query") is None, reason="needs a Debian host (dpkg) for jq")
def test_packages_on_the_allow_list_install_and_others_need_a_plan(tmp_path: Path) -> None:
    installed = subprocess.run(
        ["dpkg-query", "-W", "-f=${Status}", "jq"], capture_output=True, text=True, check=False
    )
    if "install ok installed" not in installed.stdout:
        pytest.skip("Debian's jq is not installed here (apt-get install jq)")
    with webhook() as hook:
        site = web_site(tmp_path, ["web1"], extra={"aitbc_announce_urls": [hook.url]})
        write_policy(site, {"packages": {"allowed": ["jq", "python3-*"]}})

        done = site.run("packages", "install", "jq", "--json")
        assert done.returncode == 0, done.stdout + done.stderr
        result = json.loads(done.stdout)
        assert result["packages"] == ["jq"] and result["hosts"]["web1"]["failed"] == 0, result
        assert result["hosts"]["web1"]["changed"] == 0  # present already: nothing to do
        titles = [page["title"] for page in hook.pages]
        assert any("packages install jq started" in t for t in titles), titles
        assert any("packages install jq ended: ok" in t for t in titles), titles

        refused = site.run("packages", "install", "jq", "cowsay")
        assert refused.returncode == 2, refused.stdout + refused.stderr
        assert "not on its allow-list (cowsay)" in refused.stderr
        assert "opsrunner plan packages jq cowsay" in refused.stderr
        assert len(hook.pages) == len(titles), "a refused install was announced"

        bad = site.run("packages", "install", "jq;reboot")
        assert bad.returncode == 2 and "bad package name(s) 'jq;reboot'" in bad.stderr

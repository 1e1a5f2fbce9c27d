#!/usr/bin/python
# -*- coding: utf-8 -*-
# Copyright: (c) 2025, aitbc-ops developers
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import annotations

# fmt: off
DOCUMENTATION = r'''
---
module: release
short_description: Unpack, switch, roll back and prune release folders of an application, ansistrano-style
version_added: 0.3.0
description:
  - Manages the releases of one application under O(app_root) on the managed host, the layout ansistrano
    uses, with a recorded state instead of folder mtimes.
  - C(<app_root>/releases/<version>/) holds one folder per release, each with a C(.release.json) recording
    its version, the sha256 of the artifact it came from, when it was unpacked and by whom.
  - C(<app_root>/current) is a relative symlink to C(releases/<version>), the release in service. Services
    run C(<app_root>/current/...).
  - C(<app_root>/.release-state.json) records the current and previous release, the releases this module
    unpacked (oldest first) and the history of switches (deploys and rollbacks, who and when, UTC).
  - B(Unpacking) goes to C(releases/.tmp-<version>-<pid>/) and is renamed to C(releases/<version>) only
    when complete and flushed to disk, so a half-unpacked release never exists under its name. A tarball
    whose contents all sit under one top-level folder is unpacked with that folder stripped (like
    ansistrano), otherwise as it is. Unpacked files belong to the user the module runs as; setuid, setgid
    and sticky bits are dropped.
  - B(Archives are checked) before and while unpacking (the hosts' Python 3.11.2 has no tarfile C(filter=)).
    Absolute paths, C(..) in a path, symlinks or hard links that point outside the release (also through
    other symlinks of the archive), devices and fifos are refused; the run fails, names the member, and
    leaves nothing behind.
  - B(Switching) creates the symlink C(current.tmp-<pid>) and renames it over C(current) (atomic), then
    flushes the folder. The state file is written (temp file, fsync, rename) after the switch.
  - B(The symlink is the truth) for the current release. A run killed between the switch and the state
    write leaves a state that disagrees with the symlink; the next run repairs
    the state from the symlink, records the interrupted switch in the history, removes leftovers of killed
    runs (C(releases/.tmp-*), C(current.tmp-*)) and returns RV(repaired=true). M(aitbc.ops.release_info)
    only reports what needs repair.
  - A C(current) that points to a missing folder (damage by hand) is reported in RV(problems) and as
    RV(current=null); O(state=current) or O(state=rollback) points it at a release again.
  - B(Concurrent runs) on one O(app_root) are serialised with an exclusive C(flock) on
    C(<app_root>/.release.lock), held for the whole run (waiting up to 10 minutes). Check mode and
    M(aitbc.ops.release_info) take a shared lock, so they never see a half-done run.
  - Only the Python standard library is needed on the host.
author:
  - aitbc-ops developers (@aitbc-ops)
extends_documentation_fragment:
  - aitbc.ops.attributes
  - aitbc.ops.attributes.posix
  - aitbc.ops.attributes.diff
attributes:
  check_mode:
    support: full
    details:
      - Opens and checks the artifact (checksum, every archive member) and reports the plan in RV(msg)
        (C(would unpack), C(would switch from X to Y), C(would prune ...), C(would repair ...)) and in
        RV(switched), RV(pruned), RV(unpacked); writes nothing, not even the lock file.
  diff_mode:
    details:
      - C(current), C(previous) and the releases on disk (C(releases)) before and after; in check mode, as
        they would be after the run.
options:
  app_root:
    description:
      - The application's folder on the managed host, holding C(releases/), C(current) and the state file.
        Created (with C(releases/)) by O(state=present) and O(state=current).
    type: path
    required: true
  version:
    description:
      - The release - its folder name under C(releases/). Letters, digits, C(.), C(_), C(+) and C(-),
        starting with a letter or digit (C(1.4.2), C(2026-11-24_1), C(v3+build.7)).
      - Required for O(state=present), O(state=current) and O(state=absent). With O(state=rollback), the
        release to roll back to instead of the recorded previous one.
    type: str
  src:
    description:
      - The artifact B(on the managed host) - a C(.tar.gz), C(.tgz) or C(.tar) archive (bzip2 and xz
        compressed ones work too), or a folder whose contents become the release.
      - Copy the controller's artifact to the host first (the aitbc.ops.deploy role copies it to
        C(<app_root>/artifacts/)). Needed only when O(version) is not unpacked yet.
    type: path
  checksum:
    description:
      - The sha256 of the O(src) tarball, as C(sha256:<hex>) or bare hex (what M(ansible.builtin.stat)
        returns with C(checksum_algorithm=sha256)). A mismatch fails before anything is unpacked.
      - When the release is already unpacked, its recorded sha256 must match too.
    type: str
  state:
    description:
      - V(present) unpacks O(version) if it is not unpacked yet; C(current) is not touched.
      - V(current) unpacks O(version) if needed, then switches C(current) to it (the deploy) and prunes.
        Nothing changes when it is current already.
      - V(rollback) switches C(current) to the recorded previous release, or to O(version) when given
        (which must still be on the host), then prunes. The release switched away from becomes the
        previous one, so a second rollback goes forward again.
      - V(absent) deletes release O(version), which must be neither current nor previous. Needs
        O(confirm=true).
      - To read the releases without changing anything, use M(aitbc.ops.release_info).
    type: str
    choices: [present, current, rollback, absent]
    default: present
  keep:
    description:
      - After a switch, delete the oldest releases (in the order they were unpacked) beyond this many,
        counting the current and the previous release, which are always kept. Folders under C(releases/)
        that this module did not unpack (not in the state) are never deleted.
      - V(0) keeps every release (as ansistrano's C(ansistrano_keep_releases=0)).
    type: int
    default: 5
  deployed_by:
    description:
      - Who deploys, recorded in C(.release.json) and the history. Default the user behind sudo
        (C(SUDO_USER)), else the user the module runs as. Pass the controller's user to record who ran the
        playbook.
    type: str
  reason:
    description:
      - Why, recorded in the history entry of a switch (for example the failed health gate behind an
        automatic rollback).
    type: str
  confirm:
    description:
      - Must be V(true) for O(state=absent), which deletes a release.
    type: bool
    default: false
  labels:
    description:
      - Free-form labels returned unchanged as RV(labels), for whatever consumes the results.
      - The aitbc.ops.deploy role labels its switches (C(deploy=deployed), C(deploy=automatic-rollback)) so
        the controller opens or resolves a deploy incident.
    type: dict
    default: {}
notes:
  - Symlinks are taken as they are; a C(current) that is a real folder (not a symlink) is refused.
  - Releases are listed and pruned by the recorded order, never by mtime. A release unpacked by a run that
    was killed before writing the state is recorded from its C(.release.json) by the next run.
seealso:
  - name: ansistrano
    description: The release layout this follows.
    link: https://github.com/ansistrano/deploy
'''

EXAMPLES = r'''
- name: Copy the artifact to the host (the release module's src is a path on the host)
  ansible.builtin.copy:
    src: "dist/coordinator-api-1.4.2.tar.gz"
    dest: /srv/aitbc/apps/coordinator-api/artifacts/1.4.2.tar.gz
    mode: "0640"

- name: Unpack release 1.4.2 without switching (for example to run migrations from it first)
  aitbc.ops.release:
    app_root: /srv/aitbc/apps/coordinator-api
    version: 1.4.2
    src: /srv/aitbc/apps/coordinator-api/artifacts/1.4.2.tar.gz
    checksum: "sha256:{{ artifact_sha256 }}"
    deployed_by: "{{ lookup('ansible.builtin.env', 'USER') }}"
    state: present

- name: Switch to it, keeping five releases
  aitbc.ops.release:
    app_root: /srv/aitbc/apps/coordinator-api
    version: 1.4.2
    keep: 5
    state: current
  register: deploy

- name: Back to the previous release
  aitbc.ops.release:
    app_root: /srv/aitbc/apps/coordinator-api
    state: rollback
    reason: health gate failed after 1.4.2
  when: deploy.switched is not none

- name: Back to a named release still on the host
  aitbc.ops.release:
    app_root: /srv/aitbc/apps/coordinator-api
    version: 1.3.9
    state: rollback

- name: Show the releases (read-only)
  aitbc.ops.release_info:
    app_root: /srv/aitbc/apps/coordinator-api
  register: releases

- name: Delete an old release by hand
  aitbc.ops.release:
    app_root: /srv/aitbc/apps/coordinator-api
    version: 1.2.0
    state: absent
    confirm: true
'''

RETURN = r'''
current:
  description: The release C(current) points to afterwards (null when there is none, or it dangles).
  returned: always
  type: str
  sample: 1.4.2
previous:
  description: The recorded previous release, the target of a plain rollback (null when there is none).
  returned: always
  type: str
  sample: 1.4.1
releases:
  description: The release folders on the host, in the recorded (unpack) order, then unrecorded ones by name.
  returned: always
  type: list
  elements: dict
  contains:
    version:
      description: The release.
      type: str
    path:
      description: Its folder.
      type: str
    current:
      description: Whether C(current) points to it.
      type: bool
    previous:
      description: Whether it is the recorded previous release.
      type: bool
    unpacked_at:
      description: When it was unpacked (UTC, ISO 8601); null for a folder the module did not unpack.
      type: str
    sha256:
      description: The sha256 of the tarball it came from (null for a folder src).
      type: str
    recorded:
      description: Whether it is recorded in the state (only recorded releases are ever pruned).
      type: bool
  sample: [{version: 1.4.1, path: /srv/aitbc/apps/coordinator-api/releases/1.4.1, current: false,
            previous: true, unpacked_at: "2026-11-20T10:02:11Z", sha256: 5d41...9c1, recorded: true}]
history:
  description:
    - The last 20 switches, oldest first - version, from, at (UTC), by, action (V(deploy), V(rollback), or
      V(repair) for a switch made outside this module and found by the repair), and reason when given.
  returned: always
  type: list
  elements: dict
  sample: [{version: 1.4.2, from: 1.4.1, at: "2026-11-24T10:15:02Z", by: alice, action: deploy}]
switched:
  description: The switch made (or, in check mode, to be made), else null.
  returned: always
  type: dict
  sample: {from: 1.4.1, to: 1.4.2}
unpacked:
  description: The release unpacked (or to be unpacked, in check mode), else null.
  returned: always
  type: str
removed:
  description: The release deleted by O(state=absent), else null.
  returned: always
  type: str
pruned:
  description: Releases deleted after the switch (or to be deleted, in check mode).
  returned: always
  type: list
  elements: str
  sample: [1.3.7]
repaired:
  description:
    - Whether the state was repaired from the disk (the symlink disagreed with it after a killed run,
      releases were missing or unrecorded, or leftovers of killed runs were removed).
  returned: always
  type: bool
problems:
  description: What is wrong on the host and was not fixed by this run (a dangling or missing C(current)).
  returned: always
  type: list
  elements: str
  sample: ["current points to releases/1.4.0, which is missing (dangling)"]
labels:
  description: The O(labels) given.
  returned: always
  type: dict
  sample: {deploy: deployed, service: coordinator-api, version: 1.4.2}
msg:
  description: What was done (or would be done, in check mode), and what needs attention.
  returned: always
  type: str
  sample: "unpacked 1.4.2; switched from 1.4.1 to 1.4.2; pruned 1.3.7"
'''
# fmt: on

from ansible.module_utils.basic import AnsibleModule
from ansible_collections.aitbc.ops.plugins.module_utils.release import STATES, ReleaseError, Request, release


def main():
    module = AnsibleModule(
        argument_spec=dict(
            app_root=dict(type="path", required=True),
            version=dict(type="str"),
            src=dict(type="path"),
            checksum=dict(type="str"),
            state=dict(type="str", default="present", choices=[s for s in STATES if s != "info"]),
            keep=dict(type="int", default=5),
            deployed_by=dict(type="str"),
            reason=dict(type="str"),
            confirm=dict(type="bool", default=False),
            labels=dict(type="dict", default={}),
        ),
        required_if=[
            ("state", "present", ["version"]),
            ("state", "current", ["version"]),
            ("state", "absent", ["version"]),
        ],
        supports_check_mode=True,
    )
    params = module.params
    request = Request(
        app_root=params["app_root"],
        state=params["state"],
        version=params["version"],
        src=params["src"],
        checksum=params["checksum"],
        keep=params["keep"],
        deployed_by=params["deployed_by"],
        reason=params["reason"],
        confirm=params["confirm"],
        check_mode=module.check_mode,
    )
    try:
        result = release(request)
    except ReleaseError as exc:
        module.fail_json(msg=str(exc), changed=False, labels=params["labels"])
    if not module._diff:
        result.pop("diff")
    result["labels"] = params["labels"]
    module.exit_json(**result)


if __name__ == "__main__":
    main()

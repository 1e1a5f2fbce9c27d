#!/usr/bin/python
# -*- coding: utf-8 -*-
# Copyright: (c) 2025, aitbc-ops developers
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import annotations

# fmt: off
DOCUMENTATION = r'''
---
module: restore
short_description: Put data back from a backup set, atomically, only when confirmed, or into a side folder
version_added: 0.2.0
description:
  - Refuses to write over live data unless O(confirm=true); without it the task fails and changes nothing.
  - Checks the chosen copies against the set's manifest first. A corrupted set restores nothing.
  - Restores each chosen copy to the path it was taken from, each atomically - the data is written next to
    its target and renamed over it. A folder (from a C(files) archive) is unpacked beside its target and
    swapped in. File modes and owners from the manifest are applied.
  - SQLite C(-wal), C(-shm) and C(-journal) files of the old database would be replayed into the restored
    one, so they are moved first into C(<target>.aitbc-restore-aside/<UTC timestamp>/) beside it, mode 0700,
    and kept there (they may hold the last commits before the restore). RV(set_aside) lists where they went;
    remove the folder once you no longer need it.
  - With O(dest), a side restore - each chosen copy goes under O(dest) at its path relative to C(/)
    (C(/var/lib/aitbc/chain/chain.db) to C(DEST/var/lib/aitbc/chain/chain.db)), so the set can be inspected
    without touching live data. O(dest) is created (mode 0700) when missing. It needs no O(confirm) unless
    one of those paths already exists (it would be replaced). A O(dest) that is, holds, or lies inside a live
    target is refused.
  - Stop the services that use the data first, take a fresh backup, and check health afterwards - the
    aitbc.ops.restore role (C(playbooks/restore.yml), C(opsrunner restore SET --confirm)) does all of that
    and rolls back to the fresh backup when the health gate fails.
author:
  - aitbc-ops developers (@aitbc-ops)
extends_documentation_fragment:
  - aitbc.ops.attributes
  - aitbc.ops.attributes.posix
  - aitbc.ops.attributes.diff
attributes:
  check_mode:
    support: full
    details: Reports the files that would be restored and where (under O(dest) too).
options:
  set:
    description:
      - The set - a name under O(root)/O(host), a folder path, or C(newest).
    type: str
    required: true
  root:
    description:
      - The backup root, when O(set) is a name or C(newest).
    type: path
  host:
    description:
      - The host's folder under O(root), when O(set) is a name or C(newest).
    type: str
  confirm:
    description:
      - Must be V(true) to restore over live data (without O(dest)), or to replace paths that already exist
        under O(dest).
    type: bool
    default: false
  dest:
    description:
      - Restore into this folder instead of over the live data - each item at its path relative to C(/)
        under it. An absolute path; created (mode 0700) when missing.
    type: path
    version_added: 0.3.0
  items:
    description:
      - What to restore - file names in the set, services, or source paths. Default everything in the set.
    type: list
    elements: str
    default: []
  encryption_key:
    description:
      - The password of encrypted archives.
    type: str
'''

EXAMPLES = r'''
- name: Restore the chain database from the newest verified set (the node is stopped)
  aitbc.ops.restore:
    root: /var/backups/aitbc
    host: "{{ inventory_hostname }}"
    set: "{{ backups.newest_verified.set }}"
    items: [blockchain-node]
    confirm: true

- name: Restore the newest set into a side folder to inspect it (live data untouched, no confirm needed)
  aitbc.ops.restore:
    root: /var/backups/aitbc
    host: "{{ inventory_hostname }}"
    set: newest
    dest: /var/tmp/aitbc-restore-check
    encryption_key: "{{ vault_aitbc_backup_key }}"
  register: side

- name: Show where each copy went (DEST/var/lib/aitbc/chain/chain.db, ...)
  ansible.builtin.debug:
    msg: "{{ side.restored | map(attribute='target') | list }}"
'''

RETURN = r'''
set:
  description: The set folder restored from.
  returned: always
  type: str
restored:
  description:
    - The copies restored (or to be restored in check mode) - C(file) in the set, C(kind), C(service),
      C(source) (where it was taken) and C(target) (where it went - C(source), or its side path under
      O(dest)).
  returned: always
  type: list
  elements: dict
  sample: [{file: blockchain-node.chain.db, kind: sqlite, service: blockchain-node,
            source: /var/lib/aitbc/chain/chain.db, target: /var/lib/aitbc/chain/chain.db}]
dest:
  description: The side folder restored into; empty for a restore over the live data.
  returned: always
  type: str
  sample: /var/tmp/aitbc-restore-check
set_aside:
  description:
    - Stale SQLite C(-wal)/C(-shm)/C(-journal) files moved away from a restored database, at their new paths
      (C(<target>.aitbc-restore-aside/<UTC timestamp>/<name>)). Empty in check mode.
  returned: always
  type: list
  elements: str
  sample: [/var/lib/aitbc/chain/chain.db.aitbc-restore-aside/20261124T010000Z/chain.db-wal]
check_mode:
  description:
    - V(true) when the result is only the plan (check mode) - RV(restored) lists what would be restored, and
      nothing was. Lets a caller tell a plan from a restore even when the run as a whole is not in check mode
      (the aitbc.ops.restore role plans with a task in check mode).
  returned: success
  type: bool
  sample: false
  version_added: 0.3.0
'''
# fmt: on

from ansible.module_utils.basic import AnsibleModule
from ansible_collections.aitbc.ops.plugins.module_utils._diff import DifferenceTracker
from ansible_collections.aitbc.ops.plugins.module_utils.backup.base import BackupError
from ansible_collections.aitbc.ops.plugins.module_utils.backup.restore import (
    existing_targets,
    restore_diff,
    restore_plan,
    restore_set,
)
from ansible_collections.aitbc.ops.plugins.module_utils.backup.sets import resolve_set


def refusal(dest, plan):
    """Why an unconfirmed restore may not go on, or None: it writes over live data, or over paths that
    already exist under dest."""
    if not dest:
        return "refusing to restore without confirm: true (nothing was changed)"
    existing = existing_targets(plan)
    if existing:
        return (
            f"refusing to replace {existing[0]}"
            + (f" and {len(existing) - 1} more" if len(existing) > 1 else "")
            + " without confirm: true (choose an empty dest, or confirm; nothing was changed)"
        )
    return None


def main():
    module = AnsibleModule(
        argument_spec=dict(
            set=dict(type="str", required=True),
            root=dict(type="path"),
            host=dict(type="str"),
            confirm=dict(type="bool", default=False),
            items=dict(type="list", elements="str", default=[]),
            encryption_key=dict(type="str", no_log=True),
            dest=dict(type="path"),
        ),
        supports_check_mode=True,
    )
    params = module.params
    dest, key, items = params["dest"], params["encryption_key"], params["items"]
    try:
        if not params["set"].startswith("/") and not (params["root"] and params["host"]):
            raise BackupError("root and host are needed when set is a name")
        path = resolve_set(params["root"], params["host"], params["set"])
        _manifest, plan = restore_plan(path, items, dest)
        common = dict(set=path, restored=plan, dest=dest or "", set_aside=[], check_mode=module.check_mode)
        refused = None if params["confirm"] else refusal(dest, plan)
        if refused:
            module.fail_json(msg=refused, changed=False, **common)
        if module.check_mode:
            if module._diff:  # the prediction hashes every target: only when --diff asks for it
                predicted = restore_diff(path, items, key, dest)
                module.exit_json(changed=True, diff=predicted.diff(), **common)
            module.exit_json(changed=True, **common)
        tracker = DifferenceTracker() if module._diff else None
        done = restore_set(path, items, key=key, tracker=tracker, dest=dest)
    except BackupError as exc:
        module.fail_json(msg=str(exc), changed=False)
    common["set_aside"] = done.set_aside
    module.exit_json(changed=True, **common, **({"diff": tracker.diff()} if tracker else {}))


if __name__ == "__main__":
    main()

#!/usr/bin/python
# -*- coding: utf-8 -*-
# Copyright: (c) 2025, aitbc-ops developers
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import annotations

# fmt: off
DOCUMENTATION = r'''
---
module: restore
short_description: Put data back from a backup set, atomically, only when confirmed
version_added: 0.2.0
description:
  - Refuses to do anything unless O(confirm=true); without it the task fails and changes nothing.
  - Checks the chosen copies against the set's manifest first. A corrupted set restores nothing.
  - Restores each chosen copy to the path it was taken from, each atomically - the data is written next to
    its target and renamed over it. SQLite C(-wal)/C(-shm) files of the old database are set aside first so
    they cannot be replayed into the restored one. A folder (from a C(files) archive) is unpacked beside
    its target and swapped in. File modes and owners from the manifest are applied.
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
    details: Reports the files that would be restored and where.
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
      - Must be V(true). Restoring replaces live data.
    type: bool
    default: false
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
'''

RETURN = r'''
set:
  description: The set folder restored from.
  returned: always
  type: str
restored:
  description: The copies restored (or to be restored in check mode), with their targets.
  returned: always
  type: list
  elements: dict
  sample: [{file: blockchain-node.chain.db, kind: sqlite, service: blockchain-node,
            target: /var/lib/aitbc/chain/chain.db}]
'''
# fmt: on

from ansible.module_utils.basic import AnsibleModule
from ansible_collections.aitbc.ops.plugins.module_utils._diff import DifferenceTracker
from ansible_collections.aitbc.ops.plugins.module_utils.backup.base import BackupError
from ansible_collections.aitbc.ops.plugins.module_utils.backup.restore import (
    restore_diff,
    restore_plan,
    restore_set,
)
from ansible_collections.aitbc.ops.plugins.module_utils.backup.sets import resolve_set


def main():
    module = AnsibleModule(
        argument_spec=dict(
            set=dict(type="str", required=True),
            root=dict(type="path"),
            host=dict(type="str"),
            confirm=dict(type="bool", default=False),
            items=dict(type="list", elements="str", default=[]),
            encryption_key=dict(type="str", no_log=True),
        ),
        supports_check_mode=True,
    )
    params = module.params
    try:
        if not params["set"].startswith("/") and not (params["root"] and params["host"]):
            raise BackupError("root and host are needed when set is a name")
        path = resolve_set(params["root"], params["host"], params["set"])
        _manifest, plan = restore_plan(path, params["items"])
        if not params["confirm"]:
            module.fail_json(
                msg="refusing to restore without confirm: true (nothing was changed)",
                changed=False,
                set=path,
                restored=plan,
            )
        if module.check_mode:
            if module._diff:  # the prediction hashes every target: only when --diff asks for it
                predicted = restore_diff(path, params["items"], params["encryption_key"])
                module.exit_json(changed=True, set=path, restored=plan, diff=predicted.diff())
            module.exit_json(changed=True, set=path, restored=plan)
        tracker = DifferenceTracker() if module._diff else None
        restore_set(path, params["items"], key=params["encryption_key"], tracker=tracker)
    except BackupError as exc:
        module.fail_json(msg=str(exc), changed=False)
    module.exit_json(changed=True, set=path, restored=plan, **({"diff": tracker.diff()} if tracker else {}))


if __name__ == "__main__":
    main()

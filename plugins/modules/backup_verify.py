#!/usr/bin/python
# -*- coding: utf-8 -*-
# Copyright: (c) 2025, aitbc-ops developers
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import annotations

# fmt: off
DOCUMENTATION = r'''
---
module: backup_verify
short_description: Verify backup sets - checksums, SQLite integrity, and a restore drill
version_added: 0.2.0
description:
  - Re-computes the sha256 of every file of a set against its C(manifest.json).
  - Checks each copy - C(PRAGMA integrity_check) on SQLite copies, the RDB header, end marker and
    C(redis-check-rdb) (where installed) on Redis copies, the ansible-vault envelope on encrypted archives.
  - Runs a restore drill - restores every file into a scratch folder with the same code
    M(aitbc.ops.restore) uses, opens each database and runs its query from O(queries), decrypts and
    unpacks each archive and counts its files, and checks the restored RDB. The scratch folder is removed.
  - Records the result in the set's manifest (C(verification)), which M(aitbc.ops.backup_info), the
    heartbeat's backup freshness probe and M(aitbc.ops.backup_prune) read.
  - Fails when a set fails any check, with a message naming the file and the reason.
author:
  - aitbc-ops developers (@aitbc-ops)
extends_documentation_fragment:
  - aitbc.ops.attributes
  - aitbc.ops.attributes.posix
  - aitbc.ops.backup_sets
attributes:
  check_mode:
    support: full
    details: Verifies as usual but does not record the result in the manifest.
  diff_mode:
    support: none
    details: It only records the verification in the set's manifest; the result holds the findings.
options:
  set:
    description:
      - Which sets to verify - a set name (C(20261124T010000Z)), a set folder path, C(newest), C(unverified)
        (every set without a recorded verification) or C(all).
    type: str
    default: newest
  drill:
    description:
      - Run the restore drill besides the checksum and integrity checks.
    type: bool
    default: true
  checksums_only:
    description:
      - Only re-check sha256 sums and sizes (for copies on a store that cannot open them, such as the
        controller's off-host copy).
    type: bool
    default: false
  queries:
    description:
      - Drill queries for SQLite copies, keyed by the database's source path, its file name or its service.
        The query must return a row; its first value is reported (for example the number of blocks).
    type: dict
    default: {}
  encryption_key:
    description:
      - The password of encrypted archives (needed by the drill to decrypt them).
    type: str
  record:
    description:
      - Write the result into each set's manifest.
    type: bool
    default: true
  scratch_dir:
    description:
      - Where the drill restores to (a temporary folder is made inside and removed after). Default the system
        temporary folder.
      - Created, mode 0700, when missing (the drill decrypts key material into it) - but only when its parent
        folder exists; a missing parent fails in one line naming the path (more likely a typo than a wish).
    type: path
'''

EXAMPLES = r'''
- name: Verify the newest set with a restore drill
  aitbc.ops.backup_verify:
    root: /var/backups/aitbc
    host: "{{ inventory_hostname }}"
    queries:
      chain.db: SELECT count(*) FROM blocks
    encryption_key: "{{ vault_aitbc_backup_key }}"

- name: Re-check the checksums of a copy fetched to the controller
  aitbc.ops.backup_verify:
    root: /srv/backup-store
    host: "{{ inventory_hostname }}"
    set: newest
    checksums_only: true
  delegate_to: localhost
'''

RETURN = r'''
ok:
  description: Whether every verified set passed.
  returned: always
  type: bool
  sample: true
sets:
  description: One result per verified set.
  returned: always
  type: list
  elements: dict
  contains:
    set:
      description: The set's name.
      type: str
      sample: 20261124T010000Z
    path:
      description: The set's folder.
      type: str
    ok:
      description: Whether all its checks passed.
      type: bool
    checks:
      description: One entry per file and check (C(sha256), C(integrity), C(drill)) with C(ok) and C(detail).
      type: list
      elements: dict
      sample: [{file: node.chain.db, service: blockchain-node, check: drill, ok: true,
                detail: "SELECT count(*) FROM blocks -> 1234"}]
failed_checks:
  description: "Each failed check as its own entry, C(<set>/<file>: <check> failed: <detail>)."
  returned: always
  type: list
  elements: str
msg:
  description: One line - the sets verified, or how many checks failed in which sets and the first of them.
  returned: always
  type: str
  sample: >-
    backup verification failed: 2 check(s) in 20261124T010000Z; first: 20261124T010000Z/node.chain.db:
    sha256 failed: sha256 mismatch (manifest 1a2b3c4d5e6f..., file 6f5e4d3c2b1a...) (and 1 more, see
    failed_checks)
'''
# fmt: on

from ansible.module_utils.basic import AnsibleModule
from ansible_collections.aitbc.ops.plugins.module_utils.backup.base import BackupError
from ansible_collections.aitbc.ops.plugins.module_utils.backup.sets import list_sets, resolve_set
from ansible_collections.aitbc.ops.plugins.module_utils.backup.verify import (
    record_verification,
    verification_outcome,
    verify_set,
)


def chosen_sets(params):
    which = params["set"]
    if which in ("all", "unverified"):
        sets, _leftovers = list_sets(params["root"], params["host"])
        if which == "unverified":
            sets = [s for s in sets if s["verified"] is None]
        return [s["path"] for s in sets]
    return [resolve_set(params["root"], params["host"], which)]


def main():
    module = AnsibleModule(
        argument_spec=dict(
            root=dict(type="path", required=True),
            host=dict(type="str", required=True),
            set=dict(type="str", default="newest"),
            drill=dict(type="bool", default=True),
            checksums_only=dict(type="bool", default=False),
            queries=dict(type="dict", default={}),
            encryption_key=dict(type="str", no_log=True),
            record=dict(type="bool", default=True),
            scratch_dir=dict(type="path"),
        ),
        supports_check_mode=True,
    )
    params = module.params
    results = []
    try:
        for path in chosen_sets(params):
            result = verify_set(
                path,
                key=params["encryption_key"],
                drill=params["drill"],
                queries=params["queries"],
                checksums_only=params["checksums_only"],
                scratch_root=params["scratch_dir"],
            )
            result.pop("manifest")
            if params["record"] and not module.check_mode:
                record_verification(path, result)
            results.append(result)
    except BackupError as exc:
        module.fail_json(msg=str(exc), changed=False, sets=results)
    outcome = verification_outcome(results, bool(results) and params["record"] and not module.check_mode)
    if not outcome["ok"]:
        module.fail_json(**outcome)
    module.exit_json(**outcome)


if __name__ == "__main__":
    main()

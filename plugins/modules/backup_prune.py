#!/usr/bin/python
# -*- coding: utf-8 -*-
# Copyright: (c) 2025, aitbc-ops developers
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import annotations

# fmt: off
DOCUMENTATION = r'''
---
module: backup_prune
short_description: Apply the retention policy to a host's backup sets
version_added: 0.2.0
description:
  - Keeps the newest O(keep_last) sets, and the newest set of each UTC day for the last O(keep_days) days.
    Every other complete set is deleted.
  - The newest set that passed verification is never deleted, whatever its age, so a run of failed
    backups cannot leave a host without a good set.
  - A set marked C(keep) (M(aitbc.ops.backup) O(aitbc.ops.backup#module:keep=true), such as the chain saved
    by a devnet reset, which its decision record points at) is never deleted; remove it by hand.
  - Partial folders older than O(partial_max_age_hours) (backups that died) are removed too; younger ones
    may belong to a backup still running and are left alone.
author:
  - aitbc-ops developers (@aitbc-ops)
extends_documentation_fragment:
  - aitbc.ops.attributes
  - aitbc.ops.attributes.posix
  - aitbc.ops.attributes.diff
  - aitbc.ops.backup_sets
attributes:
  check_mode:
    support: full
    details: Reports what would be deleted.
options:
  keep_last:
    description:
      - How many of the newest sets to keep.
    type: int
    default: 7
  keep_days:
    description:
      - Keep the newest set of each day for this many days (AITBC keeps 30).
    type: int
    default: 30
  partial_max_age_hours:
    description:
      - Partial folders older than this are removed.
    type: float
    default: 6
'''

EXAMPLES = r'''
- name: Keep a week of sets plus 30 daily ones
  aitbc.ops.backup_prune:
    root: /var/backups/aitbc
    host: "{{ inventory_hostname }}"
    keep_last: 7
    keep_days: 30
'''

RETURN = r'''
deleted:
  description: Sets deleted (or, in check mode, to be deleted).
  returned: always
  type: list
  elements: str
  sample: [20261001T010000Z]
kept:
  description: Sets kept, each with the rule that keeps it.
  returned: always
  type: list
  elements: dict
  sample: [{set: 20261124T010000Z, reason: one of the last 7}]
deleted_leftovers:
  description: Partial folders removed.
  returned: always
  type: list
  elements: str
'''
# fmt: on

from ansible.module_utils.basic import AnsibleModule
from ansible_collections.aitbc.ops.plugins.module_utils._diff import DifferenceTracker
from ansible_collections.aitbc.ops.plugins.module_utils.backup.base import BackupError
from ansible_collections.aitbc.ops.plugins.module_utils.backup.retention import prune


def main():
    module = AnsibleModule(
        argument_spec=dict(
            root=dict(type="path", required=True),
            host=dict(type="str", required=True),
            keep_last=dict(type="int", default=7),
            keep_days=dict(type="int", default=30),
            partial_max_age_hours=dict(type="float", default=6),
        ),
        supports_check_mode=True,
    )
    params = module.params
    if params["keep_last"] < 1:
        module.fail_json(msg="keep_last must be at least 1")
    if params["keep_days"] < 0:
        module.fail_json(msg="keep_days must not be negative")
    tracker = DifferenceTracker()
    try:
        result = prune(
            params["root"],
            params["host"],
            params["keep_last"],
            params["keep_days"],
            params["partial_max_age_hours"],
            check_mode=module.check_mode,
            tracker=tracker,
        )
    except (BackupError, OSError) as exc:
        module.fail_json(msg=str(exc))
    if module._diff:
        result["diff"] = tracker.diff()
    module.exit_json(**result)


if __name__ == "__main__":
    main()

#!/usr/bin/python
# -*- coding: utf-8 -*-
# Copyright: (c) 2025, aitbc-ops developers
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import annotations

# fmt: off
DOCUMENTATION = r'''
---
module: backup_info
short_description: List a host's backup sets with age, size and verification
version_added: 0.2.0
description:
  - Lists the complete backup sets under C(<root>/<host>/) (those with a C(manifest.json)), oldest first,
    with their age, size, number of files, label and the recorded verification.
  - Partial folders (a backup that died or is still running) and folders without a manifest are listed
    apart in RV(leftovers) and are never counted as good sets.
author:
  - aitbc-ops developers (@aitbc-ops)
extends_documentation_fragment:
  - aitbc.ops.attributes
  - aitbc.ops.attributes.posix
  - aitbc.ops.attributes.info_module
  - aitbc.ops.backup_sets
'''

EXAMPLES = r'''
- name: List the sets
  aitbc.ops.backup_info:
    root: /var/backups/aitbc
    host: "{{ inventory_hostname }}"
  register: backups

- name: Show the newest verified set
  ansible.builtin.debug:
    msg: "{{ backups.newest_verified.set | default('none') }}"
'''

RETURN = r'''
sets:
  description: Complete sets, oldest first.
  returned: always
  type: list
  elements: dict
  contains:
    set:
      description: The set's name.
      type: str
      sample: 20261124T010000Z
    path:
      description: Its folder.
      type: str
    created:
      description: When it was taken (UTC).
      type: str
      sample: "2026-11-24T01:00:00Z"
    age_s:
      description: Its age in seconds.
      type: int
    bytes:
      description: Total size of its copies.
      type: int
    files:
      description: Number of copies.
      type: int
    label:
      description: Why it was taken.
      type: str
    keep:
      description: >-
        Whether retention keeps it whatever its age (taken with M(aitbc.ops.backup)
        O(aitbc.ops.backup#module:keep)).
      type: bool
    verified:
      description: V(true) or V(false) from the last verification, V(null) if never verified.
      type: bool
    verified_at:
      description: When it was last verified.
      type: str
newest:
  description: The newest complete set, or V(null).
  returned: always
  type: dict
newest_verified:
  description: The newest set that passed verification, or V(null).
  returned: always
  type: dict
leftovers:
  description: Partial or manifest-less folders, with the reason.
  returned: always
  type: list
  elements: dict
'''
# fmt: on

from ansible.module_utils.basic import AnsibleModule
from ansible_collections.aitbc.ops.plugins.module_utils.backup.base import BackupError
from ansible_collections.aitbc.ops.plugins.module_utils.backup.sets import list_sets, newest


def main():
    module = AnsibleModule(
        argument_spec=dict(root=dict(type="path", required=True), host=dict(type="str", required=True)),
        supports_check_mode=True,
    )
    try:
        sets, leftovers = list_sets(module.params["root"], module.params["host"])
    except (BackupError, OSError) as exc:
        module.fail_json(msg=str(exc))
    module.exit_json(
        changed=False,
        sets=sets,
        leftovers=leftovers,
        newest=newest(sets),
        newest_verified=newest(sets, verified=True),
    )


if __name__ == "__main__":
    main()

#!/usr/bin/python
# -*- coding: utf-8 -*-
# Copyright: (c) 2026, aitbc-ops developers
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import annotations

# fmt: off
DOCUMENTATION = r'''
---
module: release_info
short_description: Read a service's releases - current, previous, history - without changing anything
version_added: 0.3.0
description:
  - Reads the release folders under C(<app_root>/releases/), the C(current) symlink and the state file
    that M(aitbc.ops.release) keeps, and reports them.
  - Takes a shared lock, so it never sees a switch half done. Reports what a killed run left behind
    (RV(problems), and the repair M(aitbc.ops.release) would make) but repairs nothing.
  - A folder that holds no releases yet reports RV(current=null) and no releases.
  - Only the Python standard library is needed on the host.
author:
  - aitbc-ops developers (@aitbc-ops)
extends_documentation_fragment:
  - aitbc.ops.attributes
  - aitbc.ops.attributes.posix
  - aitbc.ops.attributes.info_module
options:
  app_root:
    description:
      - The service's folder holding C(releases/), C(current) and C(.release-state.json).
    type: path
    required: true
seealso:
  - module: aitbc.ops.release
'''

EXAMPLES = r'''
- name: Read the coordinator's releases
  aitbc.ops.release_info:
    app_root: /srv/aitbc/apps/coordinator-api
  register: releases

- name: Show them
  ansible.builtin.debug:
    msg: "current {{ releases.current }}, previous {{ releases.previous }}"
'''

RETURN = r'''
current:
  description: The release C(current) points to (null when there is none, or it dangles).
  returned: always
  type: str
  sample: 1.4.2
previous:
  description: The recorded previous release, the target of a plain rollback (null when there is none).
  returned: always
  type: str
  sample: 1.4.1
releases:
  description: The release folders, as M(aitbc.ops.release) returns them (version, path, current, previous,
    unpacked_at, sha256, recorded).
  returned: always
  type: list
  elements: dict
history:
  description: The last 20 switches, oldest first (version, from, at, by, action, reason).
  returned: always
  type: list
  elements: dict
  sample: [{version: 1.4.2, from: 1.4.1, at: "2026-11-24T10:15:02Z", by: alice, action: deploy}]
problems:
  description: What is wrong on the host (a dangling C(current), state that needs repair).
  returned: always
  type: list
  elements: str
'''
# fmt: on

from ansible.module_utils.basic import AnsibleModule
from ansible_collections.aitbc.ops.plugins.module_utils.release import ReleaseError, Request, release


def main():
    module = AnsibleModule(
        argument_spec=dict(app_root=dict(type="path", required=True)),
        supports_check_mode=True,
    )
    request = Request(app_root=module.params["app_root"], state="info", check_mode=True)
    try:
        result = release(request)
    except ReleaseError as exc:
        module.fail_json(msg=str(exc))
    for key in ("diff", "switched", "unpacked", "removed", "pruned", "repaired"):
        result.pop(key, None)
    result["changed"] = False
    module.exit_json(**result)


if __name__ == "__main__":
    main()

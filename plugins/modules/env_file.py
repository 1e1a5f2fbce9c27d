#!/usr/bin/python
# -*- coding: utf-8 -*-
# Copyright: (c) 2026, aitbc-ops developers
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import annotations

# fmt: off
DOCUMENTATION = r'''
---
module: env_file
short_description: Write a service's KEY=VALUE environment file, with secrets masked in the diff
version_added: 0.3.0
description:
  - Writes O(values) as a C(KEY=VALUE) file (a service's C(.env), a systemd C(EnvironmentFile)), one
    variable per line in name order, values quoted where needed. The file is written next to its target
    and renamed over it, with mode O(mode) (0600 by default) from the start.
  - What a service reads is the value given, C($), quotes, backslashes, spaces and C(#) included - through
    systemd's C(EnvironmentFile=) and through M(aitbc.ops.service)'s process backend, which reads the file
    the same way.
  - In C(--diff) mode the before and after texts show every key, but the values of secret keys - those in
    O(secret_keys) and those whose names look secret (C(*_KEY), C(*_KEYS), C(*TOKEN*), C(*SECRET*),
    C(*PASSWORD*), ...) - and passwords inside URLs appear as C(********). Values never appear in any
    returned field.
  - Returns the names of the variables that changed (RV(changed_keys)), for restarts and decision records.
author:
  - aitbc-ops developers (@aitbc-ops)
extends_documentation_fragment:
  - aitbc.ops.attributes
  - aitbc.ops.attributes.posix
  - aitbc.ops.attributes.diff
attributes:
  check_mode:
    support: full
  diff_mode:
    details: The file's text before and after; secret values are masked in the diff.
options:
  path:
    description:
      - The file to write. Its folder must exist.
    type: path
    required: true
  values:
    description:
      - The public variables. Keys must be valid environment variable names; values are one line each.
    type: dict
    default: {}
  secret_values:
    description:
      - The secret variables (from ansible-vault). Written like O(values); their values are masked in the
        diff and, as C(no_log) values, everywhere in Ansible's output.
    type: dict
    default: {}
  secret_keys:
    description:
      - More keys of O(values) whose values are masked in the diff though their names do not look secret.
    type: list
    elements: str
    default: []
  mode:
    description:
      - The file's mode, as an octal string.
    type: str
    default: "0600"
  header:
    description:
      - A comment written at the top of the file (each line prefixed with C(#)).
    type: str
    default: ""
'''

EXAMPLES = r'''
- name: Write the coordinator's .env from inventory and vault
  aitbc.ops.env_file:
    path: /srv/aitbc/config/coordinator-api.env
    values:
      DATABASE_URL: sqlite:////var/lib/aitbc/coordinator/coordinator.db
    secret_values:
      COORDINATOR_API_KEYS: "{{ vault_coordinator_api_keys }}"
      HMAC_SECRET: "{{ vault_hmac_secret }}"
    header: Managed by aitbc.ops (opsrunner run config); edits are overwritten.
  register: coordinator_env
'''

RETURN = r'''
path:
  description: The file.
  returned: always
  type: str
keys:
  description: The variable names in the file.
  returned: always
  type: list
  elements: str
  sample: [COORDINATOR_API_KEYS, DATABASE_URL, HMAC_SECRET]
changed_keys:
  description: The variables added, removed or changed (names only).
  returned: always
  type: list
  elements: str
  sample: [HMAC_SECRET]
secret_keys:
  description: The variables treated as secret (their values are masked in the diff).
  returned: always
  type: list
  elements: str
  sample: [COORDINATOR_API_KEYS, HMAC_SECRET]
'''
# fmt: on

from ansible.module_utils.basic import AnsibleModule
from ansible_collections.aitbc.ops.plugins.module_utils.env_file import EnvFileError, apply


def main():
    module = AnsibleModule(
        argument_spec=dict(
            path=dict(type="path", required=True),
            values=dict(type="dict", default={}),
            secret_values=dict(type="dict", default={}, no_log=True),
            secret_keys=dict(type="list", elements="str", default=[], no_log=False),
            mode=dict(type="str", default="0600"),
            header=dict(type="str", default=""),
        ),
        supports_check_mode=True,
    )
    try:
        result = apply(module.params, check_mode=module.check_mode)
    except EnvFileError as exc:
        module.fail_json(msg=str(exc))
    if not module._diff:
        result.pop("diff")
    module.exit_json(**result)


if __name__ == "__main__":
    main()

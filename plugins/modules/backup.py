#!/usr/bin/python
# -*- coding: utf-8 -*-
# Copyright: (c) 2025, aitbc-ops developers
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import annotations

# fmt: off
DOCUMENTATION = r'''
---
module: backup
short_description: Write one consistent, checksummed backup set of a host's databases, key files and Redis
version_added: 0.2.0
description:
  - Writes one backup set per run to C(<root>/<host>/<UTC timestamp>/) holding a copy of every source, a
    C(SHA256SUMS) file that C(sha256sum -c) reads, and C(manifest.json) listing each file's source, size,
    sha256, kind, owner and the tool versions (C(tools) - this collection's version as C(aitbc_ops), Python's
    and SQLite's).
  - The set is written as C(.partial-<name>-<pid>) and renamed into place only when every file is written
    and synced. On any error (a missing source, a full disk) the partial folder is removed, no set is
    listed, and the sources are untouched. Sets are mode 0700, files 0600.
  - C(sqlite) sources are copied with SQLite's online backup API in one read transaction, so the copy is
    the database as of one commit while writers go on (WAL or rollback journal).
  - C(files) sources (a folder such as a wallet keystore, or one file) are stored as tar.gz. With
    O(encryption_key) the archive is built in memory and written only encrypted, in the ansible-vault 1.1
    AES256 format, so C(ansible-vault decrypt) with the same password opens it. Such entries are marked
    sensitive; the aitbc.ops.backup role refuses to copy an unencrypted one off the host.
  - C(redis) sources run C(BGSAVE), wait until C(LASTSAVE) moves, and copy the RDB file that C(CONFIG GET
    dir/dbfilename) names (or O(sources[].rdb)).
  - Verify a set with M(aitbc.ops.backup_verify), list them with M(aitbc.ops.backup_info), apply retention
    with M(aitbc.ops.backup_prune) and restore with M(aitbc.ops.restore).
  - Needs the Python standard library on the host, and C(cryptography) (Debian python3-cryptography) when
    O(encryption_key) is set.
author:
  - aitbc-ops developers (@aitbc-ops)
extends_documentation_fragment:
  - aitbc.ops.attributes
  - aitbc.ops.attributes.posix
attributes:
  check_mode:
    support: full
    details: Checks that every source exists and reports what would be copied; writes nothing.
  diff_mode:
    support: none
    details: A run adds a new set and changes nothing that exists; the result lists what it copied.
options:
  root:
    description:
      - The backup root on the managed host. Sets go to C(<root>/<host>/). Created (mode 0700) when missing.
    type: path
    required: true
  host:
    description:
      - The name of the host's folder under O(root), usually C(inventory_hostname).
    type: str
    required: true
  sources:
    description:
      - What to back up. A path listed twice (two services naming one database) is copied once.
    type: list
    elements: dict
    required: true
    suboptions:
      kind:
        description:
          - C(sqlite) a database file, C(files) a folder or file as tar.gz, C(redis) a BGSAVE snapshot.
        type: str
        required: true
        choices: [sqlite, files, redis]
      path:
        description:
          - The database file, or the folder or file to archive. Required for C(sqlite) and C(files).
        type: path
      service:
        description:
          - The service the data belongs to. Names the copy (C(<service>.<file name>)) and lets
            M(aitbc.ops.restore) restore one service's data.
        type: str
      sensitive:
        description:
          - Mark the copy as key material (C(files) sources always are).
        type: bool
        default: false
      host:
        description:
          - Redis address.
        type: str
        default: 127.0.0.1
      port:
        description:
          - Redis port.
        type: int
        default: 6379
      password:
        description:
          - Redis password (AUTH).
        type: str
      rdb:
        description:
          - The RDB file to copy, when C(CONFIG GET) is renamed or disabled on the server.
        type: path
      timeout:
        description:
          - Seconds to wait for C(BGSAVE) to finish.
        type: float
        default: 300
  encryption_key:
    description:
      - The password that encrypts C(files) archives (ansible-vault format). Keep it in ansible-vault.
      - Without it the archives stay plain on the host and are reported in RV(backup.plaintext_sensitive).
    type: str
  label:
    description:
      - Why the set was taken (C(scheduled), C(pre-restore), C(pre-deploy), C(devnet-reset)), kept in the
        manifest.
    type: str
    default: ""
  keep:
    description:
      - Keep the set whatever its age - M(aitbc.ops.backup_prune) never deletes it (C(keep) in the manifest,
        RV(backup.keep)). For a set a record points at, such as the chain before a devnet reset.
      - Delete such a set by hand (its folder) once nothing needs it.
    type: bool
    default: false
'''

EXAMPLES = r'''
- name: Back up the coordinator and chain databases, the wallet keystore and Redis
  aitbc.ops.backup:
    root: /var/backups/aitbc
    host: "{{ inventory_hostname }}"
    sources:
      - {kind: sqlite, service: coordinator-api, path: /var/lib/aitbc/coordinator/coordinator.db}
      - {kind: sqlite, service: blockchain-node, path: /var/lib/aitbc/chain/chain.db}
      - {kind: files, service: wallet-daemon, path: /var/lib/aitbc/wallet/keystore}
      - {kind: redis, service: redis, port: 6379, password: "{{ redis_password }}"}
    encryption_key: "{{ vault_aitbc_backup_key }}"
    label: scheduled
  register: backup

- name: Show where the set went
  ansible.builtin.debug:
    msg: "{{ backup.backup.path }} ({{ backup.backup.bytes }} bytes)"
'''

RETURN = r'''
msg:
  description: One line - the set written (name, folder, files, size) or, in check mode, what would be copied.
  returned: always
  type: str
  sample: >-
    backup set 20261124T010000Z written to /var/backups/aitbc/node1/20261124T010000Z: 4 file(s), 1.0 MiB
backup:
  description: The manifest of the set written (in check mode, the plan).
  returned: always
  type: dict
  contains:
    set:
      description: The set's name, its UTC creation time.
      type: str
      sample: 20261124T010000Z
    path:
      description: The set's folder.
      type: str
      sample: /var/backups/aitbc/node1/20261124T010000Z
    bytes:
      description: Total size of the copies.
      type: int
      sample: 1048576
    files:
      description: One entry per copy - file, kind, service, source, size, sha256, encrypted, sensitive.
      type: list
      elements: dict
    plaintext_sensitive:
      description: Copies holding key material that are not encrypted (no O(encryption_key)).
      type: list
      elements: str
      sample: []
    keep:
      description: Whether retention keeps the set whatever its age (O(keep)).
      type: bool
      sample: false
'''
# fmt: on

from ansible.module_utils.basic import AnsibleModule
from ansible_collections.aitbc.ops.plugins.module_utils.backup.base import BackupError
from ansible_collections.aitbc.ops.plugins.module_utils.backup.sets import backup_result


def main():
    module = AnsibleModule(
        argument_spec=dict(
            root=dict(type="path", required=True),
            host=dict(type="str", required=True),
            sources=dict(
                type="list",
                elements="dict",
                required=True,
                options=dict(
                    kind=dict(type="str", required=True, choices=["sqlite", "files", "redis"]),
                    path=dict(type="path"),
                    service=dict(type="str"),
                    sensitive=dict(type="bool", default=False),
                    host=dict(type="str", default="127.0.0.1"),
                    port=dict(type="int", default=6379),
                    password=dict(type="str", no_log=True),
                    rdb=dict(type="path"),
                    timeout=dict(type="float", default=300),
                ),
            ),
            encryption_key=dict(type="str", no_log=True),
            label=dict(type="str", default=""),
            keep=dict(type="bool", default=False),
        ),
        supports_check_mode=True,
    )
    try:
        result = backup_result(module.params, check_mode=module.check_mode)
    except BackupError as exc:
        module.fail_json(msg=str(exc), changed=False)
    module.exit_json(**result)


if __name__ == "__main__":
    main()

# -*- coding: utf-8 -*-
# Copyright: (c) 2025, aitbc-ops developers
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Backup sets: write them, list them, verify them with a restore drill, prune them, restore from them.

Shipped to managed hosts with the aitbc.ops.backup* and aitbc.ops.restore modules: the standard library
only, plus ``cryptography`` (through vault_format) when an archive is encrypted.

A set is one folder per host and run, ``<root>/<host>/<UTC timestamp>/``, holding the copied files, a
``SHA256SUMS`` file (``sha256sum -c`` reads it) and ``manifest.json``. It is written as
``.partial-<name>-<pid>`` and renamed into place only when complete, so a set without a manifest, or a
partial folder, is never taken for a good one.

Modules: ``base`` (errors and the set format), ``kinds`` (one per source kind, and the registry),
``sets`` (writing, reading and listing sets), ``verify`` (checksums and the restore drill),
``retention`` (what to keep, pruning) and ``restore`` (putting data back).
"""

#!/usr/bin/python
# -*- coding: utf-8 -*-
# Copyright: (c) 2025, aitbc-ops developers
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import annotations

# fmt: off
DOCUMENTATION = r'''
---
module: log_review
short_description: Review what services logged since the last review, with error signatures
version_added: 0.1.0
description:
  - Reads the lines each log file (or systemd journal unit) gained since the previous review, counts
    error and warning lines, and groups the error lines into signatures - a template of the line with
    timestamps, numbers, ids, UUIDs, IP addresses, quoted values and the variable parts of paths
    replaced by placeholders, and a short id derived from it.
  - A Python traceback counts as one error. Its signature is the line that introduced it (the error
    line logged with it, or the C(Traceback) line) joined with the final exception line.
  - Where the previous review stopped is kept in one cursor file per log on the managed host, in
    O(cursor_dir). A file cursor holds the inode, the offset and a hash of the first bytes of the file,
    so a rotated, truncated or replaced file is noticed and read from its start. After a rotation, the
    lines the old file gained since the last review are read from its rotated copy (C(FILE.1)) first,
    when that still is the same file.
  - A last line without its newline is still being written, so it is left for the next review.
  - A source that cannot be read (a missing file, no C(journalctl)) is reported in its
    RV(reviews[].error) and does not fail the task.
  - Values of secret-looking keys (C(password=), C(token:), C(api_key=), C(Authorization) headers) are
    masked in templates and examples before they leave the host.
  - Needs only the Python standard library on the managed host, and C(journalctl) for journal sources.
author:
  - aitbc-ops developers (@aitbc-ops)
extends_documentation_fragment:
  - aitbc.ops.attributes
  - aitbc.ops.attributes.posix
attributes:
  check_mode:
    support: full
    details: Reads and reports the new lines but leaves the cursors where they are.
  diff_mode:
    support: none
    details: It only moves its read cursors forward; the result holds the new lines.
options:
  sources:
    description:
      - The logs to review, each a log file or a journal unit, reported in this order.
      - A file or unit may be listed once only.
    type: list
    elements: dict
    required: true
    suboptions:
      service:
        description:
          - The service the log belongs to. Returned as is in RV(reviews[].service).
        type: str
        required: true
      path:
        description:
          - The log file. Give exactly one of O(sources[].path) and O(sources[].journal_unit).
        type: path
      journal_unit:
        description:
          - A systemd unit whose journal is read with C(journalctl -u UNIT --after-cursor CURSOR).
          - The first review of a unit reads all of its journal (up to O(max_lines)).
          - An entry's own C(PRIORITY) counts too - 0 to 3 (emerg to err) make it an error, 4 (warning) a
            warning - so does a line the patterns match.
        type: str
      patterns:
        description:
          - This service's own patterns, added to those of O(patterns) (the built-in ones by default).
            A line matching any of them counts.
          - A bad regular expression fails the task with a message naming the service and the pattern.
        type: dict
        version_added: 0.3.0
        suboptions:
          error:
            description: Patterns of error lines.
            type: list
            elements: str
          warning:
            description: Patterns of warning lines.
            type: list
            elements: str
  cursor_dir:
    description:
      - Directory on the managed host holding one cursor file per log. Created when missing.
    type: path
    default: /var/lib/aitbc-ops/log-cursors
  patterns:
    description:
      - Regular expressions (Python syntax, searched anywhere in the line, case-sensitive unless they
        start with C((?i))) that make a line an error or a warning, for every source. A kind given here
        replaces the built-in patterns of that kind. A line matching an error pattern is not counted as
        a warning.
      - >-
        The built-in patterns look for a level where log formats put it, not for the word anywhere, so
        C(0 errors) or C(error_log /var/log/nginx/error.log) do not count. Errors - an upper-case
        C(ERROR), C(CRITICAL), C(CRIT), C(FATAL), C(PANIC), C(EMERG) word (Python logging, PostgreSQL's
        C(ERROR:), C(FATAL:), C(PANIC:)); a bracketed level of any case (nginx's C([error]), C([crit]),
        C([alert]), C([emerg]), Apache's C([core:error])); a level key (C(level=error),
        C(levelname=ERROR), JSON C("level": "error")); a line starting with C(error:), C(fatal:),
        C(panic:) or an exception name (C(ValueError: ...)); a Python C(Traceback).
      - >-
        Warnings - an upper-case C(WARN) or C(WARNING) word (PostgreSQL's C(WARNING:)), C([warn]),
        C(level=warn), a line starting with C(warning:), C(...Warning:) (Python's warnings) and Redis's
        warning marker (C(123:M 04 Dec 2026 10:00:00.000 # ...)); Redis's C(*), C(-) and C(.) lines are
        not counted.
    type: dict
    suboptions:
      error:
        description:
          - Patterns of error lines. Default - the built-in ones.
        type: list
        elements: str
      warning:
        description:
          - Patterns of warning lines. Default - the built-in ones.
        type: list
        elements: str
  max_lines:
    description:
      - At most this many new lines (journal entries) are read per source and review. The cursor then
        stops after the last line read, the next review goes on from there, and RV(reviews[].more) is
        V(true).
    type: int
    default: 200000
  signature_examples:
    description:
      - How many example lines to return per signature (the first ones seen).
    type: int
    default: 3
notes:
  - The task reports C(changed) when a cursor moved (in check mode, when one would have moved).
  - At most 50 signatures are returned per source, the most frequent first;
    RV(reviews[].signatures_omitted) counts the rest.
seealso:
  - module: aitbc.ops.health
'''

EXAMPLES = r'''
- name: Review the new lines of two logs and a journal unit
  aitbc.ops.log_review:
    cursor_dir: /var/lib/aitbc/log-cursors
    sources:
      - service: coordinator-api
        path: /var/log/aitbc/coordinator-api.log
      - service: wallet-daemon
        path: /var/log/aitbc/wallet-daemon.log
      - service: blockchain-node
        journal_unit: aitbc-blockchain-node.service
  register: review

- name: Show the error signatures
  ansible.builtin.debug:
    msg: "{{ item.service }}: {{ item.signatures | map(attribute='template') | list }}"
  loop: "{{ review.reviews }}"
  when: item.errors > 0

- name: Review nginx's error log, with a pattern of its own on top of the built-in ones
  aitbc.ops.log_review:
    sources:
      - service: nginx
        path: /var/log/nginx/error.log
        patterns:
          warning: ['upstream response is buffered']

- name: Count panics as errors too, and only 10000 lines per log
  aitbc.ops.log_review:
    sources:
      - service: relay
        path: /var/log/relay.log
    patterns:
      error: ['\bERROR\b', 'panic:']
    max_lines: 10000
'''

RETURN = r'''
msg:
  description: A one-line summary.
  returned: always
  type: str
  sample: "320 new lines in 2 of 3 sources: 4 errors, 1 warnings; not reviewed: redis"
totals:
  description: Sums over all sources.
  returned: success
  type: dict
  sample: {"new_lines": 320, "errors": 4, "warnings": 1}
reviews:
  description: One entry per source, in the order of O(sources).
  returned: success
  type: list
  elements: dict
  contains:
    service:
      description: The O(sources[].service) given.
      type: str
      sample: coordinator-api
    path:
      description: The log file (absolute), or V(null) for a journal source.
      type: str
      sample: /var/log/aitbc/coordinator-api.log
    journal_unit:
      description: The journal unit, or V(null) for a file source.
      type: str
      sample: null
    new_lines:
      description: Lines (journal entries) read in this review.
      type: int
      sample: 120
    errors:
      description: Error lines among them; a traceback counts once.
      type: int
      sample: 3
    warnings:
      description: Warning lines among them.
      type: int
      sample: 1
    signatures:
      description: The error signatures, the most frequent first.
      type: list
      elements: dict
      contains:
        id:
          description: The first 12 hex digits of the sha1 of RV(reviews[].signatures[].template).
          type: str
          sample: 5b0f3c2a9d41
        template:
          description: The normalized error line.
          type: str
          sample: "ERROR payment <id> failed after <n> retries: <str>"
        count:
          description: How many errors had this signature.
          type: int
          sample: 2
        examples:
          description:
            - Up to O(signature_examples) of the lines, as logged (secret values masked). A traceback's
              example holds its first and last line, separated by a newline.
          type: list
          elements: str
          sample: ["2025-05-01 10:00:01 ERROR payment id=42 failed after 3 retries: 'timeout'"]
    signatures_omitted:
      description: Signatures left out beyond the first 50.
      type: int
      sample: 0
    reset:
      description:
        - Why the log was read from its start - V(new) (no cursor yet), V(rotated) (another file now
          has the name), V(truncated) (shorter than the cursor's offset) or V(replaced) (its first bytes
          changed) - or V(null) when the review went on from the cursor.
      type: str
      sample: rotated
    more:
      description: Whether O(max_lines) stopped the review before the end of the log.
      type: bool
      sample: false
    cursor_moved:
      description: Whether the cursor moved (in check mode, whether it would have).
      type: bool
      sample: true
    start_offset:
      description: For a file, the byte offset the review started at.
      type: int
      returned: for files that could be opened
      sample: 10240
    end_offset:
      description: For a file, the byte offset after the last line read (the new cursor).
      type: int
      returned: for files that could be opened
      sample: 20480
    error:
      description: Why the source could not be reviewed, or V(null).
      type: str
      sample: "log file not found: /var/log/aitbc/redis.log"
'''
# fmt: on

from ansible.module_utils.basic import AnsibleModule
from ansible_collections.aitbc.ops.plugins.module_utils.log_review import (
    DEFAULT_CURSOR_DIR,
    DEFAULT_EXAMPLES,
    DEFAULT_MAX_LINES,
    LogReviewError,
    review_logs,
)

# Unset kinds stay None: the built-in patterns (module level) or none added (per source).
PATTERN_OPTIONS = dict(error=dict(type="list", elements="str"), warning=dict(type="list", elements="str"))


def main():
    module = AnsibleModule(
        argument_spec=dict(
            sources=dict(
                type="list",
                elements="dict",
                required=True,
                options=dict(
                    service=dict(type="str", required=True),
                    path=dict(type="path"),
                    journal_unit=dict(type="str"),
                    patterns=dict(type="dict", options=PATTERN_OPTIONS),
                ),
                mutually_exclusive=[("path", "journal_unit")],
                required_one_of=[("path", "journal_unit")],
            ),
            cursor_dir=dict(type="path", default=DEFAULT_CURSOR_DIR),
            patterns=dict(type="dict", options=PATTERN_OPTIONS),
            max_lines=dict(type="int", default=DEFAULT_MAX_LINES),
            signature_examples=dict(type="int", default=DEFAULT_EXAMPLES),
        ),
        supports_check_mode=True,
    )
    try:
        result = review_logs(module.params, check_mode=module.check_mode)
    except LogReviewError as exc:
        module.fail_json(msg=str(exc), changed=False)
    module.exit_json(**result)


if __name__ == "__main__":
    main()

# -*- coding: utf-8 -*-
# Copyright: (c) 2026, aitbc-ops developers
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""KEY=VALUE environment files (a service's .env) written atomically, with a diff that never shows a
secret value: values of secret keys appear as ``********`` in the diff and in every returned field.

Standard library only (shipped to managed hosts with the aitbc.ops.env_file module).
"""

from __future__ import annotations

import os
import re
from typing import Any

from ansible_collections.aitbc.ops.plugins.module_utils._diff import text_diff
from ansible_collections.aitbc.ops.plugins.module_utils._files import atomic_write

MASK = "********"
KEY_RE = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")
# The same names the recorder treats as secret (opsrunner/redact.py): *_KEY(S), *_TOKEN, *SECRET*,
# *PASSWORD*, *PASSWD*, credentials in URLs.
SECRET_KEY_RE = re.compile(r"(?i)(_KEYS?$|^KEY$|TOKEN|SECRET|PASSWORD|PASSWD|CREDENTIAL|PRIVATE)")
URL_PASSWORD_RE = re.compile(r"(?P<scheme>[a-z][a-z0-9+.-]*://[^:/@\s]+:)(?P<password>[^@\s]+)(?=@)", re.I)


class EnvFileError(Exception):
    """Bad input; the message is one line for the user."""


def quote(value: str) -> str:
    """The value as written after ``KEY=``: read back unchanged by systemd's EnvironmentFile= and by the
    process backend (service/process.py read_env_file, the same grammar). Inside double quotes a backslash
    escapes exactly these four characters there (and in a shell, so a backtick never runs a command)."""
    if value == "" or re.search(r"[\s#\"'$`\\]", value):
        return '"' + re.sub(r'(["$`\\])', r"\\\1", value) + '"'
    return value


def render(values: dict[str, object], header: str = "") -> str:
    lines = [f"# {line}".rstrip() for line in header.splitlines()] if header else []
    for key in sorted(values):
        if not KEY_RE.match(str(key)):
            raise EnvFileError(f"not a valid environment variable name: {key!r}")
        value = "" if values[key] is None else str(values[key])
        if "\n" in value or "\r" in value:
            raise EnvFileError(f"{key}: values must be one line")
        lines.append(f"{key}={quote(value)}")
    return "\n".join(lines) + "\n"


def is_secret(key: str, secret_keys: set[str]) -> bool:
    return key in secret_keys or bool(SECRET_KEY_RE.search(key))


def masked_text(text: str, secret_keys: set[str], changed: frozenset[str] = frozenset()) -> str:
    """The file's text with the values of secret keys, and passwords inside URLs, masked. Secret keys in
    ``changed`` are marked, so a diff still shows that a masked value changed."""
    out = []
    for line in text.splitlines():
        key, sep, value = line.partition("=")
        if sep and not line.lstrip().startswith("#") and is_secret(key.strip(), secret_keys):
            out.append(f"{key}={MASK}" + (" (changed)" if key.strip() in changed else ""))
        else:
            out.append(URL_PASSWORD_RE.sub(lambda m: m["scheme"] + MASK, line))
    return "\n".join(out) + ("\n" if text.endswith("\n") else "")


def keys_of(text: str) -> dict[str, str]:
    found: dict[str, str] = {}
    for line in text.splitlines():
        key, sep, value = line.partition("=")
        if sep and not line.lstrip().startswith("#"):
            found[key.strip()] = value
    return found


def apply(params: dict[str, Any], check_mode: bool = False) -> dict[str, Any]:
    """Bring the file at params['path'] to the wanted content; the result for exit_json."""
    path = params["path"]
    public, secret = dict(params.get("values") or {}), dict(params.get("secret_values") or {})
    both = sorted(set(public) & set(secret))
    if both:
        raise EnvFileError(f"given both as a value and as a secret value: {', '.join(both)}")
    secret_keys = set(params.get("secret_keys") or []) | set(secret)
    try:
        mode = int(str(params.get("mode") or "0600"), 8)
    except ValueError:
        raise EnvFileError(f"mode must be an octal string such as 0600, not {params.get('mode')!r}") from None
    wanted = render({**public, **secret}, params.get("header") or "")
    try:
        with open(path, encoding="utf-8") as handle:
            current = handle.read()
    except FileNotFoundError:
        current = None
    except OSError as exc:
        raise EnvFileError(f"cannot read {path}: {exc.strerror}") from exc
    old_mode = os.stat(path).st_mode & 0o7777 if current is not None else None
    before, after = keys_of(current or ""), keys_of(wanted)
    changed_keys = sorted(k for k in set(before) | set(after) if before.get(k) != after.get(k))
    changed = current != wanted or old_mode != mode
    if changed and not check_mode:
        if not os.path.isdir(os.path.dirname(path) or "."):
            raise EnvFileError(f"folder of {path} does not exist")
        try:
            atomic_write(path, wanted.encode(), mode)
        except OSError as exc:
            raise EnvFileError(f"cannot write {path}: {exc.strerror}") from exc
    return {
        "changed": changed,
        "path": path,
        "keys": sorted(after),
        "changed_keys": changed_keys,
        "secret_keys": sorted(k for k in after if is_secret(k, secret_keys)),
        "diff": text_diff(
            masked_text(current or "", secret_keys),
            masked_text(wanted, secret_keys, frozenset(changed_keys) & set(before)),
            path,
        ),
    }

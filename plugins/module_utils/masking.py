# -*- coding: utf-8 -*-
# Copyright: (c) 2026, aitbc-ops developers
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""The one masker of secret-looking text: values of password=, token:, api_key=..., Authorization headers
and credentials inside URLs (scheme://user:PASS@host), in time linear in the text.

Text that comes from a host (log lines, command output) is masked with it on the host (log review) and on
the controller before anything is written or printed (opsrunner's Redactor). This file imports nothing but
the standard library: opsrunner loads it by path, the same file a module ships to a host.
"""

from __future__ import annotations

import re

MASK = "<secret>"
# Values already masked (here, or by opsrunner's Redactor, which knows the secret itself) stay as they are.
_MASKED = (MASK, "********")

# A key and its separator, matched from the key's first character only: matching the secret word inside
# the key with a regex ([\w-]*password[\w-]*) was quadratic on a long dash-joined word.
_KV_KEY_RE = re.compile(r"(?<![\w-])([\w-]+)[\"']?\s*[=:]\s*")
_KV_VALUE_RE = re.compile(r"\"[^\"]*\"|'[^']*'|[^\s,;&]+")
_SECRET_WORDS = r"password|passwd|passphrase|secret|token|api[_-]?keys?|private[_-]?key|pat\b"
_SECRET_WORD_RE = re.compile(rf"(?i){_SECRET_WORDS}")
_AUTH_HEADER_RE = re.compile(r"(?i)\b(authorization:\s*(?:bearer|basic|token)\s+)[^\s'\"]+")
_BEARER_RE = re.compile(r"(?i)\b(bearer\s+)[A-Za-z0-9._~+/=-]{8,}")
# Tokens whose shape gives them away wherever they appear, whatever names them: GitHub (classic and
# fine-grained), GitLab and Slack tokens. Each starts with its fixed prefix, so the scan stays linear.
_TOKEN_SHAPE_RE = re.compile(
    r"\b(?:gh[pousr]_[A-Za-z0-9]{20,}|github_pat_[A-Za-z0-9_]{20,}|glpat-[A-Za-z0-9_-]{20,}"
    r"|xox[abprs]-[A-Za-z0-9-]{10,})"
)
# scheme://user:password@ - the user stays (it helps to read), the password goes. A scheme is short (at
# most 32 characters): unbounded, each word start of a long dash-joined word would scan to its end.
_URL_CREDENTIALS_RE = re.compile(r"\b([A-Za-z][A-Za-z0-9+.-]{0,31}://[^\s:/@]*:)[^\s@/]+@")
# Cheap substring tests decide whether a text needs the full pass (the recorder masks every string it
# sees): a superset of what the patterns above can match.
_TRIGGER_WORDS = (
    "passw",
    "passphrase",
    "secret",
    "token",
    "api_key",
    "api-key",
    "apikey",
    "private_key",
    "private-key",
    "privatekey",
    "authorization",
    "bearer",
    # the token shapes' prefixes
    "ghp_",
    "gho_",
    "ghu_",
    "ghs_",
    "ghr_",
    "github_pat_",
    "glpat-",
    "xox",
)
_PAT_RE = re.compile(r"(?i)pat\b")  # GITHUB_PAT=...; "path" is everywhere, so the word is checked alone


def might_hold_secret(text: str) -> bool:
    """False when no pattern of mask_secrets can match ``text``."""
    if "://" in text and "@" in text:
        return True
    low = text.lower()
    return any(word in low for word in _TRIGGER_WORDS) or ("pat" in low and _PAT_RE.search(text) is not None)


def mask_secrets(text: str) -> str:
    """``text`` with the values of secret-looking keys, Authorization/Bearer tokens and URL passwords
    replaced by ``<secret>``; unchanged (the same object) when nothing in it looks secret."""
    if not might_hold_secret(text):
        return text
    masked = _URL_CREDENTIALS_RE.sub(lambda m: m.group(1) + MASK + "@", _mask_key_values(text))
    masked = _AUTH_HEADER_RE.sub(lambda m: m.group(1) + MASK, masked)
    masked = _BEARER_RE.sub(lambda m: m.group(1) + MASK, masked)
    return _TOKEN_SHAPE_RE.sub(MASK, masked)


def _mask_key_values(text: str) -> str:
    """Replace the value after each secret-looking key; other keys' values are searched for keys too."""
    out: list[str] = []
    pos = 0
    while (key := _KV_KEY_RE.search(text, pos)) is not None:
        value = _KV_VALUE_RE.match(text, key.end()) if _SECRET_WORD_RE.search(key.group(1)) else None
        if value is None or value.group(0).startswith(_MASKED):
            out.append(text[pos : key.end()])
            pos = key.end()
            continue
        out.append(text[pos : key.end()] + MASK)
        pos = value.end()
    out.append(text[pos:])
    return "".join(out)

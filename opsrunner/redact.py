"""Redaction of secret values before anything is written.

The recorder owns one Redactor per run. It learns secret values from three places: variables whose
names look secret, values that came out of ansible-vault, and environment variables with secret names.
Every string that later passes through `redact()` has those values masked, wherever they appear, and
then whatever looks secret whatever its name (password=..., Bearer tokens, scheme://user:PASS@) masked by
the collection's one masker, plugins/module_utils/masking.py, the same file log review runs on hosts.
"""

from __future__ import annotations

import copy
import importlib.util
import re
import sys
from collections.abc import Callable, Iterable, Mapping
from pathlib import Path
from types import ModuleType
from typing import Any

MASK = "********"

# Names whose values are secrets, whatever they hold (AITBC uses *_API_KEYS, HMAC_SECRET, ...).
SECRET_NAME_RE = re.compile(
    r"(_KEY$|_KEYS$|_TOKEN$|(?:^|_)PAT(?:_|$)|_PASS$|SECRET|PASSWORD|PASSWD|PASSPHRASE|PRIVATE_KEY|^HMAC_SECRET$)",
    re.IGNORECASE,
)

# The memo of masked strings: only short ones, and a bounded number of them.
CACHED_LENGTH = 256
CACHED_STRINGS = 50_000

# Shorter values would mask ordinary words and numbers all over the record.
MIN_SECRET_LENGTH = 4

NO_LOG_MARKER = "the output has been hidden due to the fact that 'no_log: true' was specified for this result"

# Result keys kept from a no_log result: the flags the recorder needs, never the content.
NO_LOG_KEPT_KEYS = ("changed", "failed", "skipped", "unreachable", "rc")


def _load_masker() -> ModuleType:
    """The collection's masker, by path: opsrunner ships at the collection's root (plugin_utils/recorder.py),
    and the masker imports nothing but the standard library."""
    name = "aitbc_ops_masking"
    if name in sys.modules:
        return sys.modules[name]
    path = Path(__file__).resolve().parent.parent / "plugins" / "module_utils" / "masking.py"
    spec = importlib.util.spec_from_file_location(name, path)
    if spec is None or spec.loader is None:
        raise ImportError(f"the masker is missing: {path}")
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module
    spec.loader.exec_module(module)
    return module


mask_secrets: Callable[[str], str] = _load_masker().mask_secrets


def is_secret_name(name: str) -> bool:
    return bool(SECRET_NAME_RE.search(name))


def iter_strings(value: Any) -> Iterable[str]:
    """Every string leaf of a nested structure of dicts, lists and scalars."""
    if isinstance(value, str):
        yield value
    elif isinstance(value, Mapping):
        for item in value.values():
            yield from iter_strings(item)
    elif isinstance(value, list | tuple | set):
        for item in value:
            yield from iter_strings(item)
    elif isinstance(value, int | float) and not isinstance(value, bool):
        yield str(value)


class Redactor:
    """Masks known secret values in strings and nested data."""

    def __init__(self, secrets: Iterable[str] = ()) -> None:
        self._secrets: set[str] = set()
        self._pattern: re.Pattern[str] | None = None
        self._masked: dict[str, str] = {}
        self.add(secrets)

    @property
    def secrets(self) -> frozenset[str]:
        return frozenset(self._secrets)

    def add(self, values: Iterable[str] | str) -> None:
        if isinstance(values, str):
            values = [values]
        new = {v for v in values if len(v) >= MIN_SECRET_LENGTH and v != MASK} - self._secrets
        if new:
            self._masked.clear()  # masked with fewer secrets than it now knows
            self._secrets |= new
            # Longest first, so a secret that contains another is masked whole.
            ordered = sorted(self._secrets, key=len, reverse=True)
            self._pattern = re.compile("|".join(re.escape(s) for s in ordered))

    def add_secret_value(self, value: Any) -> None:
        """Learn every string inside a value known to be secret (a str, or a dict of keys)."""
        self.add(list(iter_strings(value)))

    def add_from_mapping(self, mapping: Mapping[str, Any]) -> None:
        """Learn the values of entries whose names look secret, searching nested mappings too."""
        for name, value in mapping.items():
            if isinstance(name, str) and is_secret_name(name):
                self.add_secret_value(value)
            elif isinstance(value, Mapping):
                self.add_from_mapping(value)
            elif isinstance(value, list):
                for item in value:
                    if isinstance(item, Mapping):
                        self.add_from_mapping(item)

    def redact_text(self, text: str) -> str:
        if not text:
            return text
        return mask_secrets(self._pattern.sub(MASK, text) if self._pattern is not None else text)

    def redact(self, value: Any) -> Any:
        """A copy of value with secret values masked and secret-named entries blanked."""
        return self.redact_in_place(copy.deepcopy(value))

    def redact_in_place(self, value: Any) -> Any:
        """Redact nested dicts and lists in place (the recorder's hot path); returns the result."""
        kind = type(value)
        if kind is str:
            return self._mask(value)
        if kind is dict:
            if value.get("_ansible_no_log") is True:
                return censor_no_log(value)
            for key, item in value.items():
                item_kind = type(item)
                if item_kind is str or item_kind is int or item_kind is float:
                    if item != "" and type(key) is str and secret_name_cached(key):
                        value[key] = MASK
                    elif item_kind is str:
                        masked = self._mask(item)
                        if masked is not item:
                            value[key] = masked
                elif item is not None and item_kind is not bool:
                    value[key] = self.redact_in_place(item)
            return value
        if kind is list:
            for index, item in enumerate(value):
                if type(item) is not bool and item is not None:
                    value[index] = self.redact_in_place(item)
            return value
        if isinstance(value, str):  # str subclasses, e.g. Ansible's tagged strings
            return self._mask(str(value))
        if isinstance(value, Mapping):
            return self.redact_in_place(dict(value))
        if isinstance(value, tuple | list):
            return self.redact_in_place(list(value))
        return value

    def _mask(self, text: str) -> str:
        # Event strings repeat (task names, hosts, module arguments): short ones are masked once.
        known = self._masked.get(text)
        if known is not None:
            return known
        masked = text
        pattern = self._pattern
        if pattern is not None and pattern.search(masked):
            masked = pattern.sub(MASK, masked)
        masked = mask_secrets(masked)
        if len(text) <= CACHED_LENGTH and len(self._masked) < CACHED_STRINGS:
            self._masked[text] = masked
        return masked


_secret_name_cache: dict[str, bool] = {}


def secret_name_cached(name: str) -> bool:
    """is_secret_name, memoized: event keys repeat endlessly."""
    known = _secret_name_cache.get(name)
    if known is None:
        known = _secret_name_cache[name] = is_secret_name(name)
    return known


def censor_no_log(result: Mapping[str, Any]) -> dict[str, Any]:
    """What a no_log result may show: its status flags and Ansible's own censor message."""
    kept = {key: result[key] for key in NO_LOG_KEPT_KEYS if key in result}
    kept["censored"] = NO_LOG_MARKER
    return kept

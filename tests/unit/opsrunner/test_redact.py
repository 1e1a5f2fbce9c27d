"""Redaction: secret names, secret values, no_log results."""

from __future__ import annotations

import pytest

from opsrunner.redact import MASK, Redactor, is_secret_name


def test_secret_names() -> None:
    for name in (
        "COORDINATOR_API_KEY",
        "aitbc_token",
        "HMAC_SECRET",
        "db_password",
        "CLIENT_API_KEYS",
        "vault_secret_x",
        "MY_PASSPHRASE",
        "GITHUB_PAT",
        "ANSIBLE_BECOME_PASS",
    ):
        assert is_secret_name(name), name
    for name in ("keystore_dir", "port", "chain_id", "monkey", "keys_count", "compass", "web_path"):
        assert not is_secret_name(name), name


def test_values_are_masked_everywhere() -> None:
    redactor = Redactor(["s3cr3t-value"])
    event = {"stdout": "echo s3cr3t-value done", "res": {"msg": ["a", "xs3cr3t-valuex"]}, "n": 3}
    assert redactor.redact(event) == {
        "stdout": f"echo {MASK} done",
        "res": {"msg": ["a", f"x{MASK}x"]},
        "n": 3,
    }


def test_longer_secret_masked_whole() -> None:
    redactor = Redactor(["abcd", "abcdefgh"])
    assert redactor.redact_text("abcdefgh") == MASK


def test_secret_named_entries_are_blanked_and_learned() -> None:
    redactor = Redactor()
    redactor.add_from_mapping(
        {"env": {"HMAC_SECRET": "hm-123456", "PORT": "8000"}, "list": [{"x_token": "tk-999"}]}
    )
    assert redactor.secrets == {"hm-123456", "tk-999"}
    assert redactor.redact({"HMAC_SECRET": "other", "text": "tk-999"}) == {"HMAC_SECRET": MASK, "text": MASK}


def test_short_values_are_not_secrets() -> None:
    redactor = Redactor(["1", "ab"])
    assert redactor.redact_text("1 ab") == "1 ab"


def test_no_log_results_keep_only_flags() -> None:
    redactor = Redactor()
    res = {"_ansible_no_log": True, "changed": True, "stdout": "plaintext secret", "failed": False}
    cleaned = redactor.redact({"res": res})["res"]
    assert "plaintext secret" not in str(cleaned)
    assert cleaned["changed"] is True and cleaned["failed"] is False


def test_the_redactor_masks_host_text_whatever_its_key() -> None:
    result = {"log_tail": ["Authorization: Bearer 0123456789abcdef", "ok"], "msg": "url mysql://a:b1@h/x"}
    assert Redactor().redact(result) == {
        "log_tail": ["Authorization: Bearer <secret>", "ok"],
        "msg": "url mysql://a:<secret>@h/x",
    }
    assert Redactor().redact_text("password=hunter2 and pw") == "password=<secret> and pw"


@pytest.mark.parametrize(
    ("name", "secret"),
    [("GITHUB_PAT", True), ("GITHUB_PAT_X", True), ("PAT_FOR_CI", True), ("PATH", False), ("XPATCH", False)],
)
def test_pat_is_a_secret_word_wherever_it_stands(name: str, secret: bool) -> None:
    assert is_secret_name(name) is secret

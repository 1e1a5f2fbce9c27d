"""KEY=VALUE environment files: rendering, quoting, masking and the change report (module_utils/env_file)."""

from __future__ import annotations

from pathlib import Path

import pytest
from ansible_collections.aitbc.ops.plugins.module_utils import env_file as ef
from ansible_collections.aitbc.ops.plugins.module_utils.service.process import parse_env_text


def params(path: Path, **extra) -> dict:
    return {"path": str(path), "values": {}, "secret_values": {}, "secret_keys": [], "mode": "0600", **extra}


def test_render_sorts_quotes_and_rejects_bad_names() -> None:
    text = ef.render({"B": "two words", "A": "plain", "C": "", "D": 'q"$x'}, header="managed")
    assert text == '# managed\nA=plain\nB="two words"\nC=""\nD="q\\"\\$x"\n'
    with pytest.raises(ef.EnvFileError, match="not a valid environment variable name"):
        ef.render({"1BAD": "x"})
    with pytest.raises(ef.EnvFileError, match="one line"):
        ef.render({"A": "x\ny"})


def test_masking_hides_secret_names_given_keys_and_url_passwords() -> None:
    text = "HMAC_SECRET=abc\nAPI_KEYS=k1,k2\nDATABASE_URL=postgres://app:pw123@db/x\nPLAIN=visible\nOTHER=hidden\n"
    masked = ef.masked_text(text, {"OTHER"})
    assert "abc" not in masked and "k1" not in masked and "pw123" not in masked and "hidden" not in masked
    assert "PLAIN=visible" in masked and "postgres://app:********@db/x" in masked


def test_apply_writes_0600_reports_changed_keys_and_masks_the_diff(tmp_path: Path) -> None:
    path = tmp_path / "svc.env"
    first = ef.apply(params(path, values={"URL": "http://x"}, secret_values={"HMAC": "s3cret-1"}))
    assert first["changed"] and oct(path.stat().st_mode & 0o777) == "0o600"
    assert first["changed_keys"] == ["HMAC", "URL"] and first["secret_keys"] == ["HMAC"]
    assert "s3cret-1" not in str(first)
    same = ef.apply(params(path, values={"URL": "http://x"}, secret_values={"HMAC": "s3cret-1"}))
    assert not same["changed"] and same["changed_keys"] == []
    rotated = ef.apply(
        params(path, values={"URL": "http://x"}, secret_values={"HMAC": "s3cret-2"}), check_mode=True
    )
    assert rotated["changed"] and rotated["changed_keys"] == ["HMAC"]
    assert (
        "HMAC=********\n" in rotated["diff"]["before"]
        and "HMAC=******** (changed)" in rotated["diff"]["after"]
    )
    assert "s3cret" not in str(rotated) and "s3cret-1" in path.read_text()  # check mode wrote nothing
    with pytest.raises(ef.EnvFileError, match="both as a value and as a secret"):
        ef.apply(params(path, values={"HMAC": "a"}, secret_values={"HMAC": "b"}))


@pytest.mark.parametrize(
    "value",
    [
        "abc$def",
        "${HOME}",
        "q\"uo'te",
        "back\\slash\\",
        "\\$",
        "  spaces  ",
        "x # y",
        "#x",
        "`id`",
        "",
        "a;b",
        "ü",
    ],
)
def test_rendered_values_read_back_unchanged(value: str) -> None:
    # The process backend reads an env file with systemd's EnvironmentFile= grammar: what the inventory says
    # is what the service gets (abc$def used to arrive as abc\$def).
    text = ef.render({"V": value})
    assert parse_env_text(text) == {"V": value}, text

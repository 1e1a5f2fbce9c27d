"""The intake's authentication: bearer tokens, Standard Webhooks signatures, replay vs retry, and the
secret files it refuses (opsrunner/intake/auth.py)."""

from __future__ import annotations

import base64
import datetime as dt
from pathlib import Path

import pytest
from standardwebhooks.webhooks import Webhook

from opsrunner.intake.auth import Authenticator, SeenIds, Verdict
from opsrunner.secret_files import read_secret_file
from opsrunner.settings import BadInput

SECRET = "whsec_" + base64.b64encode(b"k" * 32).decode()
TOKEN = "t0ken-for-tests"
BODY = b'{"x": 1}'


def signed(msg_id: str, body: bytes = BODY, *, secret: str = SECRET, age_s: float = 0) -> dict[str, str]:
    moment = dt.datetime.now(dt.UTC) - dt.timedelta(seconds=age_s)
    signature = Webhook(secret).sign(msg_id, moment, body)
    return {
        "webhook-id": msg_id,
        "webhook-timestamp": str(int(moment.timestamp())),
        "webhook-signature": signature,
    }


def auth(tmp_path: Path, token: str | None = TOKEN, secret: str | None = SECRET) -> Authenticator:
    return Authenticator(token, secret, SeenIds(tmp_path / "seen.json"))


def test_bearer_token(tmp_path: Path) -> None:
    a = auth(tmp_path, secret=None)
    assert a.check({"authorization": f"Bearer {TOKEN}"}, BODY).verdict is Verdict.ACCEPT
    assert a.check({"authorization": f"bearer {TOKEN}"}, BODY).verdict is Verdict.ACCEPT
    for value in (f"Bearer {TOKEN}x", "Bearer ", f"Basic {TOKEN}", TOKEN):
        assert a.check({"authorization": value}, BODY).verdict is Verdict.REJECT, value
    assert a.check({}, BODY).verdict is Verdict.REJECT
    # Signature headers where only tokens are configured are not a credential.
    assert a.check(signed("m1"), BODY).verdict is Verdict.REJECT


def test_signature_accepted_forged_stale_and_unsigned_refused(tmp_path: Path) -> None:
    a = auth(tmp_path, token=None)
    result = a.check(signed("m1"), BODY)
    assert (result.verdict, result.msg_id) == (Verdict.ACCEPT, "m1")
    other = "whsec_" + base64.b64encode(b"z" * 32).decode()
    cases = {
        "forged": signed("m2", secret=other),
        "body changed": signed("m3", b'{"x": 2}'),
        "stale": signed("m4", age_s=600),
        "future": signed("m5", age_s=-600),
        "no signature": {k: v for k, v in signed("m6").items() if k != "webhook-signature"},
        "unsigned": {},
        "bearer only": {"authorization": f"Bearer {TOKEN}"},
    }
    for name, headers in cases.items():
        assert a.check(headers, BODY).verdict is Verdict.REJECT, name


def test_replay_is_refused_and_a_retry_is_a_duplicate(tmp_path: Path) -> None:
    a = auth(tmp_path)
    first = signed("msg-1")
    accepted = a.check(first, BODY)
    assert accepted.verdict is Verdict.ACCEPT
    # Until its reports are accepted the id is not remembered: a resend is a new try.
    assert a.check(first, BODY).verdict is Verdict.ACCEPT
    a.seen.remember(accepted.msg_id, accepted.signature)
    replay = a.check(first, BODY)
    assert replay.verdict is Verdict.REJECT and "replayed" in replay.reason
    retry = dict(first, **{"webhook-timestamp": str(int(first["webhook-timestamp"]) - 1)})
    retry["webhook-signature"] = Webhook(SECRET).sign(
        "msg-1", dt.datetime.fromtimestamp(int(retry["webhook-timestamp"]), dt.UTC), BODY
    )
    assert a.check(retry, BODY).verdict is Verdict.DUPLICATE
    # The seen ids survive a restart (a new store on the same file).
    again = auth(tmp_path)
    assert again.check(first, BODY).verdict is Verdict.REJECT
    assert again.check(retry, BODY).verdict is Verdict.DUPLICATE


def test_a_valid_signature_with_a_wrong_token_is_refused(tmp_path: Path) -> None:
    a = auth(tmp_path)
    headers = {**signed("m1"), "authorization": "Bearer wrong"}
    assert a.check(headers, BODY).verdict is Verdict.REJECT
    assert a.check({**signed("m2"), "authorization": f"Bearer {TOKEN}"}, BODY).verdict is Verdict.ACCEPT


def test_seen_ids_are_pruned_and_bounded(tmp_path: Path) -> None:
    seen = SeenIds(tmp_path / "seen.json", ttl=60, limit=3)
    for n in range(5):
        seen.remember(f"id{n}", "sig")
    assert sorted(seen.ids) == ["id2", "id3", "id4"]
    seen.ids["id2"] = ("sig", 0.0)  # long past the ttl
    assert seen.get("id2") is None
    seen.remember("id5", "sig")
    assert "id2" not in SeenIds(tmp_path / "seen.json", ttl=60).ids
    assert oct((tmp_path / "seen.json").stat().st_mode & 0o777) == "0o600"


def test_no_authentication_is_refused(tmp_path: Path) -> None:
    with pytest.raises(BadInput, match="needs authentication"):
        Authenticator(None, None, SeenIds(tmp_path / "s.json"))
    with pytest.raises(BadInput, match="not a Standard Webhooks secret"):
        Authenticator(None, "whsec_!!!", SeenIds(tmp_path / "s.json"))


def test_secret_files_must_be_owner_only(tmp_path: Path) -> None:
    path = tmp_path / "token"
    path.write_text(TOKEN + "\n")
    path.chmod(0o600)
    assert read_secret_file(path, "--token-file") == TOKEN
    path.chmod(0o400)
    assert read_secret_file(path, "--token-file") == TOKEN
    for mode in (0o640, 0o604, 0o644):
        path.chmod(mode)
        with pytest.raises(BadInput, match=f"readable by others \\(mode {mode:04o}\\)"):
            read_secret_file(path, "--token-file")
    empty = tmp_path / "empty"
    empty.write_text("\n")
    empty.chmod(0o600)
    with pytest.raises(BadInput, match="is empty"):
        read_secret_file(empty, "--token-file")
    with pytest.raises(BadInput, match="No such file"):
        read_secret_file(tmp_path / "missing", "--token-file")

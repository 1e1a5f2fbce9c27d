"""plugins/module_utils/vault_format.py: round trips, byte-exact and two-way interop with the real
ansible-vault CLI, tamper/truncation/wrong-password errors, the file API, and a run under /usr/bin/python3
(the managed hosts' interpreter with their older cryptography)."""

from __future__ import annotations

import binascii
import os
import stat
import subprocess
import sys
from pathlib import Path

import pytest
from ansible_collections.aitbc.ops.plugins.module_utils import vault_format as vf
from ansible_collections.aitbc.ops.plugins.module_utils.vault_format import VaultFormatError

REPO = Path(__file__).resolve().parents[4]

ANSIBLE_VAULT = Path(sys.executable).parent / "ansible-vault"
HOST_PYTHON = Path("/usr/bin/python3")
MODULE_FILE = REPO / "plugins" / "module_utils" / "vault_format.py"
PASSWORD = "correct horse battery staple"


def ansible_vault(tmp_path: Path, *args: str, env: dict[str, str] | None = None) -> bytes:
    """Run the real ansible-vault in tmp_path (no ansible.cfg there) and return stdout; fail on rc != 0."""
    if not ANSIBLE_VAULT.exists():
        pytest.skip(f"needs the ansible-vault CLI beside {sys.executable} (the project venv has it)")
    full_env = {k: v for k, v in os.environ.items() if not k.startswith("ANSIBLE_")}
    full_env.update(env or {})
    proc = subprocess.run(
        [str(ANSIBLE_VAULT), *args], cwd=tmp_path, env=full_env, capture_output=True, timeout=120, check=False
    )
    assert proc.returncode == 0, proc.stderr.decode(errors="replace")
    return proc.stdout


@pytest.fixture
def pwfile(tmp_path: Path) -> Path:
    # ansible-vault strips the trailing newline of a password file; our API takes the bare password.
    path = tmp_path / "vault-pass"
    path.write_text(PASSWORD + "\n")
    return path


def tamper_ciphertext(vaulttext: bytes, index: int) -> bytes:
    """Flip one bit of the raw ciphertext and re-encode, keeping the file well-formed."""
    header, _sep, body = vaulttext.partition(b"\n")
    salt_hex, mac_hex, ct_hex = binascii.unhexlify(body.replace(b"\n", b"")).split(b"\n")
    ciphertext = bytearray(binascii.unhexlify(ct_hex))
    ciphertext[index] ^= 0x01
    inner = b"\n".join([salt_hex, mac_hex, binascii.hexlify(bytes(ciphertext))])
    return header + b"\n" + binascii.hexlify(inner) + b"\n"


@pytest.mark.parametrize("size", [0, 1, 15, 16, 17, 79, 80, 4096 + 3])
def test_round_trip_sizes(size: int) -> None:
    plaintext = os.urandom(size)
    vaulttext = vf.encrypt_bytes(plaintext, PASSWORD)
    assert vf.is_vault(vaulttext)
    assert vf.decrypt_bytes(vaulttext, PASSWORD) == plaintext


def test_password_str_and_bytes_are_equivalent() -> None:
    password = "pässwörd ☃"
    vaulttext = vf.encrypt_bytes(b"data", password)
    assert vf.decrypt_bytes(vaulttext, password.encode("utf-8")) == b"data"


def test_password_is_used_exactly_as_given() -> None:
    vaulttext = vf.encrypt_bytes(b"data", PASSWORD + "\n")
    with pytest.raises(VaultFormatError, match="HMAC check failed"):
        vf.decrypt_bytes(vaulttext, PASSWORD)
    assert vf.decrypt_bytes(vaulttext, PASSWORD + "\n") == b"data"


def test_envelope_layout() -> None:
    vaulttext = vf.encrypt_bytes(b"x" * 1000, PASSWORD)
    lines = vaulttext.split(b"\n")
    assert lines[0] == b"$ANSIBLE_VAULT;1.1;AES256"
    assert lines[-1] == b""  # final newline
    body = lines[1:-1]
    assert all(len(line) == 80 for line in body[:-1]) and 0 < len(body[-1]) <= 80
    assert set(b"".join(body)) <= set(b"0123456789abcdef")


def test_vault_id_label_uses_format_1_2() -> None:
    vaulttext = vf.encrypt_bytes(b"data", PASSWORD, vault_id="backups")
    assert vaulttext.startswith(b"$ANSIBLE_VAULT;1.2;AES256;backups\n")
    assert vf.decrypt_bytes(vaulttext, PASSWORD) == b"data"
    assert vf.encrypt_bytes(b"data", PASSWORD, vault_id="default").startswith(b"$ANSIBLE_VAULT;1.1;AES256\n")


@pytest.mark.parametrize("label", ["a;b", "a\nb", " padded"])
def test_invalid_vault_id(label: str) -> None:
    with pytest.raises(VaultFormatError, match="invalid vault id"):
        vf.encrypt_bytes(b"data", PASSWORD, vault_id=label)


def test_empty_password_rejected() -> None:
    with pytest.raises(VaultFormatError, match="must not be empty"):
        vf.encrypt_bytes(b"data", "")


def test_fresh_salt_each_time() -> None:
    assert vf.encrypt_bytes(b"same", PASSWORD) != vf.encrypt_bytes(b"same", PASSWORD)


def test_output_contains_no_plaintext() -> None:
    marker = b"BACKUP-SECRET-" + bytes(range(256))
    plaintext = marker * 50
    vaulttext = vf.encrypt_bytes(plaintext, PASSWORD)
    body = vaulttext.partition(b"\n")[2]
    assert set(body) <= set(b"0123456789abcdef\n")  # no plaintext byte outside the hex alphabet survives
    flat = body.replace(b"\n", b"")
    head = marker[:16]
    for needle in (head, binascii.hexlify(head), binascii.hexlify(binascii.hexlify(head))):
        assert needle not in flat


def test_large_payload_round_trip() -> None:
    plaintext = os.urandom(5 * 1024 * 1024)
    vaulttext = vf.encrypt_bytes(plaintext, PASSWORD)
    assert vf.decrypt_bytes(vaulttext, PASSWORD) == plaintext


def test_wrong_password() -> None:
    vaulttext = vf.encrypt_bytes(b"data", PASSWORD)
    with pytest.raises(VaultFormatError, match=r"^HMAC check failed: wrong password or corrupted file$"):
        vf.decrypt_bytes(vaulttext, "not the password")


@pytest.mark.parametrize("index", [0, 100, -1])
def test_flipped_ciphertext_bit_fails_hmac(index: int) -> None:
    vaulttext = vf.encrypt_bytes(os.urandom(300), PASSWORD)
    with pytest.raises(VaultFormatError, match="HMAC check failed"):
        vf.decrypt_bytes(tamper_ciphertext(vaulttext, index), PASSWORD)


def test_any_flipped_byte_in_file_is_rejected() -> None:
    vaulttext = vf.encrypt_bytes(b"some archive bytes " * 20, PASSWORD)
    header_len = vaulttext.index(b"\n") + 1
    for pos in range(header_len, len(vaulttext) - 1, 7):
        if vaulttext[pos : pos + 1] == b"\n":
            continue
        damaged = bytearray(vaulttext)
        damaged[pos] = ord("0") if damaged[pos] != ord("0") else ord("1")
        with pytest.raises(VaultFormatError):
            vf.decrypt_bytes(bytes(damaged), PASSWORD)


def test_truncated_file() -> None:
    vaulttext = vf.encrypt_bytes(os.urandom(500), PASSWORD)
    header_len = vaulttext.index(b"\n") + 1
    for cut in [
        header_len - 1,
        header_len,
        header_len + 1,
        header_len + 130,
        header_len + 262,
        len(vaulttext) - 2,
    ]:
        with pytest.raises(VaultFormatError):
            vf.decrypt_bytes(vaulttext[:cut], PASSWORD)
    for cut in range(header_len, len(vaulttext) - 1, 37):
        with pytest.raises(VaultFormatError):
            vf.decrypt_bytes(vaulttext[:cut], PASSWORD)


def test_truncated_messages_are_one_line() -> None:
    vaulttext = vf.encrypt_bytes(os.urandom(500), PASSWORD)
    with pytest.raises(VaultFormatError, match="not valid hex") as odd:
        vf.decrypt_bytes(vaulttext[:-2], PASSWORD)  # drops the newline and one hex digit
    with pytest.raises(VaultFormatError, match="expected salt, HMAC and ciphertext") as short:
        vf.decrypt_bytes(vaulttext[: vaulttext.index(b"\n") + 81], PASSWORD)
    for exc in (odd.value, short.value):
        assert "\n" not in str(exc)


@pytest.mark.parametrize("data", [b"", b"plain text\n", b"\x1f\x8b\x08\x00gzip", b"$ANSIBLE_VAULT"])
def test_not_a_vault(data: bytes) -> None:
    assert not vf.is_vault(data)
    with pytest.raises(VaultFormatError, match="not an ansible-vault file"):
        vf.decrypt_bytes(data, PASSWORD)


@pytest.mark.parametrize(
    ("header", "message"),
    [
        (b"$ANSIBLE_VAULT;1.0;AES", "unsupported vault format version"),
        (b"$ANSIBLE_VAULT;2.0;AES256", "unsupported vault format version"),
        (b"$ANSIBLE_VAULT;1.1", "unsupported vault format version"),
        (b"$ANSIBLE_VAULT;1.1;AES128", "unsupported vault cipher"),
    ],
)
def test_unsupported_header(header: bytes, message: str) -> None:
    body = vf.encrypt_bytes(b"data", PASSWORD).partition(b"\n")[2]
    with pytest.raises(VaultFormatError, match=message):
        vf.decrypt_bytes(header + b"\n" + body, PASSWORD)


def test_crlf_line_endings_accepted() -> None:
    vaulttext = vf.encrypt_bytes(b"data" * 100, PASSWORD)
    assert vf.decrypt_bytes(vaulttext.replace(b"\n", b"\r\n"), PASSWORD) == b"data" * 100


def test_missing_cryptography(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(sys.modules, "cryptography.hazmat.primitives.ciphers", None)
    with pytest.raises(VaultFormatError) as err:
        vf.encrypt_bytes(b"data", PASSWORD)
    assert str(err.value) == (
        "encrypting backups needs the Python 'cryptography' package on the host"
        " (Debian: python3-cryptography)"
    )


# --- interop with the real ansible-vault ---------------------------------------------------------------


def test_identical_to_ansible_vault_with_same_salt(
    tmp_path: Path, pwfile: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    salt = "0123456789abcdefghijklmnopqrstuv"  # ansible uses the configured salt's bytes as-is
    plaintext = b"byte-for-byte comparison\n" * 40
    (tmp_path / "plain").write_bytes(plaintext)
    theirs = ansible_vault(
        tmp_path,
        "encrypt",
        "--vault-password-file",
        str(pwfile),
        "--output",
        "-",
        "plain",
        env={"ANSIBLE_VAULT_ENCRYPT_SALT": salt},
    )
    monkeypatch.setattr(vf, "_new_salt", salt.encode)
    assert vf.encrypt_bytes(plaintext, PASSWORD) == theirs


@pytest.mark.parametrize("vault_id", [None, "backups"])
def test_ansible_vault_decrypts_ours(tmp_path: Path, pwfile: Path, vault_id: str | None) -> None:
    plaintext = b"archive \x00\xff payload\n" * 100
    (tmp_path / "enc").write_bytes(vf.encrypt_bytes(plaintext, PASSWORD, vault_id=vault_id))
    secret = ["--vault-id", f"{vault_id}@{pwfile}"] if vault_id else ["--vault-password-file", str(pwfile)]
    assert ansible_vault(tmp_path, "decrypt", *secret, "--output", "-", "enc") == plaintext


@pytest.mark.parametrize("vault_id", [None, "backups"])
def test_we_decrypt_ansible_vault_output(tmp_path: Path, pwfile: Path, vault_id: str | None) -> None:
    plaintext = os.urandom(3000)
    (tmp_path / "file").write_bytes(plaintext)
    secret = ["--vault-id", f"{vault_id}@{pwfile}"] if vault_id else ["--vault-password-file", str(pwfile)]
    ansible_vault(tmp_path, "encrypt", *secret, "file")
    vaulttext = (tmp_path / "file").read_bytes()
    header = b"$ANSIBLE_VAULT;1.2;AES256;backups" if vault_id else b"$ANSIBLE_VAULT;1.1;AES256"
    assert vaulttext.startswith(header + b"\n")
    assert vf.decrypt_bytes(vaulttext, PASSWORD) == plaintext
    with pytest.raises(VaultFormatError, match="HMAC check failed"):
        vf.decrypt_bytes(vaulttext, PASSWORD + "x")


def test_large_payload_interop(tmp_path: Path, pwfile: Path) -> None:
    plaintext = os.urandom(5 * 1024 * 1024)
    vf.encrypt_file(str(_write(tmp_path / "big", plaintext)), str(tmp_path / "big.vault"), PASSWORD)
    ansible_vault(
        tmp_path, "decrypt", "--vault-password-file", str(pwfile), "--output", "big.out", "big.vault"
    )
    assert (tmp_path / "big.out").read_bytes() == plaintext


# --- file API --------------------------------------------------------------------------------------------


def _write(path: Path, data: bytes) -> Path:
    path.write_bytes(data)
    return path


def test_file_round_trip_mode_and_no_leftovers(tmp_path: Path) -> None:
    src = _write(tmp_path / "backup.tar.gz", os.urandom(10000))
    dst = _write(tmp_path / "backup.tar.gz.vault", b"old contents")
    dst.chmod(0o644)
    vf.encrypt_file(str(src), str(dst), PASSWORD)
    assert stat.S_IMODE(dst.stat().st_mode) == 0o600
    out = tmp_path / "restored.tar.gz"
    vf.decrypt_file(str(dst), str(out), PASSWORD)
    assert stat.S_IMODE(out.stat().st_mode) == 0o600
    assert out.read_bytes() == src.read_bytes()
    assert sorted(p.name for p in tmp_path.iterdir()) == [
        "backup.tar.gz",
        "backup.tar.gz.vault",
        "restored.tar.gz",
    ]


def test_encrypt_file_in_place(tmp_path: Path) -> None:
    path = _write(tmp_path / "archive", b"in place")
    vf.encrypt_file(str(path), str(path), PASSWORD)
    assert vf.decrypt_bytes(path.read_bytes(), PASSWORD) == b"in place"


def test_decrypt_file_failure_leaves_dst_untouched(tmp_path: Path) -> None:
    src = _write(tmp_path / "enc", vf.encrypt_bytes(b"data", PASSWORD))
    dst = _write(tmp_path / "dst", b"keep me")
    with pytest.raises(VaultFormatError, match="HMAC check failed"):
        vf.decrypt_file(str(src), str(dst), "wrong")
    assert dst.read_bytes() == b"keep me"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["dst", "enc"]


def test_write_failure_removes_temp_file(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    def broken_replace(src: str, dst: str) -> None:
        raise OSError("disk on fire")

    monkeypatch.setattr(vf.os, "replace", broken_replace)
    src = _write(tmp_path / "plain", b"data")
    with pytest.raises(OSError, match="disk on fire"):
        vf.encrypt_file(str(src), str(tmp_path / "enc"), PASSWORD)
    assert [p.name for p in tmp_path.iterdir()] == ["plain"]


# --- the managed hosts' interpreter ---------------------------------------------------------------------

HOST_SCRIPT = """
import importlib.util, sys
spec = importlib.util.spec_from_file_location("vault_format", sys.argv[1])
vf = importlib.util.module_from_spec(spec)
spec.loader.exec_module(vf)
import cryptography
print(cryptography.__version__)
workdir, password = sys.argv[2], sys.argv[3]
with open(workdir + "/from_venv", "rb") as f:
    assert vf.decrypt_bytes(f.read(), password) == b"made in the venv"
vf.encrypt_file(workdir + "/host_plain", workdir + "/from_host", password)
try:
    vf.decrypt_file(workdir + "/from_host", workdir + "/never", "wrong")
except vf.VaultFormatError as exc:
    print(exc)
"""


@pytest.mark.skipif(not HOST_PYTHON.exists(), reason="no /usr/bin/python3")
def test_under_host_python(tmp_path: Path, pwfile: Path) -> None:
    _write(tmp_path / "from_venv", vf.encrypt_bytes(b"made in the venv", PASSWORD))
    plaintext = os.urandom(100000)
    _write(tmp_path / "host_plain", plaintext)
    proc = subprocess.run(
        [str(HOST_PYTHON), "-I", "-c", HOST_SCRIPT, str(MODULE_FILE), str(tmp_path), PASSWORD],
        capture_output=True,
        check=False,
        text=True,
        timeout=120,
    )
    assert proc.returncode == 0, proc.stderr
    version, message = proc.stdout.splitlines()
    print(f"/usr/bin/python3 cryptography {version}")
    assert message == "HMAC check failed: wrong password or corrupted file"
    assert stat.S_IMODE((tmp_path / "from_host").stat().st_mode) == 0o600
    assert vf.decrypt_bytes((tmp_path / "from_host").read_bytes(), PASSWORD) == plaintext
    out = ansible_vault(
        tmp_path, "decrypt", "--vault-password-file", str(pwfile), "--output", "-", "from_host"
    )
    assert out == plaintext

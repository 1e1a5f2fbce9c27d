# -*- coding: utf-8 -*-
# Copyright: (c) 2025, aitbc-ops developers
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Encrypt and decrypt data in the ansible-vault 1.1/1.2 AES256 file format.

This file is shipped to managed hosts, so it uses the standard library plus ``cryptography`` (imported
lazily, only for AES-CTR) and nothing from Ansible. Output decrypts with the stock ``ansible-vault decrypt``
given the same password, and files from ``ansible-vault encrypt`` decrypt here.

Format: a header line ``$ANSIBLE_VAULT;1.1;AES256`` (``$ANSIBLE_VAULT;1.2;AES256;<vault-id>`` with a
vault-id label), then hex(hex(salt) + b"\\n" + hex(hmac) + b"\\n" + hex(ciphertext)) in 80-column lines.
PBKDF2-HMAC-SHA256 (10000 iterations) over the password and a 32-byte random salt gives 80 bytes: AES-256
key, HMAC-SHA256 key, 16-byte initial CTR counter. The plaintext is PKCS7-padded before AES-CTR (not needed
by CTR, but ansible-vault unpads on decrypt) and the HMAC covers the raw ciphertext.

Passwords are used exactly as given (``str`` is UTF-8 encoded): nothing is stripped, so callers that read
a password file must strip its trailing newline themselves, as ansible-vault does. Everything is held in
memory (the format puts the HMAC before the ciphertext and hex-encodes it twice): peak usage is about
ten times the plaintext size.
"""

from __future__ import annotations

import binascii
import contextlib
import hashlib
import hmac
import os
import tempfile

MAGIC = b"$ANSIBLE_VAULT"
CIPHER = b"AES256"
KDF_ITERATIONS = 10000
SALT_BYTES = 32
KEY_BYTES = 32
IV_BYTES = 16
BLOCK_BYTES = 16
LINE_WIDTH = 80
WHITESPACE = b" \t\r\n"
NEED_CRYPTOGRAPHY = (
    "encrypting backups needs the Python 'cryptography' package on the host (Debian: python3-cryptography)"
)


class VaultFormatError(Exception):
    """Data is not valid vault text, or cannot be encrypted/decrypted with the given password."""


def _password_bytes(password: str | bytes) -> bytes:
    b_password = password.encode("utf-8") if isinstance(password, str) else bytes(password)
    if not b_password:
        raise VaultFormatError("the vault password must not be empty")
    return b_password


def _new_salt() -> bytes:
    return os.urandom(SALT_BYTES)


def _derive_keys(b_password: bytes, salt: bytes) -> tuple[bytes, bytes, bytes]:
    """Return (AES key, HMAC key, initial counter block)."""
    derived = hashlib.pbkdf2_hmac("sha256", b_password, salt, KDF_ITERATIONS, 2 * KEY_BYTES + IV_BYTES)
    return derived[:KEY_BYTES], derived[KEY_BYTES : 2 * KEY_BYTES], derived[2 * KEY_BYTES :]


def _aes_ctr(key: bytes, counter: bytes, data: bytes) -> bytes:
    """AES-256-CTR; the same operation encrypts and decrypts."""
    try:
        from cryptography.hazmat.primitives.ciphers import Cipher, algorithms, modes
    except ImportError:
        raise VaultFormatError(NEED_CRYPTOGRAPHY) from None
    transform = Cipher(algorithms.AES(key), modes.CTR(counter)).encryptor()
    out = transform.update(data)
    tail = transform.finalize()  # always empty for CTR; avoid copying ``out`` for nothing
    return out + tail if tail else out


def _mac(key: bytes, ciphertext: bytes) -> bytes:
    return hmac.new(key, ciphertext, hashlib.sha256).digest()


def _pad(data: bytes) -> bytes:
    count = BLOCK_BYTES - len(data) % BLOCK_BYTES
    return data + bytes([count]) * count


def _unpad(data: bytes) -> bytes:
    count = data[-1] if data else 0
    if not 1 <= count <= BLOCK_BYTES or len(data) % BLOCK_BYTES or data[-count:] != bytes([count]) * count:
        raise VaultFormatError("invalid vault payload: bad PKCS7 padding")
    return data[:-count]


def _header(vault_id: str | None) -> bytes:
    # Like ansible-vault: a label (other than "default") switches the format to 1.2.
    if not vault_id or vault_id == "default":
        return MAGIC + b";1.1;" + CIPHER
    if any(c in vault_id for c in ";\r\n") or vault_id != vault_id.strip():
        raise VaultFormatError(f"invalid vault id {vault_id!r}: no ';', newlines or surrounding spaces")
    return MAGIC + b";1.2;" + CIPHER + b";" + vault_id.encode("utf-8")


def is_vault(data: bytes) -> bool:
    """True if ``data`` starts with an ansible-vault header."""
    return data.startswith(MAGIC + b";")


def encrypt_bytes(plaintext: bytes, password: str | bytes, vault_id: str | None = None) -> bytes:
    """Encrypt ``plaintext`` into vault file contents (header, 80-column hex lines, final newline)."""
    header = _header(vault_id)
    salt = _new_salt()
    key, mac_key, counter = _derive_keys(_password_bytes(password), salt)
    ciphertext = _aes_ctr(key, counter, _pad(plaintext))
    mac = _mac(mac_key, ciphertext)
    inner = b"\n".join([binascii.hexlify(salt), binascii.hexlify(mac), binascii.hexlify(ciphertext)])
    del ciphertext  # large inputs: keep at most a few copies alive at once
    # A separator every 40 input bytes counted from the left = 80-column lines.
    body = binascii.hexlify(inner, b"\n", -(LINE_WIDTH // 2))
    del inner
    return b"".join([header, b"\n", body, b"\n"])


def _unhex(data: bytes | memoryview, what: str) -> bytes:
    try:
        return binascii.unhexlify(data)
    except (binascii.Error, ValueError):
        raise VaultFormatError(f"invalid vault payload: {what} is not valid hex (truncated file?)") from None


def _parse(vaulttext: bytes) -> tuple[bytes, bytes, bytes]:
    """Split vault file contents into (salt, hmac, ciphertext), checking header and encoding."""
    if not is_vault(vaulttext):
        raise VaultFormatError("not an ansible-vault file: missing $ANSIBLE_VAULT header")
    newline = vaulttext.find(b"\n")
    first = vaulttext[:newline] if newline >= 0 else vaulttext
    fields = [f.strip() for f in first.split(b";")]
    if len(fields) < 3 or fields[1] not in (b"1.1", b"1.2"):
        raise VaultFormatError(f"unsupported vault format version in header {first[:80].strip()!r}")
    if fields[2] != CIPHER:
        raise VaultFormatError(f"unsupported vault cipher {fields[2][:40]!r}: only AES256 is supported")
    # Drop all whitespace from the whole text (no copy of the body alone), then skip the header.
    squeezed = vaulttext.translate(None, WHITESPACE)
    inner = _unhex(memoryview(squeezed)[len(first.translate(None, WHITESPACE)) :], "the body")
    del squeezed
    first_nl = inner.find(b"\n")
    second_nl = inner.find(b"\n", first_nl + 1)
    if first_nl < 1 or second_nl < 0 or second_nl + 1 == len(inner):
        raise VaultFormatError("invalid vault payload: expected salt, HMAC and ciphertext (truncated file?)")
    view = memoryview(inner)
    return (
        _unhex(view[:first_nl], "salt"),
        _unhex(view[first_nl + 1 : second_nl], "HMAC"),
        _unhex(view[second_nl + 1 :], "ciphertext"),
    )


def decrypt_bytes(vaulttext: bytes, password: str | bytes) -> bytes:
    """Decrypt vault file contents; raise VaultFormatError if malformed or the password is wrong."""
    salt, mac, ciphertext = _parse(vaulttext)
    key, mac_key, counter = _derive_keys(_password_bytes(password), salt)
    if not hmac.compare_digest(_mac(mac_key, ciphertext), mac):
        raise VaultFormatError("HMAC check failed: wrong password or corrupted file")
    return _unpad(_aes_ctr(key, counter, ciphertext))


def _write_private(dst: str, data: bytes) -> None:
    """Atomically write ``data`` to ``dst`` with mode 0600 (temp file in the same directory, then rename)."""
    fd, tmp = tempfile.mkstemp(prefix=".vault-", dir=os.path.dirname(os.path.abspath(dst)))
    try:
        with os.fdopen(fd, "wb") as f:
            os.fchmod(f.fileno(), 0o600)
            f.write(data)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, dst)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(tmp)
        raise


def _read(path: str) -> bytes:
    with open(path, "rb") as f:
        return f.read()


def encrypt_file(src: str, dst: str, password: str | bytes) -> None:
    """Encrypt file ``src`` into vault file ``dst`` (mode 0600). ``src`` may equal ``dst``."""
    _write_private(dst, encrypt_bytes(_read(src), password))


def decrypt_file(src: str, dst: str, password: str | bytes) -> None:
    """Decrypt vault file ``src`` into ``dst`` (mode 0600); ``dst`` is untouched on error."""
    _write_private(dst, decrypt_bytes(_read(src), password))

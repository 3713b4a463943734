"""Key files of the deployment: staging KEK, certificate signing key, Crypt4GH custodian keys.

Pure Python (no Django): ``security/keyring.py`` reads the paths from settings and calls these.

Every ``load_or_create_*`` publishes a new file atomically and without clobbering: the content
goes to a private temporary file in the same directory, then ``os.link`` gives it its final
name, which fails if another process got there first. Two workers starting at once therefore
agree on one key instead of one silently replacing the other's (a replaced KEK would make every
staged upload of the loser unreadable).
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import logging
import os
import secrets
import stat
from pathlib import Path

from crypt4gh import sodium
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from cryptography.hazmat.primitives.asymmetric.x25519 import X25519PrivateKey, X25519PublicKey

logger = logging.getLogger(__name__)

KEY_BYTES = 32

_C4GH_MAGIC = b"c4gh-v1"
_C4GH_PUBLIC_BEGIN = "-----BEGIN CRYPT4GH PUBLIC KEY-----"
_C4GH_PUBLIC_END = "-----END CRYPT4GH PUBLIC KEY-----"
_C4GH_PRIVATE_BEGIN = "-----BEGIN CRYPT4GH PRIVATE KEY-----"
_C4GH_PRIVATE_END = "-----END CRYPT4GH PRIVATE KEY-----"


# --- Files ---------------------------------------------------------------------------------


def _create_exclusive(path: Path, content: bytes) -> bool:
    """Write ``content`` to ``path`` (mode 0600) unless it exists; True if this call created it."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
    temporary = path.with_name(f".{path.name}.{secrets.token_hex(8)}.tmp")
    fd = os.open(temporary, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_CLOEXEC, 0o600)
    try:
        with os.fdopen(fd, "wb") as handle:
            handle.write(content)
            handle.flush()
            os.fsync(handle.fileno())
        try:
            os.link(temporary, path)
        except FileExistsError:
            return False
        _fsync_directory(path.parent)
        return True
    finally:
        temporary.unlink(missing_ok=True)


def _fsync_directory(directory: Path) -> None:
    fd = os.open(directory, os.O_RDONLY | os.O_DIRECTORY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def _read_secret_file(path: Path) -> bytes:
    mode = os.stat(path).st_mode
    if mode & (stat.S_IRWXG | stat.S_IRWXO):
        # Secrets mounted by an orchestrator are sometimes 0644 behind a symlink: warn, don't
        # refuse, so a deployment is not bricked by a mount option.
        logger.warning(
            "Secret key file is readable by other users; it should be mode 0600",
            extra={"key_file": str(path), "mode": oct(stat.S_IMODE(mode))},
        )
    return Path(path).read_bytes()


# --- Staging key-encryption key ------------------------------------------------------------


def parse_kek(data: bytes) -> bytes:
    """Accept a KEK as 32 raw bytes, or as text: 64 hex digits or base64 of 32 bytes."""
    if len(data) == KEY_BYTES:
        return bytes(data)
    text = data.strip()
    try:
        if len(text) == 2 * KEY_BYTES:
            return bytes.fromhex(text.decode("ascii"))
        decoded = base64.b64decode(text, validate=True)
    except (ValueError, UnicodeDecodeError, binascii.Error):
        decoded = b""
    if len(decoded) == KEY_BYTES:
        return decoded
    raise ValueError(
        "a key-encryption key must be 32 bytes: raw, 64 hex digits, or base64 "
        f"(got {len(data)} bytes that are none of these)"
    )


def load_or_create_kek(path: Path) -> bytes:
    """The 32-byte staging key-encryption key in ``path``, created (raw bytes, 0600) if missing."""
    path = Path(path)
    if not path.exists():
        _create_exclusive(path, secrets.token_bytes(KEY_BYTES))
    return parse_kek(_read_secret_file(path))


# --- Certificate signing key ---------------------------------------------------------------


def load_or_create_signing_key(path: Path) -> Ed25519PrivateKey:
    """The Ed25519 certificate signing key (PEM, PKCS#8, unencrypted, 0600), created if missing."""
    path = Path(path)
    if not path.exists():
        pem = Ed25519PrivateKey.generate().private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
        _create_exclusive(path, pem)
    key = serialization.load_pem_private_key(_read_secret_file(path), password=None)
    if not isinstance(key, Ed25519PrivateKey):
        raise ValueError(f"{path} holds a {type(key).__name__}, not an Ed25519 private key")
    return key


# --- Crypt4GH keys -------------------------------------------------------------------------


def _c4gh_string(value: bytes) -> bytes:
    return len(value).to_bytes(2, "big") + value


def _armor(begin: str, end: str, payload: bytes) -> bytes:
    return f"{begin}\n{base64.b64encode(payload).decode()}\n{end}\n".encode()


def _unarmor(text: str, begin: str, end: str, what: str) -> bytes:
    lines = [line.strip() for line in text.strip().splitlines() if line.strip()]
    if len(lines) < 3 or lines[0] != begin or lines[-1] != end:
        raise ValueError(f"not a {what}: expected a block from '{begin}' to '{end}'")
    try:
        return base64.b64decode("".join(lines[1:-1]), validate=True)
    except (ValueError, binascii.Error) as exc:
        raise ValueError(f"not a {what}: the body is not valid base64") from exc


def _encode_unencrypted_secret_key(secret_key: bytes, comment: bytes | None) -> bytes:
    """The Crypt4GH private key format as ``crypt4gh-keygen --nocrypt`` writes it.

    Written by hand because crypt4gh's own encoder prints a warning to stderr and its
    ``generate`` insists on a passphrase prompt path; the layout (magic, kdf "none",
    cipher "none", clear key, optional comment) is from crypt4gh.keys.c4gh.encode_private_key.
    """
    payload = _C4GH_MAGIC + _c4gh_string(b"none") + _c4gh_string(b"none") + _c4gh_string(secret_key)
    if comment is not None:
        payload += _c4gh_string(comment)
    return _armor(_C4GH_PRIVATE_BEGIN, _C4GH_PRIVATE_END, payload)


def _decode_secret_key(text: str) -> bytes | None:
    """The raw secret key of an unencrypted Crypt4GH key file; None if passphrase-protected."""
    payload = _unarmor(text, _C4GH_PRIVATE_BEGIN, _C4GH_PRIVATE_END, "Crypt4GH private key")
    if not payload.startswith(_C4GH_MAGIC):
        raise ValueError("not a Crypt4GH private key: wrong magic")
    position = len(_C4GH_MAGIC)

    def next_string() -> bytes:
        nonlocal position
        length = int.from_bytes(payload[position : position + 2], "big")
        value = payload[position + 2 : position + 2 + length]
        if position + 2 > len(payload) or len(value) != length:
            raise ValueError("not a Crypt4GH private key: truncated")
        position += 2 + length
        return value

    if next_string() != b"none":
        return None  # kdf set: the key is encrypted with a passphrase
    if next_string() != b"none":
        raise ValueError("not a Crypt4GH private key: a cipher without a kdf")
    secret_key = next_string()
    if len(secret_key) != KEY_BYTES:
        raise ValueError(f"Crypt4GH private key has {len(secret_key)} bytes, expected 32")
    return secret_key


def load_crypt4gh_secret_key(path: Path) -> bytes:
    """The raw X25519 secret key of an unencrypted Crypt4GH key file (``--nocrypt``).

    Passphrase-protected keys are refused with a ValueError: decrypt those with the
    ``crypt4gh`` command line, which asks for the passphrase. (crypt4gh's own loader calls
    ``sys.exit`` on a bad key, which must never happen inside the server.)
    """
    secret_key = _decode_secret_key(_read_secret_file(Path(path)).decode("ascii", "replace"))
    if secret_key is None:
        raise ValueError(f"{path} is protected by a passphrase; use the crypt4gh command line")
    return secret_key


def _reject_weak_public_key(public_key: bytes) -> None:
    # A low-order point (all zeros, and a handful of others) makes every shared secret
    # all-zero; libsodium and cryptography refuse the exchange, so refuse the key up front.
    try:
        X25519PrivateKey.generate().exchange(X25519PublicKey.from_public_bytes(public_key))
    except ValueError as exc:
        raise ValueError("not a usable X25519 public key (low-order point)") from exc


def crypt4gh_public_key_from_text(text: str) -> bytes:
    """Validate a user-pasted Crypt4GH public key; the raw 32-byte X25519 key.

    Accepts the file ``crypt4gh-keygen`` writes (BEGIN/END CRYPT4GH PUBLIC KEY) or its base64
    line alone. Raises ValueError with a message fit to show the user.
    """
    text = text.strip()
    if not text:
        raise ValueError("the public key is empty")
    if "PRIVATE KEY" in text:
        raise ValueError(
            "this is a private key: never share it; paste the public key (the .pub file)"
        )
    if text.startswith("ssh-"):
        raise ValueError("this is an SSH key; paste a Crypt4GH public key (crypt4gh-keygen)")
    if text.startswith("-----"):
        public_key = _unarmor(text, _C4GH_PUBLIC_BEGIN, _C4GH_PUBLIC_END, "Crypt4GH public key")
    else:
        try:
            public_key = base64.b64decode("".join(text.split()), validate=True)
        except (ValueError, binascii.Error) as exc:
            raise ValueError(
                "not a Crypt4GH public key: expected the block from "
                f"'{_C4GH_PUBLIC_BEGIN}' to '{_C4GH_PUBLIC_END}'"
            ) from exc
    if len(public_key) != KEY_BYTES:
        raise ValueError(f"a Crypt4GH public key has 32 bytes, this one has {len(public_key)}")
    _reject_weak_public_key(public_key)
    return public_key


def load_crypt4gh_public_key(path: Path) -> bytes:
    """The raw 32-byte key of a Crypt4GH public key file."""
    return crypt4gh_public_key_from_text(Path(path).read_text(encoding="ascii", errors="replace"))


def _publish_public_key(public_path: Path, public_key: bytes) -> None:
    content = _armor(_C4GH_PUBLIC_BEGIN, _C4GH_PUBLIC_END, public_key)
    if not _create_exclusive(public_path, content):
        if load_crypt4gh_public_key(public_path) != public_key:
            raise ValueError(f"{public_path} does not belong to the secret key beside it")
    # A public key is meant to be read; 0600 from _create_exclusive is needlessly strict.
    os.chmod(public_path, 0o644)


def load_or_create_custodian_keypair(secret_path: Path, public_path: Path) -> bytes:
    """The custodian's Crypt4GH public key; generate the pair (development) if both are missing.

    - public key present: returned (the secret key may be absent, as in production where it
      is kept offline); if an unencrypted secret key is beside it, they must match.
    - only the secret key present: the public key is derived (unencrypted keys only) and written.
    - neither: a new pair is written, the secret key unencrypted as ``crypt4gh-keygen
      --nocrypt`` does (mode 0600), so ``crypt4gh decrypt --sk SECRET`` asks no passphrase.
    """
    secret_path, public_path = Path(secret_path), Path(public_path)
    if public_path.exists():
        public_key = load_crypt4gh_public_key(public_path)
        if secret_path.exists():
            secret_key = _decode_secret_key(_read_secret_file(secret_path).decode("ascii"))
            if secret_key is not None and sodium.derive_pk(secret_key) != public_key:
                raise ValueError(f"{public_path} and {secret_path} are not one key pair")
        return public_key
    if not secret_path.exists():
        content = _encode_unencrypted_secret_key(
            secrets.token_bytes(KEY_BYTES), b"MedGenomics development custodian"
        )
        if _create_exclusive(secret_path, content):
            logger.warning(
                "Generated an unencrypted Crypt4GH custodian key pair: for development only; "
                "production keeps the custodian private key offline",
                extra={"secret_key_file": str(secret_path), "public_key_file": str(public_path)},
            )
    secret_key = _decode_secret_key(_read_secret_file(secret_path).decode("ascii"))
    if secret_key is None:
        raise ValueError(
            f"{secret_path} is passphrase-protected and {public_path} is missing: "
            "export the public key with crypt4gh-keygen"
        )
    public_key = sodium.derive_pk(secret_key)
    _publish_public_key(public_path, public_key)
    return public_key


def fingerprint(public_key_bytes: bytes) -> str:
    """SHA-256 hex of a raw 32-byte public key (``encryption_key_hash``, recipient lists)."""
    if len(public_key_bytes) != KEY_BYTES:
        raise ValueError(f"a raw public key has 32 bytes, got {len(public_key_bytes)}")
    return hashlib.sha256(public_key_bytes).hexdigest()


def ephemeral_x25519_keypair() -> tuple[bytes, bytes]:
    """A fresh (secret, public) X25519 pair that lives only in memory, in crypt4gh's form."""
    secret_key = os.urandom(KEY_BYTES)
    return secret_key, sodium.derive_pk(secret_key)

"""The deployment's keys, loaded from the paths in settings (Django side of security/keys.py).

Development default: whatever is missing is generated in the data directory on first use, the
custodian key pair included, with a loud warning. Production configures
``MEDGENOMICS_CUSTODIAN_PUBLIC_KEYS`` with public keys only and keeps the custodian private key
offline; then nothing is generated and a missing key is an error.
"""

from __future__ import annotations

import functools
import hashlib
import hmac
import logging
import os
import secrets
from dataclasses import dataclass
from pathlib import Path

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from django.conf import settings

from security import keys

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class Recipient:
    label: str
    public_key: bytes

    @property
    def fingerprint(self) -> str:
        return keys.fingerprint(self.public_key)


def _keys_dir() -> Path:
    settings.KEYS_DIR.mkdir(parents=True, exist_ok=True, mode=0o700)
    return settings.KEYS_DIR


@functools.cache
def staging_kek() -> bytes:
    """Key-encryption key that wraps each job's staging data key."""
    _keys_dir()
    return keys.load_or_create_kek(settings.MEDGENOMICS_KEK_FILE)


@functools.cache
def signing_key() -> Ed25519PrivateKey:
    _keys_dir()
    return keys.load_or_create_signing_key(settings.MEDGENOMICS_SIGNING_KEY_FILE)


@functools.cache
def custodian_recipients() -> tuple[Recipient, ...]:
    """Public keys every archive is encrypted to; the first is the primary custodian."""
    recipients = []
    for index, public_path in enumerate(settings.MEDGENOMICS_CUSTODIAN_PUBLIC_KEYS):
        public_path = Path(public_path)
        if not public_path.exists() and settings.MEDGENOMICS_GENERATE_MISSING_KEYS:
            secret_path = public_path.with_name(public_path.name.removesuffix(".pub") + ".sec")
            _keys_dir()
            keys.load_or_create_custodian_keypair(secret_path, public_path)
            logger.warning(
                "Generated a development custodian key pair. In production keep the custodian "
                "private key offline and give the server public keys only "
                "(MEDGENOMICS_CUSTODIAN_PUBLIC_KEYS).",
                extra={"public_key_file": str(public_path), "secret_key_file": str(secret_path)},
            )
        label = "custodian" if index == 0 else f"custodian {index + 1}"
        recipients.append(Recipient(label, keys.load_crypt4gh_public_key(public_path)))
    return tuple(recipients)


@functools.cache
def pseudonym_secret() -> bytes:
    if settings.MEDGENOMICS_PSEUDONYM_SECRET:
        return settings.MEDGENOMICS_PSEUDONYM_SECRET.encode()
    path = _keys_dir() / "pseudonym-secret"
    if not path.exists():
        try:
            fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        except FileExistsError:
            pass
        else:
            with os.fdopen(fd, "wb") as handle:
                handle.write(secrets.token_bytes(32))
    return path.read_bytes()


def pseudonymise(value: str, *, purpose: str) -> str:
    """Keyed pseudonym (HMAC-SHA256): stable for the same value, meaningless without the key."""
    digest = hmac.new(pseudonym_secret(), f"{purpose}\x00{value}".encode(), hashlib.sha256)
    return digest.hexdigest()[:20]


def _field_key(purpose: bytes) -> bytes:
    return hmac.new(staging_kek(), b"medgenomics field key\x00" + purpose, hashlib.sha256).digest()


def seal_text(text: str, *, context: str) -> bytes:
    """Encrypt a short text (an original file name) bound to ``context`` (the job id)."""
    nonce = secrets.token_bytes(12)
    sealed = AESGCM(_field_key(b"filename")).encrypt(nonce, text.encode(), context.encode())
    return nonce + sealed


def open_text(sealed: bytes, *, context: str) -> str:
    sealed = bytes(sealed)
    return (
        AESGCM(_field_key(b"filename")).decrypt(sealed[:12], sealed[12:], context.encode()).decode()
    )


def reset_caches() -> None:
    """Forget loaded keys (tests point settings at a fresh data directory)."""
    for cached in (staging_kek, signing_key, custodian_recipients, pseudonym_secret):
        cached.cache_clear()

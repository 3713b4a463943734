"""Signing and verifying deletion certificates (Ed25519 over canonical JSON).

A signed certificate is the payload plus two fields beside it: ``signing_key_fingerprint``
and ``signature``. The signature covers the canonical JSON of everything else, so anyone with
the served public key (PEM) can check a certificate without trusting the server:

    canonical = json.dumps(payload, sort_keys=True, separators=(",", ":"),
                           ensure_ascii=False).encode("utf-8")

The canonical form is Python's JSON serialisation; it is exact for strings, integers,
booleans and null (all a certificate holds). Floats would depend on Python's repr: keep them
out of certificates, or as strings.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import json
import re
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any
from uuid import UUID

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey

SIGNATURE_FIELD = "signature"
FINGERPRINT_FIELD = "signing_key_fingerprint"
_SIGNATURE_BYTES = 64
_BASE64URL = re.compile(r"[A-Za-z0-9_-]*")
_SHA256_HEX = re.compile(r"[0-9a-f]{64}")


@dataclass(frozen=True)
class VerificationResult:
    valid: bool
    reason: str

    def __bool__(self) -> bool:
        return self.valid


def canonical_json(payload: dict[str, Any]) -> bytes:
    """Keys sorted, separators ``,`` and ``:``, non-ASCII as UTF-8; NaN and Infinity refused."""
    return json.dumps(
        payload, sort_keys=True, separators=(",", ":"), ensure_ascii=False, allow_nan=False
    ).encode("utf-8")


def _b64url_encode(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode("ascii")


def _b64url_decode(text: str) -> bytes:
    """Strict base64url without padding (the only encoding :func:`_b64url_encode` produces)."""
    if not isinstance(text, str) or not _BASE64URL.fullmatch(text) or len(text) % 4 == 1:
        raise ValueError("not base64url")
    try:
        data = base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))
    except binascii.Error as exc:
        raise ValueError("not base64url") from exc
    if _b64url_encode(data) != text:  # non-zero padding bits: a second spelling of the bytes
        raise ValueError("not base64url")
    return data


def _public(key: Ed25519PrivateKey | Ed25519PublicKey) -> Ed25519PublicKey:
    return key.public_key() if isinstance(key, Ed25519PrivateKey) else key


def public_key_fingerprint(public_key: Ed25519PublicKey | Ed25519PrivateKey) -> str:
    """base64url (no padding) of the SHA-256 of the raw 32-byte Ed25519 public key."""
    raw = _public(public_key).public_bytes(
        serialization.Encoding.Raw, serialization.PublicFormat.Raw
    )
    return _b64url_encode(hashlib.sha256(raw).digest())


def public_key_pem(private_or_public: Ed25519PrivateKey | Ed25519PublicKey) -> str:
    """The public key as PEM (SubjectPublicKeyInfo), as served at /api/proof/public-key."""
    return (
        _public(private_or_public)
        .public_bytes(serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo)
        .decode("ascii")
    )


def public_key_from_pem(pem: str | bytes) -> Ed25519PublicKey:
    """Load a served verification key; ValueError if it is not an Ed25519 public key."""
    key = serialization.load_pem_public_key(pem.encode() if isinstance(pem, str) else pem)
    if not isinstance(key, Ed25519PublicKey):
        raise ValueError(f"not an Ed25519 public key but a {type(key).__name__}")
    return key


def sign(payload: dict[str, Any], private_key: Ed25519PrivateKey) -> str:
    """base64url (no padding) Ed25519 signature of ``canonical_json(payload)``.

    ``payload`` is the certificate without ``signature`` and ``signing_key_fingerprint``
    (ValueError if either is present: they are added beside the payload, unsigned; see
    :func:`sign_certificate`).
    """
    for reserved in (SIGNATURE_FIELD, FINGERPRINT_FIELD):
        if reserved in payload:
            raise ValueError(f"the payload to sign must not contain '{reserved}'")
    return _b64url_encode(private_key.sign(canonical_json(payload)))


def sign_certificate(payload: dict[str, Any], private_key: Ed25519PrivateKey) -> dict[str, Any]:
    """``payload`` plus its ``signing_key_fingerprint`` and ``signature``."""
    return {
        **payload,
        FINGERPRINT_FIELD: public_key_fingerprint(private_key),
        SIGNATURE_FIELD: sign(payload, private_key),
    }


def verify(
    certificate: dict[str, Any], public_key: Ed25519PublicKey | Ed25519PrivateKey
) -> VerificationResult:
    """Check a signed certificate against ``public_key``; never raises on bad input.

    The fingerprint field is a claim, checked first only to give a precise reason; the
    signature over the rest is what decides.
    """
    if not isinstance(certificate, dict):
        return VerificationResult(False, "certificate is not a JSON object")
    for required in (SIGNATURE_FIELD, FINGERPRINT_FIELD):
        if required not in certificate:
            return VerificationResult(False, f"missing field '{required}'")
    try:
        signature = _b64url_decode(certificate[SIGNATURE_FIELD])
    except ValueError:
        return VerificationResult(False, "signature is not valid base64url")
    if len(signature) != _SIGNATURE_BYTES:
        return VerificationResult(
            False, f"signature has {len(signature)} bytes; an Ed25519 signature has 64"
        )
    expected_fingerprint = public_key_fingerprint(public_key)
    claimed_fingerprint = certificate[FINGERPRINT_FIELD]
    if claimed_fingerprint != expected_fingerprint:
        return VerificationResult(
            False,
            f"certificate was signed by a different key (fingerprint {claimed_fingerprint}, "
            f"expected {expected_fingerprint})",
        )
    payload = {
        name: value
        for name, value in certificate.items()
        if name not in (SIGNATURE_FIELD, FINGERPRINT_FIELD)
    }
    try:
        message = canonical_json(payload)
    except (TypeError, ValueError) as exc:
        return VerificationResult(False, f"certificate contents are not plain JSON: {exc}")
    try:
        _public(public_key).verify(signature, message)
    except InvalidSignature:
        return VerificationResult(False, "signature does not match the certificate contents")
    return VerificationResult(True, "signature is valid")


def deletion_timestamp_text(deletion_timestamp: datetime) -> str:
    """The exact timestamp text inside :func:`deletion_hash`: ``2025-11-04T10:30:12.123456+00:00``.

    ISO 8601 in UTC, always with microseconds and the ``+00:00`` offset. Put this string (not
    another rendering of the same instant) in the certificate so anyone can recompute the hash.
    """
    if deletion_timestamp.tzinfo is None or deletion_timestamp.utcoffset() is None:
        raise ValueError("the deletion timestamp must be timezone-aware")
    return deletion_timestamp.astimezone(UTC).isoformat(timespec="microseconds")


def deletion_hash(job_id: str | UUID, plaintext_sha256: str, deletion_timestamp: datetime) -> str:
    """SHA-256 hex of ``"{job_id}|{plaintext_sha256}|{timestamp}"`` (UTF-8).

    ``job_id`` is the UUID as ``str(uuid)`` (lowercase, hyphenated); ``plaintext_sha256`` is 64
    lowercase hex digits (uppercase is lowered); the timestamp is
    :func:`deletion_timestamp_text`, e.g. ``2025-11-04T10:30:12.123456+00:00``. So for job
    ``0b7e…`` the hashed text looks like
    ``0b7e…-…|9f86d081…|2025-11-04T10:30:12.123456+00:00``.
    """
    job_text = str(UUID(str(job_id)))  # normalise, and refuse what is not a UUID
    digest = plaintext_sha256.lower()
    if not _SHA256_HEX.fullmatch(digest):
        raise ValueError("plaintext_sha256 must be 64 hex digits")
    text = f"{job_text}|{digest}|{deletion_timestamp_text(deletion_timestamp)}"
    return hashlib.sha256(text.encode("utf-8")).hexdigest()

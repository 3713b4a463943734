"""Certificates: signed over canonical JSON, verifiable by anyone with the public key."""

from __future__ import annotations

import base64
import hashlib
import json
import stat
from datetime import UTC, datetime, timedelta, timezone
from uuid import UUID

import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ec import SECP256R1, generate_private_key
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from security import keys, signing

JOB_ID = "3f1c2a9e-8d4b-4c61-9a57-2f0e6b1d7c35"
PLAINTEXT_SHA256 = hashlib.sha256(b">seq\nACGT\n").hexdigest()


@pytest.fixture
def private_key() -> Ed25519PrivateKey:
    return Ed25519PrivateKey.generate()


def certificate_payload() -> dict:
    return {
        "certificate_id": "8c0f3a4e-5b1d-4e2a-9f6c-7d8e9a0b1c2d",
        "job_id": JOB_ID,
        "filename": "a1b2c3d4e5f60718293a",
        "deletion_timestamp": "2025-11-04T10:30:12.123456+00:00",
        "deletion_hash": "0" * 64,
        "hash_algorithm": "SHA-256",
        "plaintext_sha256": PLAINTEXT_SHA256,
        "issuer": "MedGenomics — Zürich",  # non-ASCII must survive as UTF-8
        "issued_at": "2025-11-04T10:30:13.000000+00:00",
        "archive": None,
        "recipients": ["custodian"],
    }


def test_canonical_json_is_sorted_compact_utf8():
    assert signing.canonical_json({"b": 1, "a": "é", "c": [True, None]}) == (
        '{"a":"é","b":1,"c":[true,null]}'.encode()
    )
    shuffled = dict(reversed(list(certificate_payload().items())))
    assert signing.canonical_json(shuffled) == signing.canonical_json(certificate_payload())
    with pytest.raises(ValueError):
        signing.canonical_json({"x": float("nan")})


def test_a_signed_certificate_verifies(private_key):
    certificate = signing.sign_certificate(certificate_payload(), private_key)
    assert certificate["signing_key_fingerprint"] == signing.public_key_fingerprint(private_key)
    result = signing.verify(certificate, private_key.public_key())
    assert result == signing.VerificationResult(True, "signature is valid")
    assert result


def test_it_verifies_after_a_json_round_trip_with_the_served_pem(private_key):
    # What a third party does: download the JSON and the PEM, verify.
    certificate = signing.sign_certificate(certificate_payload(), private_key)
    downloaded = json.loads(json.dumps(certificate, indent=2))
    served_key = signing.public_key_from_pem(signing.public_key_pem(private_key))
    assert signing.verify(downloaded, served_key).valid


def test_an_independent_verifier_needs_nothing_of_ours(private_key):
    certificate = signing.sign_certificate(certificate_payload(), private_key)
    pem = signing.public_key_pem(private_key).encode()

    public_key = serialization.load_pem_public_key(pem)
    fields = {
        k: v for k, v in certificate.items() if k not in ("signature", "signing_key_fingerprint")
    }
    message = json.dumps(fields, sort_keys=True, separators=(",", ":"), ensure_ascii=False)
    signature = base64.urlsafe_b64decode(certificate["signature"] + "==")
    public_key.verify(signature, message.encode("utf-8"))  # raises if invalid
    raw = public_key.public_bytes(serialization.Encoding.Raw, serialization.PublicFormat.Raw)
    fingerprint = base64.urlsafe_b64encode(hashlib.sha256(raw).digest()).rstrip(b"=").decode()
    assert certificate["signing_key_fingerprint"] == fingerprint
    assert "=" not in certificate["signature"]


def test_sign_alone_matches_sign_certificate(private_key):
    payload = certificate_payload()
    certificate = {
        **payload,
        "signature": signing.sign(payload, private_key),
        "signing_key_fingerprint": signing.public_key_fingerprint(private_key.public_key()),
    }
    assert signing.verify(certificate, private_key).valid  # a private key is accepted too


@pytest.mark.parametrize(
    "change",
    [
        lambda c: c.update(deletion_timestamp="2025-11-05T10:30:12.123456+00:00"),
        lambda c: c.update(plaintext_sha256="f" * 64),
        lambda c: c.update(extra="added after signing"),
        lambda c: c.pop("archive"),
        lambda c: c.update(recipients=["custodian", "someone else"]),
    ],
    ids=["changed-date", "changed-hash", "added-field", "removed-field", "changed-list"],
)
def test_a_tampered_certificate_is_invalid(private_key, change):
    certificate = signing.sign_certificate(certificate_payload(), private_key)
    change(certificate)
    result = signing.verify(certificate, private_key.public_key())
    assert result == signing.VerificationResult(
        False, "signature does not match the certificate contents"
    )
    assert not result


def test_a_certificate_of_another_key_says_so(private_key):
    other = Ed25519PrivateKey.generate()
    certificate = signing.sign_certificate(certificate_payload(), other)
    result = signing.verify(certificate, private_key.public_key())
    assert not result.valid
    assert result.reason == (
        "certificate was signed by a different key (fingerprint "
        f"{signing.public_key_fingerprint(other)}, expected "
        f"{signing.public_key_fingerprint(private_key)})"
    )


def test_a_forged_fingerprint_does_not_make_another_key_valid(private_key):
    certificate = signing.sign_certificate(certificate_payload(), Ed25519PrivateKey.generate())
    certificate["signing_key_fingerprint"] = signing.public_key_fingerprint(private_key)
    result = signing.verify(certificate, private_key.public_key())
    assert result.reason == "signature does not match the certificate contents"


@pytest.mark.parametrize(
    "change, reason",
    [
        (lambda c: c.pop("signature"), "missing field 'signature'"),
        (lambda c: c.pop("signing_key_fingerprint"), "missing field 'signing_key_fingerprint'"),
        (lambda c: c.update(signature="not base64url!"), "signature is not valid base64url"),
        (lambda c: c.update(signature=c["signature"] + "=="), "signature is not valid base64url"),
        (
            lambda c: c.update(signature=c["signature"].replace("-", "+").replace("_", "/") + "+"),
            "signature is not valid base64url",
        ),
        (lambda c: c.update(signature=12345), "signature is not valid base64url"),
        (
            lambda c: c.update(signature=c["signature"][:40]),
            "signature has 30 bytes; an Ed25519 signature has 64",
        ),
    ],
    ids=[
        "no-signature",
        "no-fingerprint",
        "junk",
        "padded",
        "standard-alphabet",
        "number",
        "short",
    ],
)
def test_a_malformed_certificate_gets_a_precise_reason(private_key, change, reason):
    certificate = signing.sign_certificate(certificate_payload(), private_key)
    change(certificate)
    assert signing.verify(certificate, private_key) == signing.VerificationResult(False, reason)


def test_verify_never_raises_on_junk(private_key):
    assert not signing.verify([], private_key).valid  # type: ignore[arg-type]
    certificate = signing.sign_certificate(certificate_payload(), private_key)
    certificate["issued_at"] = datetime.now(UTC)  # not JSON at all
    assert "not plain JSON" in signing.verify(certificate, private_key).reason


def test_the_signature_fields_cannot_be_signed_over(private_key):
    with pytest.raises(ValueError, match="signature"):
        signing.sign({**certificate_payload(), "signature": "x"}, private_key)


def test_the_public_key_pem_is_served_as_spki(private_key):
    pem = signing.public_key_pem(private_key)
    assert pem.startswith("-----BEGIN PUBLIC KEY-----\n")
    assert pem == signing.public_key_pem(private_key.public_key())
    other = generate_private_key(SECP256R1()).public_key()
    with pytest.raises(ValueError, match="Ed25519"):
        signing.public_key_from_pem(
            other.public_bytes(
                serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
            )
        )


# --- deletion_hash --------------------------------------------------------------------------


def test_the_deletion_hash_matches_an_independent_computation():
    moment = datetime(2025, 11, 4, 10, 30, 12, 123456, tzinfo=UTC)
    expected = hashlib.sha256(
        f"{JOB_ID}|{PLAINTEXT_SHA256}|2025-11-04T10:30:12.123456+00:00".encode()
    ).hexdigest()
    assert signing.deletion_hash(JOB_ID, PLAINTEXT_SHA256, moment) == expected


def test_the_deletion_timestamp_is_utc_with_microseconds_always():
    whole_second = datetime(2025, 11, 4, 11, 30, 12, tzinfo=timezone(timedelta(hours=1)))
    assert signing.deletion_timestamp_text(whole_second) == "2025-11-04T10:30:12.000000+00:00"
    same_instant_in_utc = datetime(2025, 11, 4, 10, 30, 12, tzinfo=UTC)
    assert signing.deletion_hash(JOB_ID, PLAINTEXT_SHA256, whole_second) == (
        signing.deletion_hash(JOB_ID, PLAINTEXT_SHA256, same_instant_in_utc)
    )


def test_the_deletion_hash_refuses_ambiguous_input():
    moment = datetime(2025, 11, 4, 10, 30, 12, 123456, tzinfo=UTC)
    with pytest.raises(ValueError, match="timezone"):
        signing.deletion_hash(JOB_ID, PLAINTEXT_SHA256, moment.replace(tzinfo=None))
    with pytest.raises(ValueError):
        signing.deletion_hash(JOB_ID, "not-a-hash", moment)
    with pytest.raises(ValueError):
        signing.deletion_hash("job-1", PLAINTEXT_SHA256, moment)
    # A UUID object or an uppercase spelling hashes as the canonical text.
    assert signing.deletion_hash(UUID(JOB_ID), PLAINTEXT_SHA256.upper(), moment) == (
        signing.deletion_hash(JOB_ID, PLAINTEXT_SHA256, moment)
    )


# --- The signing key file -------------------------------------------------------------------


def test_the_signing_key_is_created_once_as_private_pkcs8_pem(tmp_path):
    path = tmp_path / "keys" / "certificate-signing-ed25519.pem"
    key = keys.load_or_create_signing_key(path)
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert path.read_text().startswith("-----BEGIN PRIVATE KEY-----\n")  # PKCS#8, unencrypted
    again = keys.load_or_create_signing_key(path)
    assert signing.public_key_fingerprint(again) == signing.public_key_fingerprint(key)
    certificate = signing.sign_certificate(certificate_payload(), key)
    assert signing.verify(certificate, again.public_key()).valid


def test_a_signing_key_file_of_another_type_is_refused(tmp_path):
    path = tmp_path / "wrong.pem"
    path.write_bytes(
        generate_private_key(SECP256R1()).private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
    )
    path.chmod(0o600)
    with pytest.raises(ValueError, match="not an Ed25519"):
        keys.load_or_create_signing_key(path)

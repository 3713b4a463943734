"""Deletion certificates: issue (sign with the server's Ed25519 key) and verify."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime, timedelta

from django.conf import settings
from django.utils import timezone

from security import signing
from security.keyring import signing_key
from security.models import DeletionCertificate

VERIFICATION_METHOD = (
    "Ed25519 signature (base64url) over the canonical JSON of every other field: keys sorted, "
    "separators ',' and ':', UTF-8; key at /api/proof/public-key"
)


def iso_utc(moment: datetime) -> str:
    """The one timestamp format of certificates and deletion hashes (UTC, microseconds)."""
    return moment.astimezone(UTC).isoformat(timespec="microseconds")


def certificate_issue(
    *,
    job,
    plaintext_sha256: str,
    plaintext_length: int | None,
    deletion_timestamp: datetime,
    deletion_hash: str,
    archive: dict | None,
) -> DeletionCertificate:
    """Sign and store the certificate for a job whose plaintext was just destroyed.

    The statement says exactly what is true and no more: the plaintext upload and its staging
    key are gone; an encrypted archive (if any) remains for the named key holders until its
    retention date.
    """
    issued_at = timezone.now()
    if archive:
        statement = (
            "The plaintext upload and its staging key were destroyed at the deletion timestamp. "
            "An encrypted Crypt4GH archive remains, readable only by the holders of the listed "
            f"recipient keys, until {archive['retained_until']}, when it is destroyed too."
        )
    else:
        statement = (
            "The plaintext upload and its staging key were destroyed at the deletion timestamp. "
            "No archive of this file was kept."
        )
    key = signing_key()
    payload = {
        "certificate_id": str(uuid.uuid4()),
        "job_id": str(job.job_id),
        "job_outcome": job.status,
        "filename": job.filename,
        "plaintext_sha256": plaintext_sha256,
        "plaintext_length": plaintext_length,
        "deletion_timestamp": iso_utc(deletion_timestamp),
        "deletion_hash": deletion_hash,
        "hash_algorithm": "SHA-256",
        "deletion_hash_input": "job_id|plaintext_sha256|deletion_timestamp",
        "verification_method": VERIFICATION_METHOD,
        "issuer": settings.MEDGENOMICS_ISSUER,
        "issued_at": iso_utc(issued_at),
        "archive": archive,
        "statement": statement,
    }
    return DeletionCertificate.objects.create(
        certificate_id=payload["certificate_id"],
        job=job,
        payload=payload,
        signature=signing.sign(payload, key),
        signing_key_fingerprint=signing.public_key_fingerprint(key.public_key()),
        issued_at=issued_at,
    )


def archive_summary(*, method: str, fingerprints: list[str], retained_until: datetime) -> dict:
    return {
        "format": "Crypt4GH v1 of zstd-compressed original bytes",
        "method": method,
        "recipient_fingerprints": fingerprints,
        "retained_until": iso_utc(retained_until),
    }


def retention_deadline(completed: datetime) -> datetime:
    return completed + timedelta(days=settings.MEDGENOMICS_RETENTION_DAYS)

from __future__ import annotations

import uuid

from django.db import models


class DeletionCertificate(models.Model):
    """A signed statement that a job's plaintext upload and its staging key were destroyed.

    ``payload`` is exactly what was signed (its canonical JSON); the signature and the signing
    key's fingerprint sit beside it. The row is never edited after it is issued.
    """

    certificate_id = models.UUIDField(primary_key=True, default=uuid.uuid4, editable=False)
    job = models.OneToOneField("jobs.Job", on_delete=models.PROTECT, related_name="certificate")
    payload = models.JSONField()
    signature = models.CharField(max_length=128)
    signing_key_fingerprint = models.CharField(max_length=64)
    issued_at = models.DateTimeField(db_index=True)

    class Meta:
        ordering = ["-issued_at"]

    def __str__(self) -> str:
        return f"Certificate {self.certificate_id}"

    def as_document(self) -> dict:
        """The certificate as published: signed fields plus signature and key fingerprint."""
        return {
            **self.payload,
            "signature": self.signature,
            "signing_key_fingerprint": self.signing_key_fingerprint,
        }

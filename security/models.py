from __future__ import annotations

import uuid

from django.conf import settings
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


class SecurityPolicy(models.Model):
    """A versioned set of security thresholds. Exactly one is active; jobs record its version.

    ``parameters`` holds the IDS limits, the AML thresholds and the blocking and alerting
    thresholds. Encryption strength is deliberately not a parameter: it is never traded away.
    """

    version = models.PositiveIntegerField(unique=True)
    active = models.BooleanField(default=False)
    source = models.CharField(max_length=32, default="default")
    parameters = models.JSONField()
    fitness = models.JSONField(null=True, blank=True)
    notes = models.TextField(blank=True)
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["-version"]
        verbose_name_plural = "security policies"
        constraints = [
            models.UniqueConstraint(
                fields=["active"], condition=models.Q(active=True), name="one_active_policy"
            )
        ]

    def __str__(self) -> str:
        return f"Policy v{self.version}{' (active)' if self.active else ''}"


class SecurityEvent(models.Model):
    """A threat seen in an upload or a refused request. ``pattern`` is a fixed signature label,
    never text from the file."""

    occurred_at = models.DateTimeField(db_index=True)
    threat_type = models.CharField(max_length=64, db_index=True)
    pattern = models.CharField(max_length=100)
    stage = models.CharField(max_length=16)
    record = models.PositiveIntegerField(null=True, blank=True)
    line = models.PositiveIntegerField(null=True, blank=True)
    source_ip = models.GenericIPAddressField(null=True, blank=True, db_index=True)
    user = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    job = models.ForeignKey(
        "jobs.Job", null=True, blank=True, on_delete=models.SET_NULL, related_name="security_events"
    )

    class Meta:
        ordering = ["-occurred_at"]

    def __str__(self) -> str:
        source = self.source_ip or "unknown"
        return f"{self.threat_type} from {source} at {self.occurred_at:%Y-%m-%d %H:%M:%S}"


class BlockedAddress(models.Model):
    """An address refused (403) before any request body is read, until ``expires_at``."""

    address = models.GenericIPAddressField(unique=True)
    reason = models.CharField(max_length=200)
    blocked_at = models.DateTimeField()
    expires_at = models.DateTimeField(db_index=True)

    class Meta:
        ordering = ["-blocked_at"]
        verbose_name_plural = "blocked addresses"

    def __str__(self) -> str:
        return f"{self.address} until {self.expires_at:%Y-%m-%d %H:%M}"

from __future__ import annotations

import uuid

from django.conf import settings
from django.db import models


class JobStatus(models.TextChoices):
    VALIDATING = "validating", "Validating"
    PROCESSING = "processing", "Processing"
    RETRYING = "retrying", "Retrying"
    COMPLETED = "completed", "Completed"
    FAILED = "failed", "Failed"
    DELETED = "deleted", "Deleted"


# The one place that says which status may follow which (DESIGN.md, "Data flow of one job").
# A transient failure during validation also retries; a retried job restarts as `processing`.
ALLOWED_TRANSITIONS: dict[str, frozenset[str]] = {
    JobStatus.VALIDATING: frozenset({JobStatus.PROCESSING, JobStatus.RETRYING, JobStatus.FAILED}),
    JobStatus.PROCESSING: frozenset({JobStatus.RETRYING, JobStatus.COMPLETED, JobStatus.FAILED}),
    JobStatus.RETRYING: frozenset({JobStatus.PROCESSING, JobStatus.FAILED}),
    JobStatus.COMPLETED: frozenset({JobStatus.DELETED}),
    JobStatus.FAILED: frozenset(),
    JobStatus.DELETED: frozenset(),
}
FINAL_STATUSES = frozenset({JobStatus.COMPLETED, JobStatus.FAILED, JobStatus.DELETED})


class InvalidTransition(Exception):
    def __init__(self, current: str, requested: str) -> None:
        super().__init__(f"a job cannot go from {current!r} to {requested!r}")
        self.current = current
        self.requested = requested


class Job(models.Model):
    """One uploaded file on its way through the pipeline.

    Carries every column of the original schema plus what a real system needs. The row is the
    one source of truth for status and progress: pages and websocket pushes render from it.
    """

    # --- the original schema ---
    job_id = models.UUIDField(primary_key=True, default=uuid.uuid4, editable=False)
    filename = models.CharField(
        max_length=255, help_text="Keyed pseudonym of the uploaded file name, never the name."
    )
    received = models.DateTimeField(db_index=True)
    completed = models.DateTimeField(null=True, blank=True)
    status = models.CharField(
        max_length=16, choices=JobStatus.choices, default=JobStatus.VALIDATING, db_index=True
    )
    encrypted_path = models.CharField(max_length=500, blank=True)
    encryption_key_hash = models.CharField(max_length=64, blank=True)
    encryption_method = models.CharField(max_length=32, blank=True)
    markers = models.JSONField(null=True, blank=True)
    # NULL, not "", means the species model did not run: a distinct state from any answer.
    species = models.CharField(max_length=32, null=True, blank=True)  # noqa: DJ001
    gc_content = models.FloatField(null=True, blank=True, help_text="Percent, 0-100")
    quality_score = models.FloatField(null=True, blank=True, help_text="0-1")
    sequence_length = models.BigIntegerField(null=True, blank=True)
    k_mer_count = models.BigIntegerField(null=True, blank=True)
    security_score = models.FloatField(null=True, blank=True, help_text="0-1")
    ids_passed = models.BooleanField(null=True, blank=True)
    aml_passed = models.BooleanField(null=True, blank=True)
    deletion_timestamp = models.DateTimeField(null=True, blank=True, db_index=True)
    deletion_hash = models.CharField(max_length=64, blank=True)
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)

    # --- what a real system needs ---
    owner = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.PROTECT, related_name="jobs"
    )
    original_filename_sealed = models.BinaryField(
        null=True, blank=True, help_text="The real file name, encrypted; shown to its owner only."
    )
    file_format = models.CharField(max_length=8, blank=True)
    upload_size = models.BigIntegerField(default=0)
    file_sha256 = models.CharField(max_length=64, blank=True)
    progress = models.PositiveSmallIntegerField(default=0)
    message = models.CharField(max_length=200, blank=True)
    error_message = models.CharField(max_length=200, blank=True)
    error_detail = models.CharField(max_length=500, blank=True)
    error_status_code = models.PositiveSmallIntegerField(null=True, blank=True)
    attempts = models.PositiveSmallIntegerField(default=0)
    policy_version = models.PositiveIntegerField(null=True, blank=True)
    results = models.JSONField(default=dict, blank=True)
    stages = models.JSONField(default=list, blank=True)
    archive_size = models.BigIntegerField(null=True, blank=True)
    compression_ratio = models.FloatField(null=True, blank=True)
    archive_expires = models.DateTimeField(null=True, blank=True)
    processing_time_ms = models.PositiveIntegerField(null=True, blank=True)
    # Staging: the encrypted upload and its wrapped data key. Both are destroyed at deletion.
    staging_path = models.CharField(max_length=500, blank=True)
    wrapped_key = models.BinaryField(null=True, blank=True)
    heartbeat = models.DateTimeField(null=True, blank=True)
    source_ip = models.GenericIPAddressField(null=True, blank=True)

    class Meta:
        ordering = ["-received"]
        indexes = [models.Index(fields=["owner", "-received"], name="job_owner_received")]

    def __str__(self) -> str:
        return f"Job {self.job_id} ({self.status})"

    @property
    def is_final(self) -> bool:
        return self.status in FINAL_STATUSES

    def transition_to(self, status: str) -> None:
        """Move to ``status`` if the state machine allows it; the caller saves."""
        if status not in ALLOWED_TRANSITIONS[self.status]:
            raise InvalidTransition(self.status, status)
        self.status = status


class Profile(models.Model):
    """Per-user settings: the one-time password flag and an optional Crypt4GH public key."""

    user = models.OneToOneField(
        settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="profile"
    )
    must_change_password = models.BooleanField(default=False)
    crypt4gh_public_key = models.TextField(
        blank=True, help_text="Archives are also encrypted to this key when it is set."
    )

    def __str__(self) -> str:
        return f"Profile of {self.user}"


class ApiToken(models.Model):
    """A personal API token for scripts: ``Authorization: Bearer <token>``.

    Only the SHA-256 of the token is stored: the token is shown once, when it is created, and a
    copy of the database cannot be used to call the API. A revoked token stays listed (with the
    time it was revoked) so its owner can see what was used and when.
    """

    user = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="api_tokens"
    )
    name = models.CharField(max_length=100, help_text="What the token is for, e.g. a script.")
    token_hash = models.CharField(max_length=64, unique=True, editable=False)
    created = models.DateTimeField(auto_now_add=True)
    last_used = models.DateTimeField(null=True, blank=True)
    revoked = models.DateTimeField(null=True, blank=True, help_text="When it was revoked.")

    class Meta:
        ordering = ["-created"]
        verbose_name = "API token"

    def __str__(self) -> str:
        return f"API token {self.name!r} of {self.user}"

    @property
    def is_active(self) -> bool:
        return self.revoked is None

"""State-changing operations on jobs. Every status change goes through ``Job.transition_to``."""

from __future__ import annotations

import logging
from datetime import datetime, timedelta

from django.conf import settings
from django.db import transaction
from django.utils import timezone

from jobs import errors
from jobs.models import Job, JobStatus
from jobs.notify import notify_job_changed
from jobs.stages import STAGES, initial_stage_list
from jobs.upload import StagedUpload
from medgenomics.metrics import BYTES_PROCESSED, JOBS_FINISHED
from security import keyring, staging
from security.certificates import archive_summary, certificate_issue, retention_deadline
from security.signing import deletion_hash

logger = logging.getLogger(__name__)

MAX_ATTEMPTS = 4
_FORMAT_SUFFIX = {"fasta": "fasta", "fastq": "fastq"}


def job_create(*, owner, staged: StagedUpload, source_ip: str | None) -> Job:
    """Create the job for a staged upload; the caller enqueues it after commit."""
    now = timezone.now()
    job_id = staged.job_id
    suffix = _FORMAT_SUFFIX.get(staged.file_format or "", "seq")
    pseudonym = f"upload-{keyring.pseudonymise(staged.name, purpose='filename')}.{suffix}"
    job = Job.objects.create(
        job_id=job_id,
        owner=owner,
        filename=pseudonym,
        original_filename_sealed=keyring.seal_text(staged.name, context=str(job_id)),
        received=now,
        status=JobStatus.VALIDATING,
        progress=STAGES[0].progress,
        message=STAGES[0].message,
        file_format=staged.file_format or "",
        upload_size=staged.size,
        staging_path=str(staged.staging_path),
        wrapped_key=staged.wrapped_key,
        stages=initial_stage_list(),
        source_ip=source_ip,
    )
    logger.info("job created", extra={"job_id": str(job_id), "upload_bytes": staged.size})
    return job


def job_original_filename(job: Job) -> str:
    """The real file name, for its owner's eyes only."""
    if not job.original_filename_sealed:
        return job.filename
    return keyring.open_text(job.original_filename_sealed, context=str(job.job_id))


class JobSuperseded(Exception):
    """This attempt no longer owns the job: a recovery sweep handed it to another attempt (the
    worker was thought dead), or another worker already started it. The attempt stops quietly
    and touches nothing: the staged upload belongs to the new attempt."""


ACTIVE_STATUSES = (JobStatus.VALIDATING, JobStatus.PROCESSING)


def job_begin_attempt(*, job_id) -> Job:
    """Claim the job for a new attempt. A job still waiting for its first run, or one waiting to
    be retried, can be claimed; anything else (running elsewhere, or finished) cannot."""
    with transaction.atomic():
        job = Job.objects.select_for_update().select_related("owner").get(pk=job_id)
        first_run = job.status == JobStatus.VALIDATING and job.attempts == 0
        if not first_run and job.status != JobStatus.RETRYING:
            raise JobSuperseded(job_id)
        if job.status == JobStatus.RETRYING:
            job.transition_to(JobStatus.PROCESSING)
        job.attempts += 1
        job.heartbeat = timezone.now()
        job.error_message = ""
        job.error_detail = ""
        job.stages = initial_stage_list()
        job.save()
    notify_job_changed(job)
    return job


def _save_attempt(job: Job, *fields: str) -> None:
    """Save ``fields`` only if this attempt still owns the job (see JobSuperseded)."""
    job.heartbeat = timezone.now()
    job.updated_at = job.heartbeat
    values = {name: getattr(job, name) for name in (*fields, "heartbeat", "updated_at")}
    owned = Job.objects.filter(pk=job.pk, attempts=job.attempts, status__in=ACTIVE_STATUSES)
    if not owned.update(**values):
        raise JobSuperseded(job.job_id)


def job_enter_stage(job: Job, *, stage_name: str, progress: int, message: str) -> None:
    if stage_name != "validation" and job.status == JobStatus.VALIDATING:
        job.transition_to(JobStatus.PROCESSING)
    _set_stage(job, stage_name, status="running")
    job.progress = progress
    job.message = message
    _save_attempt(job, "status", "progress", "message", "stages")
    notify_job_changed(job)


def job_report_progress(job: Job, *, progress: int) -> None:
    if progress == job.progress:
        return
    job.progress = progress
    _save_attempt(job, "progress")
    notify_job_changed(job)


def job_leave_stage(job: Job, *, stage_name: str, status: str, duration_ms: int | None) -> None:
    _set_stage(job, stage_name, status=status, duration_ms=duration_ms)
    _save_attempt(job, "stages")


def _lock_attempt(job: Job) -> None:
    """Inside a transaction: lock the row and make sure this attempt still owns it."""
    current = Job.objects.select_for_update().only("status", "attempts").get(pk=job.pk)
    if current.attempts != job.attempts or current.status not in ACTIVE_STATUSES:
        raise JobSuperseded(job.job_id)
    # The stored status, not what an earlier, rolled-back try left in memory.
    job.status = current.status


def _set_stage(job: Job, stage_name: str, **changes) -> None:
    stages = [dict(entry) for entry in job.stages]
    for entry in stages:
        if entry["name"] == stage_name:
            entry.update(changes)
    job.stages = stages


def job_complete(
    *,
    job: Job,
    fields: dict,
    results: dict,
    plaintext_sha256: str,
    plaintext_length: int,
    archive_fingerprints: list[str],
    processing_started: datetime,
) -> Job:
    """Destroy the staged plaintext, then store results and the signed certificate at once."""
    with transaction.atomic():
        _lock_attempt(job)
        _destroy_staging(job)
        deleted_at = timezone.now()
        for name, value in fields.items():
            setattr(job, name, value)
        job.transition_to(JobStatus.COMPLETED)
        job.completed = deleted_at
        job.archive_expires = retention_deadline(deleted_at)
        job.file_sha256 = plaintext_sha256
        job.deletion_timestamp = deleted_at
        job.deletion_hash = deletion_hash(str(job.job_id), plaintext_sha256, deleted_at)
        job.progress = 100
        job.message = "Completed"
        job.processing_time_ms = int((deleted_at - processing_started).total_seconds() * 1000)
        job.results = results
        job.wrapped_key = None
        job.staging_path = ""
        job.save()
        certificate_issue(
            job=job,
            plaintext_sha256=plaintext_sha256,
            plaintext_length=plaintext_length,
            deletion_timestamp=deleted_at,
            deletion_hash=job.deletion_hash,
            archive=archive_summary(
                method=job.encryption_method,
                fingerprints=archive_fingerprints,
                retained_until=job.archive_expires,
            ),
        )
    JOBS_FINISHED.labels(status="completed").inc()
    BYTES_PROCESSED.inc(job.upload_size)
    logger.info("job completed", extra={"job_id": str(job.job_id)})
    notify_job_changed(job)
    return job


def job_fail(
    *,
    job: Job,
    error: errors.JobError,
    plaintext_sha256: str | None,
    plaintext_length: int | None,
    by_attempt: bool = True,
) -> Job:
    """End a job for good: no plaintext, no staging key and no archive outlive it.

    ``by_attempt`` is False when the recovery sweep ends a job whose worker is gone.
    """
    with transaction.atomic():
        if by_attempt:
            _lock_attempt(job)
        _destroy_staging(job)
        _destroy_archive(job)
        deleted_at = timezone.now()
        job.transition_to(JobStatus.FAILED)
        # The plaintext is destroyed here, whatever stage failed: the deletion did happen.
        _set_stage(job, "deletion", status="done")
        job.error_message = error.kind.message
        job.error_detail = (error.detail or "")[:500]
        job.error_status_code = error.kind.status
        job.message = error.kind.message
        job.completed = deleted_at
        job.wrapped_key = None
        job.staging_path = ""
        job.encrypted_path = ""
        job.deletion_timestamp = deleted_at
        if plaintext_sha256:
            job.file_sha256 = plaintext_sha256
            job.deletion_hash = deletion_hash(str(job.job_id), plaintext_sha256, deleted_at)
        job.save()
        if plaintext_sha256:
            certificate_issue(
                job=job,
                plaintext_sha256=plaintext_sha256,
                plaintext_length=plaintext_length,
                deletion_timestamp=deleted_at,
                deletion_hash=job.deletion_hash,
                archive=None,
            )
    JOBS_FINISHED.labels(status="failed").inc()
    logger.info(
        "job failed",
        extra={"job_id": str(job.job_id), "error": error.kind.code, "status": error.kind.status},
    )
    notify_job_changed(job)
    return job


def job_schedule_retry(*, job: Job, error: errors.JobError) -> timedelta:
    """Record a transient failure; the caller runs the job again after the returned delay."""
    with transaction.atomic():
        _lock_attempt(job)
        job.transition_to(JobStatus.RETRYING)
        job.message = f"Retrying after a temporary problem ({error.kind.message})"
        job.save(update_fields=["status", "message", "updated_at"])
    # 1 s, 2 s, 4 s (DESIGN.md); the base is a setting so tests need not sleep for real.
    delay = timedelta(seconds=settings.MEDGENOMICS_RETRY_BASE_SECONDS * 2 ** (job.attempts - 1))
    logger.warning(
        "job will retry",
        extra={"job_id": str(job.job_id), "attempt": job.attempts, "error": error.kind.code},
    )
    notify_job_changed(job)
    return delay


def _destroy_staging(job: Job) -> None:
    _destroy_file(job, job.staging_path)


def _destroy_archive(job: Job) -> None:
    _destroy_file(job, job.encrypted_path)


def _destroy_file(job: Job, path: str) -> None:
    """Remove a job's file. If the volume refuses (read-only after an I/O error), the job must
    still end: the staging ciphertext is unreadable once its wrapped key is dropped with the
    row, and the failure is logged for the operators."""
    if not path:
        return
    try:
        staging.destroy(path)
    except OSError as exc:
        logger.error(
            "could not remove a job file", extra={"job_id": str(job.job_id), "errno": exc.errno}
        )


def job_submit(*, owner, staged: StagedUpload, source_ip: str | None) -> Job:
    """Accept a staged upload as a job and start it after commit, or refuse it with the
    matrix error (the staged ciphertext is destroyed then)."""
    from jobs.runner import enqueue
    from jobs.selectors import recent_upload_count

    try:
        if staged.problem is not None:
            raise errors.JobError(staged.problem.kind, staged.problem.detail)
        if recent_upload_count(owner, window=timedelta(minutes=1)) >= (
            settings.MEDGENOMICS_UPLOADS_PER_MINUTE
        ):
            raise errors.JobError(errors.TOO_MANY_UPLOADS)
        with transaction.atomic():
            job = job_create(owner=owner, staged=staged, source_ip=source_ip)
            enqueue(job.job_id)
    except BaseException:
        staged.discard()
        raise
    return job

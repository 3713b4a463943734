"""Crash recovery: jobs whose worker stopped (killed, machine lost, server restarted).

A running attempt refreshes the job's heartbeat at every stage and progress step. A job whose
heartbeat is stale is retried if its staged upload is intact, else failed with a clear message;
either way nothing waits forever and no plaintext is left (the staging file is ciphertext whose
key dies with the job). A new attempt supersedes the old one, so a worker that was only slow
stops at its next step instead of racing the new attempt (services.JobSuperseded).
"""

from __future__ import annotations

import logging
from datetime import timedelta
from pathlib import Path

from django.conf import settings
from django.db import transaction
from django.db.models import Q
from django.utils import timezone

from jobs import errors, services
from jobs.models import Job, JobStatus

logger = logging.getLogger(__name__)

UNFINISHED = (JobStatus.VALIDATING, JobStatus.PROCESSING, JobStatus.RETRYING)


def stale_jobs(
    *, now=None, running_after: timedelta | None = None, queued_after: timedelta | None = None
):
    now = now or timezone.now()
    running_after = (
        running_after
        if running_after is not None
        else timedelta(seconds=settings.MEDGENOMICS_STALE_JOB_SECONDS)
    )
    queued_after = (
        queued_after
        if queued_after is not None
        else timedelta(seconds=settings.MEDGENOMICS_STALE_QUEUED_SECONDS)
    )
    return Job.objects.filter(status__in=UNFINISHED).filter(
        Q(heartbeat__lt=now - running_after)
        | Q(heartbeat__isnull=True, received__lt=now - queued_after)
    )


def jobs_recover_stale(
    *, running_after: timedelta | None = None, queued_after: timedelta | None = None
) -> dict:
    """Retry or fail every stale job. Returns counts for the log and the tests."""
    from jobs.runner import enqueue

    retried = failed = 0
    for job_id in stale_jobs(running_after=running_after, queued_after=queued_after).values_list(
        "pk", flat=True
    ):
        with transaction.atomic():
            job = Job.objects.select_for_update().select_related("owner").get(pk=job_id)
            if job.status not in UNFINISHED:
                continue
            intact = (
                bool(job.wrapped_key) and bool(job.staging_path) and Path(job.staging_path).exists()
            )
            if intact and job.attempts < services.MAX_ATTEMPTS:
                if job.status != JobStatus.RETRYING:
                    job.transition_to(JobStatus.RETRYING)
                job.heartbeat = timezone.now()
                job.message = "Resuming: the worker processing this file stopped"
                job.save(update_fields=["status", "heartbeat", "message", "updated_at"])
                enqueue(job.pk)
                retried += 1
            else:
                reason = (
                    "processing stopped four times"
                    if intact
                    else "processing stopped and the staged upload was lost"
                )
                services.job_fail(
                    job=job,
                    error=errors.JobError(errors.ANALYSIS_FAILED, reason),
                    plaintext_sha256=job.file_sha256 or None,
                    plaintext_length=None,
                    by_attempt=False,
                )
                failed += 1
    if retried or failed:
        logger.warning("recovered stale jobs", extra={"retried": retried, "failed": failed})
    return {"retried": retried, "failed": failed}

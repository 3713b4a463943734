"""Retention: destroy archives whose retention period has ended; their jobs become ``deleted``.

The certificate already says when this happens ("an encrypted archive remains ... until
<retained_until>, when it is destroyed too"), so it is not re-issued: the job row records the
destruction (``results["archive"]["destroyed_at"]``, status ``deleted``) and a log line names
the job id only. Run it periodically: ``manage.py purge_expired`` (cron, a systemd timer or
Celery beat).
"""

from __future__ import annotations

import logging
from datetime import datetime

from django.db import transaction
from django.utils import timezone

from jobs.models import Job, JobStatus
from jobs.notify import notify_job_changed
from security import staging
from security.certificates import iso_utc

logger = logging.getLogger(__name__)


def expired_job_ids(now: datetime) -> list:
    return list(
        Job.objects.filter(status=JobStatus.COMPLETED, archive_expires__lte=now)
        .order_by("archive_expires")
        .values_list("pk", flat=True)
    )


def purge_expired(now: datetime | None = None) -> int:
    """Destroy the archive of every completed job whose ``archive_expires`` has passed and move
    the job to ``deleted``; returns how many were destroyed.

    Each job is handled in its own transaction, with the row locked: the file is removed
    first and the row saved after, so a crash in between leaves a job that still says
    ``completed`` (and is purged on the next run), never one that claims a destruction that
    did not happen. A job whose file cannot be removed is logged and left for the next run.
    """
    now = now or timezone.now()
    destroyed = 0
    for job_id in expired_job_ids(now):
        try:
            job = _purge_one(job_id, now)
        except OSError:
            logger.exception("could not destroy an expired archive", extra={"job_id": str(job_id)})
            continue
        if job is not None:
            destroyed += 1
            logger.info("archive destroyed after retention", extra={"job_id": str(job_id)})
            notify_job_changed(job)
    return destroyed


def _purge_one(job_id, now: datetime) -> Job | None:
    with transaction.atomic():
        job = Job.objects.select_for_update().filter(pk=job_id).first()
        # Re-checked under the lock: another purge may have got here first.
        if job is None or job.status != JobStatus.COMPLETED:
            return None
        if job.archive_expires is None or job.archive_expires > now:
            return None
        if job.encrypted_path:
            staging.destroy(job.encrypted_path)  # unlink; the archive is ciphertext only
        job.transition_to(JobStatus.DELETED)
        job.encrypted_path = ""
        job.message = "Archive destroyed at the end of its retention period"
        results = dict(job.results or {})
        results["archive"] = {**(results.get("archive") or {}), "destroyed_at": iso_utc(now)}
        job.results = results
        job.save(update_fields=["status", "encrypted_path", "message", "results", "updated_at"])
    return job

"""Celery tasks: each takes an id, loads, and calls the pipeline or a service."""

from __future__ import annotations

from celery import shared_task

from jobs.pipeline import Outcome, run_job
from jobs.recovery import jobs_recover_stale


@shared_task(bind=True, acks_late=True, reject_on_worker_lost=True, max_retries=None)
def process_job(self, job_id: str) -> str:
    """Run one attempt; a transient failure comes back after the job's own backoff.

    The job row counts attempts (at most four); Celery's retry only carries the delay.
    """
    result = run_job(job_id)
    if result.outcome is Outcome.RETRY:
        raise self.retry(countdown=result.retry_after.total_seconds())
    return result.outcome.value


@shared_task
def sweep_stale_jobs() -> dict:
    return jobs_recover_stale()


@shared_task
def purge_expired_archives() -> int:
    from security.retention import purge_expired

    return purge_expired()

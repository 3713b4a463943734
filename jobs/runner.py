"""Where jobs run: an in-process thread pool (embedded default), inline (the `process` command),
or Celery workers (scale-out, when REDIS_URL is set)."""

from __future__ import annotations

import logging
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from datetime import timedelta

from django.conf import settings
from django.db import close_old_connections, connections, transaction

from jobs.pipeline import Outcome, run_job

logger = logging.getLogger(__name__)

_executor: ThreadPoolExecutor | None = None
_executor_lock = threading.Lock()


def _thread_pool() -> ThreadPoolExecutor:
    global _executor
    with _executor_lock:
        if _executor is None:
            _executor = ThreadPoolExecutor(
                max_workers=settings.MEDGENOMICS_WORKER_THREADS, thread_name_prefix="job-worker"
            )
        return _executor


def run_until_settled(job_id) -> Outcome:
    """Run a job, retrying transient failures after 1 s, 2 s and 4 s, until it ends."""
    while True:
        close_old_connections()
        try:
            result = run_job(job_id)
        finally:
            close_old_connections()
        if result.outcome is not Outcome.RETRY:
            return result.outcome
        time.sleep(result.retry_after.total_seconds())


def _run_in_thread(job_id) -> None:
    try:
        run_until_settled(job_id)
    except Exception:
        logger.exception("job worker crashed", extra={"job_id": str(job_id)})
    finally:
        # Pool threads live on between jobs; an idle connection per thread holds the database.
        connections.close_all()


def enqueue(job_id) -> None:
    """Start the job once the transaction that created it has committed."""
    mode = settings.MEDGENOMICS_JOB_RUNNER
    if mode == "celery":
        from jobs.tasks import process_job

        transaction.on_commit(lambda: process_job.delay(str(job_id)))
    elif mode == "inline":
        transaction.on_commit(lambda: run_until_settled(job_id))
    elif mode == "none":
        return  # the caller runs it (`manage.py process`)
    else:
        transaction.on_commit(lambda: _thread_pool().submit(_run_in_thread, job_id))


_sweeper_started = False


def start_embedded_workers() -> None:
    """At server start-up in the embedded mode: recover the previous process's unfinished jobs
    at once (no other process can be running them), then sweep for stale ones periodically."""
    global _sweeper_started
    if settings.MEDGENOMICS_JOB_RUNNER != "thread" or _sweeper_started:
        return
    _sweeper_started = True
    from jobs.recovery import jobs_recover_stale

    jobs_recover_stale(running_after=timedelta(0), queued_after=timedelta(0))

    from security.retention import purge_expired

    def sweep_forever() -> None:
        last_purge = 0.0
        while True:
            time.sleep(settings.MEDGENOMICS_SWEEP_INTERVAL_SECONDS)
            try:
                close_old_connections()
                jobs_recover_stale()
                if time.monotonic() - last_purge >= 3600:  # archives past retention, hourly
                    purge_expired()
                    last_purge = time.monotonic()
            except Exception:
                logger.exception("periodic sweep failed")

    threading.Thread(target=sweep_forever, name="stale-job-sweeper", daemon=True).start()

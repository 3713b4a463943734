"""The same code, distributed: PostgreSQL, Redis and Celery workers in their own processes."""

from __future__ import annotations

import time
from datetime import timedelta
from pathlib import Path
from urllib.parse import urlparse

import pytest
from django.conf import settings as django_settings

from jobs.models import Job
from jobs.recovery import jobs_recover_stale
from tests.conftest import FASTQ, GENOMES, upload
from tests.jobs.test_archive_and_plaintext import _files_containing, unique_read
from tests.reference_counts import independent_counts
from tests.scaleout.tcp_proxy import TcpProxy

pytestmark = [
    pytest.mark.django_db(transaction=True),
    pytest.mark.skipif(
        not (django_settings.DATABASE_URL and django_settings.REDIS_URL),
        reason="scale-out tests need DATABASE_URL (PostgreSQL) and REDIS_URL (make test sets both)",
    ),
]


def wait_for_status(
    job_id: str, wanted: set[str], *, timeout: float = 120, seen: list | None = None
) -> Job:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        job = Job.objects.get(pk=job_id)
        if seen is not None and (not seen or seen[-1] != job.status):
            seen.append(job.status)
        if job.status in wanted:
            return job
        time.sleep(0.05)
    raise AssertionError(f"job {job_id} stayed {job.status}; seen {seen}")


def test_jobs_run_on_celery_workers(owner_client, workers):
    workers("alpha")
    workers("beta")
    paths = [
        GENOMES / "viral" / "hiv1_NC_001802.fa",
        FASTQ / "illumina_phred64.fq",
        GENOMES / "human" / "human_mtDNA_rCRS.fa",
    ]
    job_ids = [upload(owner_client, path).json()["job_id"] for path in paths]
    for path, job_id in zip(paths, job_ids, strict=True):
        job = wait_for_status(job_id, {"completed", "failed"})
        assert job.status == "completed", job.error_detail
        length, gc, _ = independent_counts(path)
        assert job.sequence_length == length
        assert job.gc_content == pytest.approx(gc)
        assert job.attempts == 1


def test_a_killed_worker_s_job_is_retried_on_another_worker(
    owner_client, workers, isolated_data_dir, worker_env
):
    read, run = unique_read(11)
    data = read + (FASTQ / "novaseq_800_reads_phred33.fq").read_bytes() * 60  # ~18 MB
    first = workers("doomed")
    job_id = upload(owner_client, FASTQ / "novaseq_800_reads_phred33.fq", content=data).json()[
        "job_id"
    ]
    wait_for_status(job_id, {"processing"})
    first.kill()  # SIGKILL in the middle of the job

    workers("survivor")
    time.sleep(1.5)
    # The periodic sweep (Celery beat in production) finds the stale heartbeat.
    assert jobs_recover_stale(running_after=timedelta(seconds=1))["retried"] == 1
    job = wait_for_status(job_id, {"completed", "failed"})
    assert job.status == "completed", job.error_detail
    assert job.attempts == 2
    assert _files_containing(run, isolated_data_dir, Path(worker_env["TMPDIR"])) == []


def test_a_database_outage_sends_the_job_to_retrying_then_it_completes(
    owner_client, workers, worker_env
):
    database = urlparse(worker_env["DATABASE_URL"])
    proxy = TcpProxy((database.hostname, database.port))
    try:
        proxied = worker_env["DATABASE_URL"].replace(f":{database.port}/", f":{proxy.port}/")
        workers("flaky", DATABASE_URL=proxied)
        data = (FASTQ / "novaseq_800_reads_phred33.fq").read_bytes() * 12
        job_id = upload(owner_client, FASTQ / "novaseq_800_reads_phred33.fq", content=data).json()[
            "job_id"
        ]
        seen: list[str] = []
        wait_for_status(job_id, {"processing"}, seen=seen)
        proxy.cut()
        time.sleep(2)
        proxy.restore()
        job = wait_for_status(job_id, {"completed", "failed"}, seen=seen)
        assert "retrying" in seen, seen
        assert job.status == "completed", job.error_detail
        assert job.attempts >= 2
    finally:
        proxy.close()

"""Crash recovery: a job whose worker stopped is retried if its upload is intact, else failed."""

from __future__ import annotations

import os
import signal
import time
from datetime import timedelta
from pathlib import Path

import pytest
from django.utils import timezone

from jobs.models import Job
from jobs.recovery import jobs_recover_stale
from tests.conftest import FASTQ, GENOMES, upload
from tests.e2e.server import start_server
from tests.e2e.server import wait_for_final as wait_over_http
from tests.jobs.test_archive_and_plaintext import _files_containing, unique_read

pytestmark = pytest.mark.django_db(transaction=True)


def orphan_job(client, settings, path: Path, *, started: bool) -> str:
    """A job whose worker died: left in `processing` with an old heartbeat."""
    settings.MEDGENOMICS_JOB_RUNNER = "none"
    job_id = upload(client, path).json()["job_id"]
    long_ago = timezone.now() - timedelta(hours=1)
    if started:
        Job.objects.filter(pk=job_id).update(status="processing", attempts=1, heartbeat=long_ago)
    else:
        Job.objects.filter(pk=job_id).update(received=long_ago)
    return job_id


@pytest.mark.parametrize("started", [True, False], ids=["died-while-running", "never-picked-up"])
def test_a_stale_job_with_an_intact_upload_is_retried_to_completion(
    owner_client, settings, started
):
    job_id = orphan_job(
        owner_client, settings, GENOMES / "viral" / "phiX174_NC_001422.fa", started=started
    )
    settings.MEDGENOMICS_JOB_RUNNER = "inline"
    assert jobs_recover_stale() == {"retried": 1, "failed": 0}
    job = Job.objects.get(pk=job_id)
    assert job.status == "completed"
    assert job.attempts == (2 if started else 1)


def test_a_stale_job_whose_upload_is_gone_fails_with_a_clear_message(owner_client, settings):
    job_id = orphan_job(
        owner_client, settings, GENOMES / "viral" / "phiX174_NC_001422.fa", started=True
    )
    Path(Job.objects.get(pk=job_id).staging_path).unlink()
    assert jobs_recover_stale() == {"retried": 0, "failed": 1}
    status = owner_client.get(f"/api/status/{job_id}").json()
    assert status["status"] == "failed"
    assert status["detail"] == "processing stopped and the staged upload was lost"


def test_a_fresh_job_is_left_alone(owner_client, settings):
    settings.MEDGENOMICS_JOB_RUNNER = "none"
    upload(owner_client, GENOMES / "viral" / "phiX174_NC_001422.fa")
    assert jobs_recover_stale() == {"retried": 0, "failed": 0}


def test_a_superseded_attempt_stops_without_touching_the_job(owner_client, settings):
    from jobs import services

    settings.MEDGENOMICS_JOB_RUNNER = "none"
    job_id = upload(owner_client, GENOMES / "viral" / "phiX174_NC_001422.fa").json()["job_id"]
    slow = services.job_begin_attempt(job_id=job_id)
    # The sweep thinks the worker is dead and a new attempt claims the job...
    Job.objects.filter(pk=job_id).update(heartbeat=timezone.now() - timedelta(hours=1))
    settings.MEDGENOMICS_JOB_RUNNER = "inline"
    jobs_recover_stale()
    assert Job.objects.get(pk=job_id).status == "completed"
    # ...so the slow one, waking up, is told it no longer owns the job.
    with pytest.raises(services.JobSuperseded):
        services.job_enter_stage(
            slow, stage_name="analysis", progress=60, message="Analysing sequences"
        )
    assert Job.objects.get(pk=job_id).status == "completed"


def test_a_killed_server_resumes_its_jobs_on_restart(tmp_path):
    """Embedded mode: SIGKILL the server in the middle of a job; after a restart it completes."""
    read, run = unique_read(7)
    reads = (FASTQ / "novaseq_800_reads_phred33.fq").read_bytes()
    data = read + reads * 60  # ~18 MB: long enough to be killed mid-way
    server = start_server(tmp_path / "first")
    server.create_user("lab", "a long enough passphrase")
    client = server.login("lab", "a long enough passphrase")
    job_id = client.post("/api/upload", files={"file": ("reads.fq", data)}).json()["job_id"]
    deadline = time.monotonic() + 60
    while client.get(f"/api/status/{job_id}").json()["status"] != "processing":
        assert time.monotonic() < deadline
        time.sleep(0.05)
    os.kill(server.process.pid, signal.SIGKILL)
    server.process.wait()
    client.close()

    restarted = start_server(tmp_path / "first", reuse=True)
    try:
        client = restarted.login("lab", "a long enough passphrase")
        status = wait_over_http(client, job_id)
        assert status["status"] == "completed", status
        assert status["attempts"] == 2
        assert _files_containing(run, restarted.data_dir, restarted.temp_dir) == []
        client.close()
    finally:
        restarted.stop()

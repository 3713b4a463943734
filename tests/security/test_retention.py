"""Retention: once an archive's retention date passes it is destroyed and its job is `deleted`;
nothing else is touched, and the certificate stays valid (it announced the date)."""

from __future__ import annotations

import json
import logging
from datetime import timedelta
from io import StringIO
from pathlib import Path

import pytest
from django.core.management import call_command
from django.utils import timezone

from jobs.models import Job
from security.retention import purge_expired
from tests.conftest import BAD_INPUTS, GENOMES, upload, wait_for_final

pytestmark = pytest.mark.django_db(transaction=True)

PHIX = GENOMES / "viral" / "phiX174_NC_001422.fa"
LAMBDA = GENOMES / "viral" / "lambda_phage.fa"


def run_job(client, path: Path) -> Job:
    job_id = upload(client, path).json()["job_id"]
    wait_for_final(client, job_id)
    return Job.objects.get(pk=job_id)


@pytest.fixture
def short_and_long(owner_client, inline_jobs, settings) -> tuple[Job, Job]:
    """One job kept 7 days, one kept 30 (the retention setting when each completed)."""
    settings.MEDGENOMICS_RETENTION_DAYS = 7
    short = run_job(owner_client, PHIX)
    settings.MEDGENOMICS_RETENTION_DAYS = 30
    long = run_job(owner_client, LAMBDA)
    assert short.status == long.status == "completed"
    return short, long


def test_nothing_is_destroyed_before_its_date(short_and_long):
    short, long = short_and_long
    assert purge_expired(now=timezone.now() + timedelta(days=6)) == 0
    for job in (short, long):
        job.refresh_from_db()
        assert job.status == "completed" and Path(job.encrypted_path).exists()


def test_with_the_clock_forward_only_expired_archives_are_destroyed(
    owner_client, short_and_long, caplog
):
    short, long = short_and_long
    short_archive = Path(short.encrypted_path)
    later = timezone.now() + timedelta(days=8)
    with caplog.at_level(logging.INFO, logger="security.retention"):
        assert purge_expired(now=later) == 1

    short.refresh_from_db()
    assert short.status == "deleted"
    assert short.encrypted_path == ""
    assert not short_archive.exists()
    assert short.results["archive"]["destroyed_at"].startswith(later.date().isoformat())
    assert short.results["archive"]["recipients"]  # what was recorded before is kept

    long.refresh_from_db()
    assert long.status == "completed" and Path(long.encrypted_path).exists()

    # What the owner sees: deleted, no archive to download, the results and proof remain.
    assert owner_client.get(f"/api/status/{short.job_id}").json()["status"] == "deleted"
    assert owner_client.get(f"/jobs/{short.job_id}/archive").status_code == 404
    assert owner_client.get(f"/jobs/{long.job_id}/archive").status_code == 200
    assert owner_client.get(f"/api/result/{short.job_id}").status_code == 200
    page = owner_client.get(f"/jobs/{short.job_id}/certificate/").content.decode()
    assert "was destroyed at the end of its retention period" in page

    # One log line, with the job id and nothing from the file.
    [record] = [r for r in caplog.records if r.getMessage() == "archive destroyed after retention"]
    assert record.job_id == str(short.job_id)
    assert short.filename not in caplog.text and "phiX" not in caplog.text


def test_the_certificate_of_a_purged_job_still_verifies(owner_client, short_and_long, tmp_path):
    short, _ = short_and_long
    purge_expired(now=timezone.now() + timedelta(days=8))
    document = owner_client.get(f"/api/proof/{short.job_id}").json()
    path = tmp_path / "proof.json"
    path.write_text(json.dumps(document))
    out = StringIO()
    call_command("verify_certificate", str(path), stdout=out)
    assert out.getvalue().startswith("valid")


def test_purging_again_changes_nothing(short_and_long):
    later = timezone.now() + timedelta(days=40)
    assert purge_expired(now=later) == 2
    assert purge_expired(now=later) == 0
    assert set(Job.objects.values_list("status", flat=True)) == {"deleted"}


def test_failed_jobs_are_left_alone(owner_client, inline_jobs):
    failed = run_job(owner_client, BAD_INPUTS / "13_len_mismatch.fq")
    assert failed.status == "failed" and failed.encrypted_path == ""
    assert purge_expired(now=timezone.now() + timedelta(days=400)) == 0
    failed.refresh_from_db()
    assert failed.status == "failed"


def test_an_archive_already_gone_from_disk_still_ends_deleted(short_and_long):
    short, _ = short_and_long
    Path(short.encrypted_path).unlink()
    assert purge_expired(now=timezone.now() + timedelta(days=8)) == 1
    short.refresh_from_db()
    assert short.status == "deleted"


def test_the_command_purges_what_has_expired(owner_client, inline_jobs, settings):
    settings.MEDGENOMICS_RETENTION_DAYS = 0  # expires the moment it completes
    job = run_job(owner_client, PHIX)
    archive = Path(job.encrypted_path)
    out = StringIO()
    call_command("purge_expired", stdout=out)
    assert out.getvalue().strip() == "Destroyed 1 expired archive."
    job.refresh_from_db()
    assert job.status == "deleted" and not archive.exists()

"""Each row of DESIGN.md's error matrix that the main job can reach: status and message."""

from __future__ import annotations

import gzip
import uuid

import pytest

from tests.conftest import BAD_INPUTS, GENOMES, upload, wait_for_final

pytestmark = pytest.mark.django_db(transaction=True)

MTDNA = GENOMES / "human" / "human_mtDNA_rCRS.fa"


def assert_error(response, status: int, message: str) -> dict:
    assert response.status_code == status, response.content
    body = response.json()
    assert body["message"] == message
    assert body["error"] == message
    assert "timestamp" in body
    return body


def staging_files(data_dir):
    staging = data_dir / "staging"
    return list(staging.iterdir()) if staging.exists() else []


def test_a_file_over_the_limit_is_refused(owner_client, settings, isolated_data_dir):
    settings.MEDGENOMICS_MAX_UPLOAD_BYTES = 10_000
    assert_error(upload(owner_client, MTDNA), 400, "File exceeds 50MB limit")
    assert staging_files(isolated_data_dir) == []


def test_the_limit_counts_the_decompressed_size(owner_client, settings, isolated_data_dir):
    settings.MEDGENOMICS_MAX_UPLOAD_BYTES = 10_000
    compressed = gzip.compress(MTDNA.read_bytes())
    assert len(compressed) < 10_000  # small on the wire, too large once inflated
    response = upload(owner_client, MTDNA, name="mt.fa.gz", content=compressed)
    assert_error(response, 400, "File exceeds 50MB limit")
    assert staging_files(isolated_data_dir) == []


def test_a_gzip_bomb_is_refused_without_inflating_it_all(owner_client, settings):
    settings.MEDGENOMICS_MAX_UPLOAD_BYTES = 1_000_000
    bomb = gzip.compress(b">bomb\n" + b"A" * 200_000_000)  # ~200 kB that would inflate to 200 MB
    response = upload(owner_client, MTDNA, name="bomb.fa.gz", content=bomb)
    assert_error(response, 400, "File exceeds 50MB limit")


@pytest.mark.parametrize(
    "content",
    [b"%PDF-1.7 not a genome", b"hello, world\n", b"\x7fELF\x02\x01\x01" + bytes(64), b"[1, 2, 3]"],
    ids=["pdf", "text", "elf", "json"],
)
def test_content_that_is_not_fasta_or_fastq_is_refused(owner_client, content, isolated_data_dir):
    response = upload(owner_client, MTDNA, name="sample.fasta", content=content)
    assert_error(response, 400, "Only FASTA/FASTQ allowed")
    assert staging_files(isolated_data_dir) == []


def test_an_empty_file_is_refused_with_the_reason(owner_client):
    body = assert_error(
        upload(owner_client, MTDNA, name="empty.fa", content=b""), 400, "Only FASTA/FASTQ allowed"
    )
    assert body["detail"] == "the file is empty"


def test_the_extension_is_not_trusted_content_decides(owner_client, inline_jobs):
    response = upload(owner_client, MTDNA, name="notes.txt")
    assert response.status_code == 202
    assert wait_for_final(owner_client, response.json()["job_id"])["status"] == "completed"


def test_no_file_is_refused(owner_client):
    assert_error(owner_client.post("/api/upload", {}), 400, "No file provided")


def test_a_file_under_another_field_name_is_not_taken_and_not_kept(owner_client, isolated_data_dir):
    from django.core.files.uploadedfile import SimpleUploadedFile

    response = owner_client.post(
        "/api/upload", {"document": SimpleUploadedFile("a.fa", MTDNA.read_bytes())}
    )
    assert_error(response, 400, "No file provided")
    assert staging_files(isolated_data_dir) == []


@pytest.mark.parametrize("endpoint", ["status", "result", "proof"])
def test_a_bad_job_id_is_refused(owner_client, endpoint):
    assert_error(owner_client.get(f"/api/{endpoint}/not-a-uuid"), 400, "Invalid UUID format")


@pytest.mark.parametrize("endpoint", ["status", "result", "proof"])
def test_an_unknown_job_is_not_found(owner_client, endpoint):
    body = assert_error(
        owner_client.get(f"/api/{endpoint}/{uuid.uuid4()}"), 404, "Job ID not found"
    )
    assert "job_id" in body


def test_another_users_job_is_not_found(owner_client, client, other_user, inline_jobs):
    job_id = upload(owner_client, MTDNA).json()["job_id"]
    wait_for_final(owner_client, job_id)
    client.force_login(other_user)
    for endpoint in ("status", "result", "proof"):
        assert_error(client.get(f"/api/{endpoint}/{job_id}"), 404, "Job ID not found")
    assert client.get(f"/jobs/{job_id}/").status_code == 404


def test_the_proof_is_unavailable_before_deletion(owner_client, settings):
    settings.MEDGENOMICS_JOB_RUNNER = "none"  # nothing picks the job up
    job_id = upload(owner_client, MTDNA).json()["job_id"]
    assert_error(owner_client.get(f"/api/proof/{job_id}"), 404, "Deletion proof unavailable")
    response = owner_client.get(f"/api/result/{job_id}")
    assert response.status_code == 202
    assert response.json()["status"] == "validating"


@pytest.mark.parametrize("endpoint", ["/api/status/x", "/api/result/x", "/api/proof/x"])
def test_the_api_needs_a_login(client, endpoint):
    assert_error(client.get(endpoint), 401, "Authentication required")


def test_upload_needs_a_login(client):
    assert_error(upload(client, MTDNA), 401, "Authentication required")


def test_pages_redirect_to_the_login(client):
    for page in ("/jobs/", "/jobs/upload/", f"/jobs/{uuid.uuid4()}/"):
        response = client.get(page)
        assert response.status_code == 302
        assert response["Location"].startswith("/accounts/login/")


def test_the_api_is_protected_by_csrf(owner):
    from django.test import Client

    client = Client(enforce_csrf_checks=True)
    client.force_login(owner)
    assert upload(client, MTDNA).status_code == 403


def test_too_many_uploads_answer_429_with_retry_after(owner_client, settings):
    settings.MEDGENOMICS_JOB_RUNNER = "none"
    settings.MEDGENOMICS_UPLOADS_PER_MINUTE = 2
    assert upload(owner_client, MTDNA).status_code == 202
    assert upload(owner_client, MTDNA).status_code == 202
    response = upload(owner_client, MTDNA)
    assert_error(response, 429, "Too many uploads")
    assert int(response["Retry-After"]) > 0


def test_a_malformed_file_fails_the_job_naming_record_and_line(owner_client, inline_jobs):
    job_id = upload(owner_client, BAD_INPUTS / "13_len_mismatch.fq").json()["job_id"]
    status = wait_for_final(owner_client, job_id)
    assert status["status"] == "failed"
    assert status["message"] == "Malformed sequence file"
    assert "record 2" in status["detail"] and "line" in status["detail"]
    assert "short_qual" not in status["detail"]  # read names are identifiers
    body = assert_error(owner_client.get(f"/api/result/{job_id}"), 400, "Malformed sequence file")
    assert body["job_id"] == job_id


def test_a_truncated_gzip_is_refused_at_upload(owner_client, isolated_data_dir):
    body = assert_error(
        upload(owner_client, BAD_INPUTS / "15b_truncated.fq.gz"), 400, "Malformed sequence file"
    )
    assert "truncated gzip" in body["detail"]
    assert staging_files(isolated_data_dir) == []


@pytest.mark.parametrize("compress", [False, True], ids=["plain", "gzip"])
def test_the_validation_stage_enforces_the_limit_too(owner_client, settings, compress):
    """A job staged under a larger limit (or by another route) is checked again when it runs."""
    from jobs.runner import run_until_settled

    settings.MEDGENOMICS_JOB_RUNNER = "none"
    content = MTDNA.read_bytes()
    content = gzip.compress(content) if compress else content
    job_id = upload(owner_client, MTDNA, name="mt.fa", content=content).json()["job_id"]
    settings.MEDGENOMICS_MAX_UPLOAD_BYTES = 10_000
    run_until_settled(job_id)
    status = owner_client.get(f"/api/status/{job_id}").json()
    assert status["status"] == "failed" and status["message"] == "File exceeds 50MB limit"
    assert_error(owner_client.get(f"/api/result/{job_id}"), 400, "File exceeds 50MB limit")

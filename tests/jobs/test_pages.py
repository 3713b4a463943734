"""The pages a logged-in user goes through: upload, job list, job detail."""

from __future__ import annotations

import pytest

from tests.conftest import BAD_INPUTS, GENOMES, upload, wait_for_final

pytestmark = pytest.mark.django_db(transaction=True)


def test_the_login_page_renders(client):
    response = client.get("/accounts/login/")
    assert response.status_code == 200
    assert b'name="password"' in response.content


def test_the_upload_page_renders_with_its_form(owner_client):
    response = owner_client.get("/jobs/upload/")
    assert response.status_code == 200
    assert b'type="file"' in response.content and b'name="file"' in response.content


def test_uploading_through_the_form_opens_the_job_page(owner_client, inline_jobs):
    with (GENOMES / "viral" / "phiX174_NC_001422.fa").open("rb") as handle:
        response = owner_client.post("/jobs/upload/", {"file": handle})
    assert response.status_code == 302
    page = owner_client.get(response["Location"])
    assert page.status_code == 200
    assert b"phiX174_NC_001422.fa" in page.content  # the owner sees the real name
    assert b"5386 bases" in page.content
    assert b"Deletion certificate" in page.content


def test_the_form_shows_the_matrix_message_on_refusal(owner_client):
    response = owner_client.post("/jobs/upload/", {})
    assert response.status_code == 400
    assert b"No file provided" in response.content


def test_a_failed_job_page_shows_the_error_and_a_retry(owner_client, inline_jobs):
    job_id = upload(owner_client, BAD_INPUTS / "13_len_mismatch.fq").json()["job_id"]
    wait_for_final(owner_client, job_id)
    page = owner_client.get(f"/jobs/{job_id}/").content.decode()
    assert "Malformed sequence file" in page
    assert "record 2" in page
    assert "Upload another file" in page


def test_the_job_list_shows_newest_first_and_filters_by_status(owner_client, inline_jobs):
    upload(owner_client, BAD_INPUTS / "13_len_mismatch.fq")
    upload(owner_client, GENOMES / "viral" / "phiX174_NC_001422.fa")
    page = owner_client.get("/jobs/").content.decode()
    assert page.index("Completed") < page.index("Failed")
    failed_only = owner_client.get("/jobs/?status=failed").content.decode()
    assert "status-failed" in failed_only and "status-completed" not in failed_only

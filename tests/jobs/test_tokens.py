"""Personal API tokens: ``Authorization: Bearer`` opens the JSON API without CSRF until revoked."""

from __future__ import annotations

import hashlib

import pytest
from django.core.files.uploadedfile import SimpleUploadedFile
from django.test import Client

from jobs import tokens
from jobs.models import ApiToken, Job
from tests.conftest import GENOMES, upload, wait_for_final

pytestmark = pytest.mark.django_db(transaction=True)

MTDNA = GENOMES / "human" / "human_mtDNA_rCRS.fa"


def bearer(secret: str) -> dict[str, str]:
    return {"HTTP_AUTHORIZATION": f"Bearer {secret}"}


def token_upload(client: Client, secret: str, path=MTDNA):
    file = SimpleUploadedFile(path.name, path.read_bytes())
    return client.post("/api/upload", {"file": file}, **bearer(secret))


@pytest.fixture
def strict_client():
    """A client that enforces CSRF, as a browser-less script's HTTP library would meet it."""
    return Client(enforce_csrf_checks=True)


@pytest.fixture
def owner_token(owner):
    return tokens.api_token_create(user=owner, name="sequencer script")


def test_only_the_sha256_of_a_token_is_stored(owner_token):
    row = ApiToken.objects.get(pk=owner_token.token.pk)
    assert row.token_hash == hashlib.sha256(owner_token.secret.encode()).hexdigest()
    stored = [str(getattr(row, field.attname)) for field in ApiToken._meta.fields]
    assert not any(owner_token.secret in value for value in stored)
    assert owner_token.secret.startswith("mgk_") and len(owner_token.secret) > 40


def test_two_tokens_are_never_the_same(owner):
    first = tokens.api_token_create(user=owner, name="a")
    second = tokens.api_token_create(user=owner, name="b")
    assert first.secret != second.secret


def test_a_token_uploads_and_reads_results_without_csrf_or_session(
    strict_client, owner, owner_token, inline_jobs
):
    response = token_upload(strict_client, owner_token.secret)
    assert response.status_code == 202, response.content
    job_id = response.json()["job_id"]
    assert Job.objects.get(pk=job_id).owner == owner

    status = strict_client.get(f"/api/status/{job_id}", **bearer(owner_token.secret)).json()
    assert status["status"] == "completed"
    result = strict_client.get(f"/api/result/{job_id}", **bearer(owner_token.secret))
    assert result.status_code == 200
    assert result.json()["results"]["species_analysis"]["sequence_characteristics"]["length"] == (
        16569
    )
    proof = strict_client.get(f"/api/proof/{job_id}", **bearer(owner_token.secret))
    assert proof.status_code == 200 and proof.json()["job_id"] == job_id


def test_a_session_still_needs_its_csrf_token(strict_client, owner):
    strict_client.force_login(owner)
    assert upload(strict_client, MTDNA).status_code == 403


def test_a_revoked_token_is_refused(strict_client, owner, owner_token):
    assert tokens.api_token_revoke(user=owner, token_id=owner_token.token.pk)
    response = token_upload(strict_client, owner_token.secret)
    assert response.status_code == 401
    assert response.json()["error"] == "Authentication required"
    status = strict_client.get(
        "/api/status/00000000-0000-4000-8000-000000000000", **bearer(owner_token.secret)
    )
    assert status.status_code == 401


def test_an_unknown_token_is_refused_even_beside_a_valid_session(owner_client, owner_token):
    response = owner_client.get(
        "/api/status/00000000-0000-4000-8000-000000000000", **bearer(owner_token.secret + "x")
    )
    assert response.status_code == 401


def test_the_token_of_a_disabled_account_is_refused(strict_client, owner, owner_token):
    owner.is_active = False
    owner.save()
    assert token_upload(strict_client, owner_token.secret).status_code == 401


def test_a_token_sees_only_its_owners_jobs(strict_client, owner_client, other_user, inline_jobs):
    job_id = upload(owner_client, MTDNA).json()["job_id"]
    wait_for_final(owner_client, job_id)
    intruder = tokens.api_token_create(user=other_user, name="mallory's")
    response = strict_client.get(f"/api/result/{job_id}", **bearer(intruder.secret))
    assert response.status_code == 404
    assert response.json()["error"] == "Job ID not found"


def test_last_used_is_recorded(strict_client, owner_token):
    assert owner_token.token.last_used is None
    strict_client.get(
        "/api/status/00000000-0000-4000-8000-000000000000", **bearer(owner_token.secret)
    )
    owner_token.token.refresh_from_db()
    assert owner_token.token.last_used is not None


def test_one_user_cannot_revoke_anothers_token(owner_token, other_user):
    assert not tokens.api_token_revoke(user=other_user, token_id=owner_token.token.pk)
    owner_token.token.refresh_from_db()
    assert owner_token.token.is_active


def test_an_anonymous_upload_is_refused_before_its_body_is_stored(strict_client, isolated_data_dir):
    # Authentication is checked before CSRF, so the CSRF check never parses (stages) the body.
    response = upload(strict_client, MTDNA)
    assert response.status_code == 401
    staging = isolated_data_dir / "staging"
    assert not staging.exists() or not any(staging.iterdir())


def test_an_administrator_sees_and_revokes_tokens_but_never_their_secret(
    client, owner_token, django_user_model
):
    administrator = django_user_model.objects.create_superuser("root", password="x" * 20)
    client.force_login(administrator)
    listing = client.get("/admin/jobs/apitoken/").content.decode()
    assert "sequencer script" in listing
    change_page = client.get(f"/admin/jobs/apitoken/{owner_token.token.pk}/change/")
    assert owner_token.token.token_hash not in change_page.content.decode()
    assert client.get("/admin/jobs/apitoken/add/").status_code == 403
    client.post(
        "/admin/jobs/apitoken/",
        {"action": "revoke", "_selected_action": [owner_token.token.pk]},
    )
    owner_token.token.refresh_from_db()
    assert not owner_token.token.is_active

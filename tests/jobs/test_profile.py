"""The profile page: the owner's Crypt4GH public key and API tokens."""

from __future__ import annotations

import io
from pathlib import Path

import pytest

from jobs.forms import armored_public_key
from jobs.models import ApiToken, Job, Profile
from security import vault
from security.keys import ephemeral_x25519_keypair, fingerprint
from tests.conftest import GENOMES, upload, wait_for_final

pytestmark = pytest.mark.django_db(transaction=True)

PHIX = GENOMES / "viral" / "phiX174_NC_001422.fa"


@pytest.fixture
def owner_keypair() -> tuple[bytes, bytes]:
    return ephemeral_x25519_keypair()


def save_key(client, text: str):
    return client.post("/jobs/profile/", {"action": "save-key", "public_key": text})


def test_the_profile_page_labels_every_field(owner_client):
    page = owner_client.get("/jobs/profile/").content.decode()
    assert '<label for="id_public_key">' in page and 'id="id_public_key"' in page
    assert '<label for="id_name">' in page and 'id="id_name"' in page
    assert "No key registered" in page
    assert "You have no API tokens." in page


def test_the_profile_page_needs_a_login(client):
    response = client.get("/jobs/profile/")
    assert response.status_code == 302 and response["Location"].startswith("/accounts/login/")


def test_a_registered_key_also_opens_the_archives_of_new_jobs(
    owner_client, owner, owner_keypair, inline_jobs
):
    secret_key, public_key = owner_keypair
    response = save_key(owner_client, armored_public_key(public_key))
    assert response.status_code == 302
    page = owner_client.get("/jobs/profile/").content.decode()
    assert fingerprint(public_key) in page

    job_id = upload(owner_client, PHIX).json()["job_id"]
    assert wait_for_final(owner_client, job_id)["status"] == "completed"
    job = Job.objects.get(pk=job_id)
    recipients = job.results["archive"]["recipients"]
    assert {"label": "owner", "fingerprint": fingerprint(public_key)} in recipients
    output = io.BytesIO()
    with Path(job.encrypted_path).open("rb") as archive:
        vault.decrypt_archive(archive, output, secret_key=secret_key)
    assert output.getvalue() == PHIX.read_bytes()
    assert "owner" in owner_client.get(f"/jobs/{job_id}/").content.decode()


def test_the_bare_base64_line_of_a_key_is_accepted_and_stored_armored(
    owner_client, owner, owner_keypair
):
    _, public_key = owner_keypair
    base64_line = armored_public_key(public_key).splitlines()[1]
    assert save_key(owner_client, base64_line).status_code == 302
    stored = Profile.objects.get(user=owner).crypt4gh_public_key
    assert stored.startswith("-----BEGIN CRYPT4GH PUBLIC KEY-----")


@pytest.mark.parametrize(
    "text, message",
    [
        ("", "This field is required."),
        ("not a key at all", "a Crypt4GH public key has 32 bytes"),
        ("-----BEGIN PGP PUBLIC KEY BLOCK-----\nabc\n-----END", "not a Crypt4GH public key"),
        (
            "-----BEGIN CRYPT4GH PRIVATE KEY-----\nYzRnaC12MQAEbm9uZQAEbm9uZQAg\n"
            "-----END CRYPT4GH PRIVATE KEY-----",
            "this is a private key",
        ),
        ("ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAI", "this is an SSH key"),
        ("AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA=", "low-order point"),
    ],
)
def test_a_bad_key_is_refused_with_the_reason(owner_client, owner, text, message):
    response = save_key(owner_client, text)
    assert response.status_code == 400
    assert message in response.content.decode()
    assert 'aria-invalid="true"' in response.content.decode()
    assert Profile.objects.get(user=owner).crypt4gh_public_key == ""


def test_the_key_can_be_removed(owner_client, owner, owner_keypair):
    save_key(owner_client, armored_public_key(owner_keypair[1]))
    owner_client.post("/jobs/profile/", {"action": "remove-key"})
    assert Profile.objects.get(user=owner).crypt4gh_public_key == ""


def test_a_new_token_is_shown_once_and_then_works(owner_client, owner):
    response = owner_client.post("/jobs/profile/", {"action": "create-token", "name": "pipeline"})
    assert response.status_code == 200
    assert "no-store" in response["Cache-Control"]
    page = response.content.decode()
    secret = page.split('id="new-token-value" class="monospace" type="text" value="')[1].split('"')[
        0
    ]
    assert secret.startswith("mgk_")

    again = owner_client.get("/jobs/profile/").content.decode()
    assert secret not in again
    assert "pipeline" in again and "never" in again  # listed, not yet used

    from django.test import Client

    status = Client().get(
        "/api/status/00000000-0000-4000-8000-000000000000", HTTP_AUTHORIZATION=f"Bearer {secret}"
    )
    assert status.status_code == 404  # authenticated: the job just does not exist


def test_a_token_needs_a_name(owner_client):
    response = owner_client.post("/jobs/profile/", {"action": "create-token", "name": "  "})
    assert response.status_code == 400
    assert not ApiToken.objects.exists()


def test_a_token_is_revoked_from_the_page(owner_client, owner):
    owner_client.post("/jobs/profile/", {"action": "create-token", "name": "old laptop"})
    token = ApiToken.objects.get(user=owner)
    response = owner_client.post("/jobs/profile/", {"action": "revoke-token", "token": token.pk})
    assert response.status_code == 302
    token.refresh_from_db()
    assert not token.is_active
    assert "revoked" in owner_client.get("/jobs/profile/").content.decode()


def test_nobody_revokes_another_users_token_from_the_page(client, owner, other_user):
    from jobs.tokens import api_token_create

    created = api_token_create(user=owner, name="mine")
    client.force_login(other_user)
    client.post("/jobs/profile/", {"action": "revoke-token", "token": created.token.pk})
    created.token.refresh_from_db()
    assert created.token.is_active

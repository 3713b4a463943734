"""Anyone can check a certificate: on the public page (paste or file) and with
`manage.py verify_certificate`; a tampered one fails with the exact reason, a good one passes."""

from __future__ import annotations

import hashlib
import html
import json
import os
import subprocess
import sys
from io import StringIO
from pathlib import Path

import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from django.core.files.uploadedfile import SimpleUploadedFile
from django.core.management import CommandError, call_command

from security import signing
from tests.conftest import GENOMES, upload, wait_for_final

pytestmark = pytest.mark.django_db(transaction=True)

PROJECT = Path(__file__).resolve().parents[2]
TAMPERED_SIGNATURE = "signature does not match the certificate contents"


@pytest.fixture
def certificate(owner_client, inline_jobs) -> dict:
    """A real certificate as its owner downloads it from /api/proof/<id>."""
    job_id = upload(owner_client, GENOMES / "viral" / "phiX174_NC_001422.fa").json()["job_id"]
    assert wait_for_final(owner_client, job_id)["status"] == "completed"
    document = owner_client.get(f"/api/proof/{job_id}").json()
    owner_client.logout()  # everything below is done by someone without an account
    return document


def verify_on_page(client, document=None, *, text: str | None = None) -> str:
    body = text if text is not None else json.dumps(document, indent=2)
    return html.unescape(client.post("/verify/", {"certificate": body}).content.decode())


def verify_with_cli(path: Path, *extra: str) -> str:
    out = StringIO()
    call_command("verify_certificate", str(path), *extra, stdout=out)
    return out.getvalue()


def write(tmp_path: Path, document: dict, name: str = "certificate.json") -> Path:
    path = tmp_path / name
    path.write_text(json.dumps(document, ensure_ascii=False))
    return path


def test_a_genuine_certificate_is_valid_on_the_page_and_in_the_cli(client, certificate, tmp_path):
    page = verify_on_page(client, certificate)
    assert "<h2>Valid</h2>" in page
    assert certificate["statement"] in page
    assert verify_with_cli(write(tmp_path, certificate)).startswith("valid")


def test_the_page_accepts_the_certificate_as_a_file(client, certificate):
    # The global upload handler only takes FASTA/FASTQ; this page must take a JSON file.
    file = SimpleUploadedFile("proof.json", json.dumps(certificate).encode(), "application/json")
    response = client.post("/verify/", {"certificate_file": file})
    assert response.status_code == 200
    assert "<h2>Valid</h2>" in response.content.decode()


def test_a_changed_field_fails_with_the_reason_on_the_page_and_in_the_cli(
    client, certificate, tmp_path
):
    tampered = {**certificate, "filename": "someone-else.fasta"}
    page = verify_on_page(client, tampered)
    assert "<h2>Not valid</h2>" in page
    assert TAMPERED_SIGNATURE in page
    assert "changed since this server issued it: filename" in page

    with pytest.raises(CommandError) as failure:
        verify_with_cli(write(tmp_path, tampered))
    assert str(failure.value).startswith("invalid: ")
    assert TAMPERED_SIGNATURE in str(failure.value)
    assert "filename" in str(failure.value)


def test_a_moved_deletion_time_breaks_the_signature_and_the_deletion_hash(
    client, certificate, tmp_path
):
    tampered = {**certificate, "deletion_timestamp": "2020-01-01T00:00:00.000000+00:00"}
    page = verify_on_page(client, tampered)
    assert TAMPERED_SIGNATURE in page
    assert "deletion_hash does not match SHA-256 of job_id|plaintext_sha256|deletion_timestamp" in (
        page
    )
    with pytest.raises(CommandError, match="deletion_hash does not match"):
        verify_with_cli(write(tmp_path, tampered))


def test_a_certificate_signed_by_another_key_names_both_fingerprints(client, certificate, tmp_path):
    impostor = Ed25519PrivateKey.generate()
    payload = {
        k: v for k, v in certificate.items() if k not in ("signature", "signing_key_fingerprint")
    }
    forged = signing.sign_certificate(payload, impostor)
    page = verify_on_page(client, forged)
    assert "certificate was signed by a different key" in page
    assert signing.public_key_fingerprint(impostor) in page
    with pytest.raises(CommandError, match="signed by a different key"):
        verify_with_cli(write(tmp_path, forged))

    # ...and it is valid against the key that did sign it, offline with --public-key.
    pem = tmp_path / "impostor.pem"
    pem.write_text(signing.public_key_pem(impostor))
    assert verify_with_cli(write(tmp_path, forged), "--public-key", str(pem)).startswith("valid")


def test_a_consistent_forgery_with_a_wrong_deletion_hash_is_caught(client, tmp_path):
    """Signed correctly, but the deletion hash was never SHA-256(job|sha|time)."""
    key = Ed25519PrivateKey.generate()
    payload = {
        "job_id": "3f1c2a9e-8d4b-4c61-9a57-2f0e6b1d7c35",
        "plaintext_sha256": hashlib.sha256(b">s\nACGT\n").hexdigest(),
        "deletion_timestamp": "2025-11-04T10:30:12.123456+00:00",
        "deletion_hash": "0" * 64,
    }
    pem = tmp_path / "key.pem"
    pem.write_text(signing.public_key_pem(key))
    with pytest.raises(CommandError) as failure:
        verify_with_cli(
            write(tmp_path, signing.sign_certificate(payload, key)), "--public-key", str(pem)
        )
    message = str(failure.value)
    assert "deletion_hash does not match" in message and TAMPERED_SIGNATURE not in message
    expected = hashlib.sha256(
        "3f1c2a9e-8d4b-4c61-9a57-2f0e6b1d7c35|"
        f"{payload['plaintext_sha256']}|2025-11-04T10:30:12.123456+00:00".encode()
    ).hexdigest()
    assert f"recomputed {expected}" in message


@pytest.mark.parametrize(
    "text, reason",
    [
        ("", "no certificate was given"),
        ("{not json", "not valid JSON"),
        ("[1, 2]", "the certificate is not a JSON object"),
        ("{}", "missing field 'signature'"),
        ("[" * 100_000 + "]" * 100_000, "nested too deeply"),
    ],
    ids=["empty", "not-json", "array", "empty-object", "deeply-nested"],
)
def test_input_that_is_not_a_certificate_is_explained(client, tmp_path, text, reason):
    assert reason in verify_on_page(client, text=text)
    path = tmp_path / "input.json"
    path.write_text(text)
    with pytest.raises(CommandError, match=reason):
        verify_with_cli(path)


def test_a_missing_signature_field_is_named(client, certificate):
    document = {k: v for k, v in certificate.items() if k != "signature"}
    assert "missing field 'signature'" in verify_on_page(client, document)


def test_the_qr_lookup_needs_the_signature_not_just_the_id(client, certificate):
    wrong = client.get(f"/verify/?certificate={certificate['certificate_id']}&signature=AAAA")
    assert "this server has issued no certificate with this id and signature" in (
        wrong.content.decode()
    )
    assert certificate["plaintext_sha256"] not in wrong.content.decode()


def test_the_verification_page_and_the_key_are_public_but_certificates_are_not(client, certificate):
    assert client.get("/verify/").status_code == 200
    key = client.get("/api/proof/public-key")
    assert key.status_code == 200 and b"BEGIN PUBLIC KEY" in key.content
    job_id = certificate["job_id"]
    assert client.get(f"/api/proof/{job_id}").status_code == 401
    assert client.get(f"/api/proof/{job_id}.pdf").status_code == 401
    assert client.get(f"/jobs/{job_id}/certificate/").status_code == 302
    assert client.get(f"/jobs/{job_id}/archive").status_code == 302


def test_the_page_is_protected_against_cross_site_posts(certificate):
    from django.test import Client

    strict = Client(enforce_csrf_checks=True)
    response = strict.post("/verify/", {"certificate": json.dumps(certificate)})
    assert response.status_code == 403


def test_the_cli_exits_non_zero_for_a_tampered_certificate(certificate, tmp_path):
    from security.keyring import signing_key

    pem = tmp_path / "key.pem"
    pem.write_text(signing.public_key_pem(signing_key()))  # as served at /api/proof/public-key
    env = {
        **os.environ,
        "DJANGO_SETTINGS_MODULE": "tests.settings",
        "MEDGENOMICS_DATA_DIR": str(tmp_path / "cli-data"),
    }
    command = [sys.executable, "manage.py", "verify_certificate", "--public-key", str(pem)]
    good = subprocess.run(
        [*command, str(write(tmp_path, certificate))],
        cwd=PROJECT,
        env=env,
        capture_output=True,
        text=True,
    )
    assert good.returncode == 0, good.stderr
    assert good.stdout.startswith("valid")

    tampered = write(tmp_path, {**certificate, "plaintext_length": 1}, "tampered.json")
    bad = subprocess.run(
        [*command, str(tampered)], cwd=PROJECT, env=env, capture_output=True, text=True
    )
    assert bad.returncode != 0
    assert TAMPERED_SIGNATURE in bad.stderr

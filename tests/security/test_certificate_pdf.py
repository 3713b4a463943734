"""The certificate as a PDF and as a page: every field, a QR code to the verification page,
owner-only, and rendered without fetching anything but the project's own static files."""

from __future__ import annotations

import html
import socket
import threading

import pytest

from jobs.models import Job
from security import pdf
from tests.conftest import BAD_INPUTS, GENOMES, upload, wait_for_final

pytestmark = pytest.mark.django_db(transaction=True)

PHIX = GENOMES / "viral" / "phiX174_NC_001422.fa"


@pytest.fixture
def completed_job(owner_client, inline_jobs) -> Job:
    job_id = upload(owner_client, PHIX).json()["job_id"]
    assert wait_for_final(owner_client, job_id)["status"] == "completed"
    return Job.objects.select_related("certificate").get(pk=job_id)


def flattened_values(document: dict) -> list[str]:
    """Every leaf value of a certificate as the page should print it."""
    values = []
    for value in document.values():
        if isinstance(value, dict):
            values += flattened_values(value)
        elif isinstance(value, list):
            values += [str(item) for item in value]
        elif value is not None:
            values.append(str(value))
    return values


def test_the_owner_downloads_the_certificate_as_a_pdf(owner_client, completed_job):
    response = owner_client.get(f"/api/proof/{completed_job.job_id}.pdf")
    assert response.status_code == 200
    assert response["Content-Type"] == "application/pdf"
    assert response.content.startswith(b"%PDF-")
    assert response.content.rstrip().endswith(b"%%EOF")
    assert f"certificate-{completed_job.job_id}.pdf" in response["Content-Disposition"]


def test_the_pdf_html_shows_every_field_the_statement_and_the_signature(completed_job):
    certificate = completed_job.certificate
    document = certificate.as_document()
    url = "https://medgenomics.example/verify/?" + pdf.verification_query(certificate)
    text = html.unescape(pdf.render_certificate_html(certificate, verification_url=url))

    for value in flattened_values(document):
        assert value in text, value
    assert document["statement"] in text
    assert "until" in document["statement"]  # a completed job keeps its archive for a while
    assert document["signature"] in text and document["signing_key_fingerprint"] in text
    assert document["archive"]["recipient_fingerprints"][0] in text
    assert url in text
    assert 'src="data:image/svg+xml' in text  # the QR code is inline, not fetched
    assert "size: A4" in text


def test_the_qr_code_leads_to_a_public_page_that_says_valid(client, completed_job):
    certificate = completed_job.certificate
    client.logout()
    response = client.get("/verify/?" + pdf.verification_query(certificate))
    assert response.status_code == 200
    page = response.content.decode()
    assert "<h2>Valid</h2>" in page
    assert certificate.payload["plaintext_sha256"] in page


def test_a_failed_job_has_a_pdf_that_says_no_archive_was_kept(owner_client, inline_jobs):
    job_id = upload(owner_client, BAD_INPUTS / "13_len_mismatch.fq").json()["job_id"]
    assert wait_for_final(owner_client, job_id)["status"] == "failed"
    certificate = Job.objects.get(pk=job_id).certificate
    text = html.unescape(pdf.render_certificate_html(certificate, verification_url="https://x/"))
    assert "No archive of this file was kept." in text
    assert certificate.payload["job_outcome"] == "failed" and "failed" in text
    assert owner_client.get(f"/api/proof/{job_id}.pdf").content.startswith(b"%PDF-")


def test_only_the_owner_gets_the_pdf(client, other_user, completed_job):
    path = f"/api/proof/{completed_job.job_id}.pdf"
    client.logout()  # `client` is the owner's client of the fixture
    anonymous = client.get(path)
    assert anonymous.status_code == 401
    assert anonymous.json()["error"] == "Authentication required"

    client.force_login(other_user)
    foreign = client.get(path)
    assert foreign.status_code == 404
    assert foreign.json()["message"] == "Job ID not found"
    assert client.get("/api/proof/not-a-uuid.pdf").json()["message"] == "Invalid UUID format"


def test_a_job_without_a_certificate_has_no_pdf(owner_client, owner):
    from django.utils import timezone

    job = Job.objects.create(owner=owner, filename="upload-x.fasta", received=timezone.now())
    response = owner_client.get(f"/api/proof/{job.job_id}.pdf")
    assert response.status_code == 404
    assert response.json()["message"] == "Deletion proof unavailable"


def test_the_json_proof_route_still_answers_beside_the_pdf(owner_client, completed_job):
    response = owner_client.get(f"/api/proof/{completed_job.job_id}")
    assert response.status_code == 200
    assert response.json()["job_id"] == str(completed_job.job_id)


def test_the_certificate_page_offers_pdf_print_and_every_field(owner_client, completed_job):
    response = owner_client.get(f"/jobs/{completed_job.job_id}/certificate/")
    assert response.status_code == 200
    page = html.unescape(response.content.decode())
    for value in flattened_values(completed_job.certificate.as_document()):
        assert value in page, value
    assert f"/api/proof/{completed_job.job_id}.pdf" in page
    assert 'id="print-certificate" data-print' in page  # wired by static/js/site.js
    assert "<script>" not in page.replace("<script src=", "")  # nothing inline under the CSP
    assert f"/jobs/{completed_job.job_id}/archive" in page
    assert "phiX174_NC_001422.fa" in page  # the owner sees the real name on the page


def test_the_job_page_links_the_certificate_page_and_pdf(owner_client, completed_job):
    page = owner_client.get(f"/jobs/{completed_job.job_id}/").content.decode()
    assert f"/jobs/{completed_job.job_id}/certificate/" in page
    assert f"/api/proof/{completed_job.job_id}.pdf" in page


def test_the_certificate_page_is_the_owners_only(client, other_user, completed_job):
    path = f"/jobs/{completed_job.job_id}/certificate/"
    client.logout()  # `client` is the owner's client of the fixture
    assert client.get(path).status_code == 302  # anonymous: to the login page
    client.force_login(other_user)
    assert client.get(path).status_code == 404


# --- the fetcher ------------------------------------------------------------------------


def test_the_fetcher_serves_the_vendored_fonts_and_nothing_else(settings):
    fetcher = pdf.StaticFilesFetcher()
    font = fetcher.fetch(pdf.STATIC_BASE_URL + "fonts/DejaVuSans.ttf")
    assert font.read()[:4] == b"\x00\x01\x00\x00"  # a TrueType font
    font.close()
    for url in (
        "http://example.org/logo.png",
        "file:///etc/passwd",
        pdf.STATIC_BASE_URL + "../medgenomics/settings.py",
        pdf.STATIC_BASE_URL + "fonts/../../manage.py",
        pdf.STATIC_BASE_URL + "%2e%2e/manage.py",
        pdf.STATIC_BASE_URL + "no-such-file.css",
        "https://static.medgenomics.invalid.evil.example/fonts/DejaVuSans.ttf",
    ):
        with pytest.raises(ValueError):
            fetcher.fetch(url)
    assert len(fetcher.refused) == 7


def test_rendering_never_touches_the_network():
    server = socket.socket()
    server.bind(("127.0.0.1", 0))
    server.listen(5)
    server.settimeout(0.2)
    port = server.getsockname()[1]
    connections = []

    def accept() -> None:
        try:
            connection, _ = server.accept()
            connections.append(connection)
            connection.close()
        except OSError:
            pass

    listener = threading.Thread(target=accept)
    listener.start()
    document = (
        f'<html><head><link rel="stylesheet" href="http://127.0.0.1:{port}/style.css"></head>'
        f'<body><img src="http://127.0.0.1:{port}/x.png"><p>text</p></body></html>'
    )
    try:
        assert pdf.html_to_pdf(document).startswith(b"%PDF-")
    finally:
        listener.join()
        server.close()
    assert connections == []


def test_the_qr_link_uses_the_public_address_when_configured(settings, rf):
    from types import SimpleNamespace

    from security.views import verification_url

    settings.MEDGENOMICS_PUBLIC_URL = "https://genomics.example.org/"
    certificate = SimpleNamespace(certificate_id="abc", signature="sig")
    url = verification_url(rf.get("/"), certificate)
    assert url.startswith("https://genomics.example.org/verify/?")

"""The deletion certificate as a printable page and PDF.

The certificate is rendered to HTML first (a template, testable as text), then to PDF with
WeasyPrint. WeasyPrint fetches every stylesheet, font and image through a URL fetcher; ours
serves only the project's own static files and inline ``data:`` URIs, never the network or
the file system at large, so a value in the certificate can never make the server fetch
anything (WeasyPrint 70: the fetcher is a ``URLFetcher`` subclass returning its response type).
"""

from __future__ import annotations

import json
import logging
import mimetypes
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import unquote, urlencode, urlsplit

import segno
from django.contrib.staticfiles import finders
from django.core.exceptions import SuspiciousFileOperation
from django.template.loader import render_to_string

# WeasyPrint logs every rendering step (some on import) and fontTools dozens of lines per font
# subset, all at INFO: noise in the JSON logs. Set before the import, which already logs.
for _noisy in ("weasyprint.progress", "fontTools"):
    logging.getLogger(_noisy).setLevel(logging.WARNING)

from weasyprint import HTML  # noqa: E402
from weasyprint.urls import URLFetcher, URLFetcherResponse  # noqa: E402

from security.models import DeletionCertificate  # noqa: E402

logger = logging.getLogger(__name__)

# The PDF template's base URL. ``.invalid`` never resolves (RFC 2606): even a fetcher bug could
# not reach a real host through it. Only URLs under it are served, from the static files.
STATIC_BASE_URL = "https://static.medgenomics.invalid/"
TEMPLATE_PDF = "security/certificate_pdf.html"
PDF_CONTENT_TYPE = "application/pdf"

# Labels, in reading order, of the top-level fields a certificate carries today. Fields not
# listed here are still shown (after these, under their own key), so a field added to
# certificates later can never be left out of the printed document.
FIELD_LABELS: dict[str, str] = {
    "certificate_id": "Certificate ID",
    "issuer": "Issuer",
    "issued_at": "Issued at",
    "job_id": "Job ID",
    "job_outcome": "Job outcome",
    "filename": "File (pseudonym)",
    "plaintext_sha256": "Plaintext SHA-256",
    "plaintext_length": "Plaintext length (bytes)",
    "deletion_timestamp": "Plaintext destroyed at",
    "deletion_hash": "Deletion hash",
    "hash_algorithm": "Hash algorithm",
    "deletion_hash_input": "Deletion hash input",
    "verification_method": "Verification method",
}
ARCHIVE_LABELS: dict[str, str] = {
    "format": "Format",
    "method": "Method",
    "recipient_fingerprints": "Recipient key fingerprints (SHA-256)",
    "retained_until": "Retained until",
}
# Shown in their own sections, not in the field table.
_SECTION_FIELDS = {"statement", "archive", "signature", "signing_key_fingerprint"}
# Values shown in a monospace, breakable font (hashes, ids, keys).
_CODE_FIELDS = {
    "certificate_id",
    "job_id",
    "filename",
    "plaintext_sha256",
    "deletion_hash",
    "deletion_timestamp",
    "issued_at",
    "recipient_fingerprints",
    "retained_until",
}


@dataclass(frozen=True)
class Row:
    key: str
    label: str
    values: list[str]
    code: bool


def _text(value: Any) -> str:
    if value is None:
        return "none"
    if isinstance(value, str):
        return value
    return json.dumps(value, ensure_ascii=False, sort_keys=True)


def _row(key: str, label: str, value: Any) -> Row:
    values = [_text(item) for item in value] if isinstance(value, list) else [_text(value)]
    return Row(key=key, label=label, values=values, code=key in _CODE_FIELDS)


def certificate_rows(document: dict[str, Any]) -> list[Row]:
    """The certificate's fields (statement, archive and signature aside) in reading order."""
    rows = [
        _row(key, label, document[key]) for key, label in FIELD_LABELS.items() if key in document
    ]
    rows += [
        _row(key, key, value)
        for key, value in sorted(document.items())
        if key not in FIELD_LABELS and key not in _SECTION_FIELDS
    ]
    return rows


def archive_rows(archive: dict[str, Any] | None) -> list[Row]:
    if not archive:
        return []
    rows = [
        _row(key, label, archive[key]) for key, label in ARCHIVE_LABELS.items() if key in archive
    ]
    rows += [
        _row(key, key, value) for key, value in sorted(archive.items()) if key not in ARCHIVE_LABELS
    ]
    return rows


def verification_query(certificate: DeletionCertificate) -> str:
    """Query string that lets the public verification page look this certificate up.

    It carries the signature as well as the id: only someone holding the certificate knows
    both, so the page never shows a certificate to someone who merely guesses an id.
    """
    return urlencode(
        {"certificate": str(certificate.certificate_id), "signature": certificate.signature}
    )


def qr_code_data_uri(url: str) -> str:
    """An SVG QR code of ``url`` as a data URI (no file, no network)."""
    return segno.make(url, error="m", micro=False).svg_data_uri(scale=3, border=2, dark="#000")


def certificate_context(certificate: DeletionCertificate, *, verification_url: str) -> dict:
    """Template context shared by the certificate page and its PDF."""
    document = certificate.as_document()
    return {
        "certificate": certificate,
        "document": document,
        "rows": certificate_rows(document),
        "archive": document.get("archive"),
        "archive_rows": archive_rows(document.get("archive")),
        "statement": document.get("statement", ""),
        "signature": document.get("signature", ""),
        "signing_key_fingerprint": document.get("signing_key_fingerprint", ""),
        "verification_url": verification_url,
        "qr_code": qr_code_data_uri(verification_url),
        "static_base": STATIC_BASE_URL,
    }


def render_certificate_html(certificate: DeletionCertificate, *, verification_url: str) -> str:
    """The PDF's HTML (self-contained apart from the vendored fonts)."""
    return render_to_string(
        TEMPLATE_PDF, certificate_context(certificate, verification_url=verification_url)
    )


class StaticFilesFetcher(URLFetcher):
    """Serves WeasyPrint the project's static files (under STATIC_BASE_URL) and ``data:`` URIs.

    Anything else (http(s) elsewhere, ``file:``, ``ftp:``, a path escaping the static
    directories) is refused with ValueError, which WeasyPrint logs and skips. ``refused`` lists
    what was asked for and not served.
    """

    def __init__(self) -> None:
        super().__init__(allowed_protocols={"https", "data"}, allow_redirects=False, timeout=1)
        self.refused: list[str] = []

    def fetch(self, url: str, headers: dict | None = None) -> URLFetcherResponse:
        if url.startswith("data:"):
            # urllib's DataHandler decodes it in memory; no other handler is reached.
            return super().fetch(url, headers)
        path = self._static_path(url)
        if path is None:
            self.refused.append(url)
            raise ValueError(f"not one of the project's static files: {url[:200]}")
        content_type = mimetypes.guess_type(path.name)[0] or "application/octet-stream"
        return URLFetcherResponse(
            url, path.read_bytes(), headers={"Content-Type": content_type}, status=200
        )

    @staticmethod
    def _static_path(url: str) -> Path | None:
        if not url.startswith(STATIC_BASE_URL):
            return None
        parts = urlsplit(url)
        relative = unquote(parts.path).lstrip("/")
        if not relative or parts.query or "\\" in relative or "\x00" in relative:
            return None
        if any(segment in ("", ".", "..") for segment in relative.split("/")):
            return None
        try:
            found = finders.find(relative)
        except SuspiciousFileOperation:
            return None
        return Path(found) if found else None


def html_to_pdf(html: str) -> bytes:
    """Render HTML to PDF bytes, fetching nothing but static files and data URIs."""
    fetcher = StaticFilesFetcher()
    pdf = HTML(string=html, base_url=STATIC_BASE_URL, url_fetcher=fetcher).write_pdf()
    if fetcher.refused:
        logger.warning("certificate PDF referenced resources that were not fetched")
    return pdf


def certificate_pdf(certificate: DeletionCertificate, *, verification_url: str) -> bytes:
    """The printable A4 certificate as PDF bytes."""
    return html_to_pdf(render_certificate_html(certificate, verification_url=verification_url))

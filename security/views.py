"""Certificate pages and downloads, the public verification page, and the signing key.

Public without login: the verification page and the signing key (plus the login page).
Everything else is the owner's only; another user's job answers 404, as if it did not exist.
"""

from __future__ import annotations

import hashlib
import hmac
import io
import json
import uuid
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey
from django.conf import settings
from django.contrib.auth.decorators import login_required
from django.core.files.uploadedfile import InMemoryUploadedFile
from django.core.files.uploadhandler import FileUploadHandler
from django.db import DatabaseError
from django.http import FileResponse, Http404, HttpRequest, HttpResponse
from django.shortcuts import render
from django.urls import reverse
from django.utils import timezone
from django.utils.cache import patch_cache_control
from django.views.decorators.csrf import csrf_exempt, csrf_protect
from django.views.decorators.http import require_GET, require_http_methods, require_safe

from jobs import errors, selectors, services
from jobs.api import api_view
from jobs.models import Job, JobStatus
from security import pdf, signing
from security.keyring import signing_key
from security.models import DeletionCertificate

# A certificate is about 2 KB; anything far bigger is not one.
MAX_CERTIFICATE_BYTES = 64 * 1024
_HASHED_FIELDS = ("job_id", "plaintext_sha256", "deletion_timestamp")
_MISSING = object()


@require_GET
def public_key(request: HttpRequest) -> HttpResponse:
    """The certificate signing key (PEM), public so anyone can verify a certificate."""
    response = HttpResponse(
        signing.public_key_pem(signing_key().public_key()), content_type="application/x-pem-file"
    )
    response["X-Key-Fingerprint"] = signing.public_key_fingerprint(signing_key().public_key())
    return response


# --- Checking a certificate ---------------------------------------------------------------


@dataclass(frozen=True)
class CertificateVerdict:
    """The outcome of checking a certificate: valid, or every reason it is not."""

    valid: bool
    reasons: list[str] = field(default_factory=list)
    document: dict[str, Any] | None = None

    @property
    def summary(self) -> str:
        if self.valid:
            return "valid: the signature is valid and the deletion hash recomputes"
        return "invalid: " + "; ".join(self.reasons)


def parse_certificate(text: str | bytes) -> tuple[dict[str, Any] | None, str | None]:
    """(document, None) for a JSON object, else (None, why it is not a certificate)."""
    if isinstance(text, bytes):
        try:
            text = text.decode("utf-8-sig")
        except UnicodeDecodeError:
            return None, "the certificate is not UTF-8 text"
    if not text.strip():
        return None, "no certificate was given"
    try:
        document = json.loads(text)
    except json.JSONDecodeError as exc:
        return None, f"not valid JSON: {exc.msg} (line {exc.lineno}, column {exc.colno})"
    except RecursionError:
        return None, "not a certificate: the JSON is nested too deeply"
    if not isinstance(document, dict):
        return None, "the certificate is not a JSON object"
    return document, None


def _deletion_hash_problem(document: dict[str, Any]) -> str | None:
    """Why ``deletion_hash`` is not SHA-256("job_id|plaintext_sha256|deletion_timestamp"),
    computed over the texts exactly as they stand in the certificate (as an offline verifier
    would, with ``printf '%s|%s|%s' … | sha256sum``)."""
    for name in (*_HASHED_FIELDS, "deletion_hash"):
        if name not in document:
            return f"missing field '{name}', needed to recompute the deletion hash"
        if not isinstance(document[name], str):
            return f"field '{name}' is not a string"
    text = "|".join(document[name] for name in _HASHED_FIELDS)
    recomputed = hashlib.sha256(text.encode("utf-8")).hexdigest()
    if not hmac.compare_digest(recomputed, document["deletion_hash"]):
        return (
            "deletion_hash does not match SHA-256 of job_id|plaintext_sha256|deletion_timestamp "
            f"(recomputed {recomputed}, the certificate says {document['deletion_hash']})"
        )
    return None


def check_certificate(document: Any, public_key: Ed25519PublicKey) -> CertificateVerdict:
    """Check the Ed25519 signature against ``public_key`` and recompute the deletion hash.

    Pure (no database): the page and ``manage.py verify_certificate`` both call it. Every
    failing check is reported, signature first.
    """
    if not isinstance(document, dict):
        return CertificateVerdict(False, ["the certificate is not a JSON object"])
    reasons = []
    try:
        signature = signing.verify(document, public_key)
    except RecursionError:
        return CertificateVerdict(False, ["not a certificate: the JSON is nested too deeply"])
    if not signature.valid:
        reasons.append(signature.reason)
    hash_problem = _deletion_hash_problem(document)
    if hash_problem:
        reasons.append(hash_problem)
    return CertificateVerdict(not reasons, reasons, document)


def issued_certificate(certificate_id: Any, signature: Any) -> DeletionCertificate | None:
    """The stored certificate with this id *and* signature (both, so that knowing an id alone
    reveals nothing); None if there is none or the database cannot say."""
    if not isinstance(certificate_id, str) or not isinstance(signature, str):
        return None
    try:
        certificate = DeletionCertificate.objects.get(pk=uuid.UUID(certificate_id))
    except (ValueError, DeletionCertificate.DoesNotExist, DatabaseError):
        return None
    if not hmac.compare_digest(certificate.signature.encode(), signature.encode()):
        return None
    return certificate


def differences_from_issued(document: dict[str, Any]) -> list[str]:
    """Names of the fields that differ from the certificate this server issued under the same
    id and signature (a holder of the original learns nothing new from them)."""
    issued = issued_certificate(document.get("certificate_id"), document.get("signature"))
    if issued is None:
        return []
    original = issued.as_document()
    return sorted(
        name
        for name in original.keys() | document.keys()
        if original.get(name, _MISSING) != document.get(name, _MISSING)
    )


def explain(document: dict[str, Any], public_key: Ed25519PublicKey) -> CertificateVerdict:
    """``check_certificate``, plus which fields were changed when this server issued it."""
    verdict = check_certificate(document, public_key)
    if verdict.valid:
        return verdict
    changed = differences_from_issued(document)
    if not changed:
        return verdict
    note = "changed since this server issued it: " + ", ".join(changed)
    return CertificateVerdict(False, [*verdict.reasons, note], document)


# --- Public verification page -------------------------------------------------------------


class CertificateUploadHandler(FileUploadHandler):
    """Keeps an uploaded certificate in memory, up to MAX_CERTIFICATE_BYTES.

    Replaces the global encrypting handler for this page only: a certificate is not a
    sequence file, and must not be refused as one.
    """

    def new_file(self, *args, **kwargs) -> None:
        super().new_file(*args, **kwargs)
        self.buffer = io.BytesIO()

    def receive_data_chunk(self, raw_data: bytes, start: int) -> None:
        if self.buffer.tell() + len(raw_data) <= MAX_CERTIFICATE_BYTES:
            self.buffer.write(raw_data)
        return None  # stored (or dropped as too large); no other handler sees it

    def file_complete(self, file_size: int) -> InMemoryUploadedFile:
        self.buffer.seek(0)
        return InMemoryUploadedFile(
            self.buffer,
            self.field_name,
            self.file_name,
            self.content_type,
            file_size,  # the real size, so an oversize file is recognised
            self.charset,
            self.content_type_extra,
        )


@csrf_exempt
@require_http_methods(["GET", "POST"])
def verify(request: HttpRequest) -> HttpResponse:
    """Public: paste or upload a certificate JSON, get "valid" or every reason it is not.

    The upload handlers can only be swapped before anything reads ``request.POST``, which the
    CSRF middleware would do first; so CSRF is exempted at the middleware and checked right
    here instead, after the swap (the pattern Django's documentation gives).
    """
    request.upload_handlers = [CertificateUploadHandler(request)]
    return _verify_protected(request)


@csrf_protect
def _verify_protected(request: HttpRequest) -> HttpResponse:
    context: dict[str, Any] = {
        "verdict": None,
        "submitted": "",
        "key_fingerprint": signing.public_key_fingerprint(signing_key().public_key()),
    }
    status = 200
    if request.method == "POST":
        upload = request.FILES.get("certificate_file")
        if upload is not None and upload.size:
            if upload.size > MAX_CERTIFICATE_BYTES:
                text: str | bytes = ""
                problem = f"the file is larger than {MAX_CERTIFICATE_BYTES // 1024} KB"
            else:
                text, problem = upload.read(), None
        else:
            text, problem = request.POST.get("certificate", ""), None
        document = None
        if problem is None:
            document, problem = parse_certificate(text)
        if document is None:
            context["verdict"] = CertificateVerdict(False, [problem or "no certificate was given"])
            status = 400
        else:
            context["verdict"] = explain(document, signing_key().public_key())
        if isinstance(text, str) and len(text) <= MAX_CERTIFICATE_BYTES:
            context["submitted"] = text
    elif request.GET.get("certificate"):
        # The certificate's QR code lands here: look up what this server issued.
        issued = issued_certificate(request.GET.get("certificate"), request.GET.get("signature"))
        if issued is None:
            context["verdict"] = CertificateVerdict(
                False, ["this server has issued no certificate with this id and signature"]
            )
        else:
            document = issued.as_document()
            context["verdict"] = check_certificate(document, signing_key().public_key())
            context["submitted"] = json.dumps(document, indent=2, ensure_ascii=False)
    return render(request, "security/verify.html", context, status=status)


# --- Owner's certificate page, PDF and archive ------------------------------------------


def _job_or_404(request: HttpRequest, job_id: str) -> Job:
    try:
        return selectors.job_for_user(request.user, job_id)
    except errors.JobError as error:
        raise Http404(error.kind.message) from error


def _certificate(job: Job) -> DeletionCertificate:
    try:
        return job.certificate
    except DeletionCertificate.DoesNotExist as exc:
        raise errors.JobError(errors.PROOF_UNAVAILABLE) from exc


def verification_url(request: HttpRequest, certificate: DeletionCertificate) -> str:
    """Absolute URL of the public verification page for this certificate (its QR code).

    MEDGENOMICS_PUBLIC_URL names the site as the world reaches it (behind a proxy the request's
    own host is an internal one); without it, the request's host is used."""
    public = settings.MEDGENOMICS_PUBLIC_URL
    path = reverse("security:verify")
    page = public.rstrip("/") + path if public else request.build_absolute_uri(path)
    return f"{page}?{pdf.verification_query(certificate)}"


def archive_available(job: Job, *, now: datetime | None = None) -> bool:
    """The owner may download the archive while the job is completed and within retention."""
    now = now or timezone.now()
    return (
        job.status == JobStatus.COMPLETED
        and bool(job.encrypted_path)
        and (job.archive_expires is None or job.archive_expires > now)
    )


@require_GET
@api_view
def certificate_pdf(request: HttpRequest, job_id: str) -> HttpResponse:
    """``GET /api/proof/<id>.pdf``: the signed certificate as a printable A4 PDF."""
    job = selectors.job_for_user(request.user, job_id)
    certificate = _certificate(job)
    body = pdf.certificate_pdf(certificate, verification_url=verification_url(request, certificate))
    response = HttpResponse(body, content_type=pdf.PDF_CONTENT_TYPE)
    response["Content-Disposition"] = f'attachment; filename="certificate-{job.job_id}.pdf"'
    patch_cache_control(response, private=True)
    return response


@login_required
@require_GET
def certificate_page(request: HttpRequest, job_id: str) -> HttpResponse:
    """The certificate for people: every field, QR code, PDF download and print."""
    job = _job_or_404(request, job_id)
    try:
        certificate = _certificate(job)
    except errors.JobError as error:
        raise Http404(error.kind.message) from error
    archive_results = job.results.get("archive") or {}
    context = {
        **pdf.certificate_context(
            certificate, verification_url=verification_url(request, certificate)
        ),
        "job": job,
        "original_filename": services.job_original_filename(job),
        "archive_available": archive_available(job),
        "destroyed_at": archive_results.get("destroyed_at"),
        "owner_is_recipient": any(
            recipient.get("label") == "owner" for recipient in archive_results.get("recipients", [])
        ),
    }
    return render(request, "security/certificate.html", context)


@login_required
@require_safe
def archive_download(request: HttpRequest, job_id: str) -> FileResponse:
    """The owner's encrypted archive (Crypt4GH of zstd of the original bytes), streamed.

    It opens with a recipient's Crypt4GH secret key: ``crypt4gh decrypt --sk KEY < FILE |
    zstd -d``. 404 unless the job is completed, within retention, and its archive exists.
    """
    job = _job_or_404(request, job_id)
    if not archive_available(job):
        raise Http404("No archive is available for this job")
    try:
        handle = open(job.encrypted_path, "rb")  # noqa: SIM115 - FileResponse closes it
    except FileNotFoundError as exc:
        raise Http404("No archive is available for this job") from exc
    response = FileResponse(
        handle,
        as_attachment=True,
        filename=f"{job.filename}.zst.c4gh",
        content_type="application/octet-stream",
    )
    patch_cache_control(response, private=True, no_store=True)
    return response

"""The JSON API (DESIGN.md, "API"). Views parse, call one service or selector, and answer."""

from __future__ import annotations

import functools

from django.http import HttpRequest, JsonResponse
from django.views.decorators.csrf import csrf_exempt, csrf_protect
from django.views.decorators.http import require_GET, require_POST

from jobs import errors, selectors, services
from jobs.models import JobStatus
from jobs.tokens import api_token_user
from jobs.upload import StagedUpload
from security.models import DeletionCertificate


def api_view(view):
    """Authenticate (session or ``Authorization: Bearer <token>``), and turn a JobError into
    the matrix's JSON body.

    CSRF protects ambient credentials: a browser sends the session cookie by itself, so a
    session-authenticated request must carry the CSRF token. A bearer token is never sent by a
    browser on its own, so a token-authenticated request needs none. The wrapper is therefore
    exempt from the middleware and applies the CSRF check itself to every request that is not
    token-authenticated. Authentication comes first: an anonymous request gets 401 without its
    body being read.
    """
    protected = csrf_protect(view)

    @functools.wraps(view)
    def wrapper(request: HttpRequest, *args, **kwargs):
        authorization = request.headers.get("Authorization", "")
        scheme, _, credentials = authorization.partition(" ")
        if scheme.lower() == "bearer":
            user = api_token_user(credentials.strip())
            if user is None:
                return errors.error_response(
                    errors.AUTH_REQUIRED, detail="the API token is unknown or revoked"
                )
            request.user = user
            handler = view
        elif request.user.is_authenticated:
            handler = protected
        else:
            return errors.error_response(errors.AUTH_REQUIRED)
        try:
            return handler(request, *args, **kwargs)
        except errors.JobError as error:
            headers = {"Retry-After": "60"} if error.kind is errors.TOO_MANY_UPLOADS else None
            job_id = kwargs.get("job_id") if error.kind is not errors.INVALID_UUID else None
            return errors.error_response(
                error.kind, detail=error.detail, job_id=job_id, headers=headers
            )

    return csrf_exempt(wrapper)


def staged_uploads(request: HttpRequest) -> list[StagedUpload]:
    return [
        f
        for name in request.FILES
        for f in request.FILES.getlist(name)
        if isinstance(f, StagedUpload)
    ]


def submit_upload(request: HttpRequest):
    """Shared by the API and the upload page: the ``file`` field becomes a job; any other
    uploaded field is destroyed unread."""
    wanted = request.FILES.get("file")
    for other in staged_uploads(request):
        if other is not wanted:
            other.discard()
    if not isinstance(wanted, StagedUpload):
        raise errors.JobError(errors.NO_FILE)
    return services.job_submit(
        owner=request.user, staged=wanted, source_ip=request.META.get("REMOTE_ADDR")
    )


@require_POST
@api_view
def upload(request: HttpRequest) -> JsonResponse:
    job = submit_upload(request)
    return JsonResponse({"job_id": str(job.job_id), "status": job.status}, status=202)


@require_GET
@api_view
def status(request: HttpRequest, job_id: str) -> JsonResponse:
    job = selectors.job_for_user(request.user, job_id)
    return JsonResponse(selectors.status_document(job))


@require_GET
@api_view
def result(request: HttpRequest, job_id: str) -> JsonResponse:
    job = selectors.job_for_user(request.user, job_id)
    if job.status == JobStatus.FAILED:
        kind = next(
            (k for k in errors.ALL_KINDS.values() if k.message == job.error_message),
            errors.ANALYSIS_FAILED,
        )
        return errors.error_response(kind, detail=job.error_detail or None, job_id=str(job.job_id))
    if job.status not in (JobStatus.COMPLETED, JobStatus.DELETED):
        return JsonResponse(selectors.status_document(job), status=202)
    return JsonResponse(selectors.result_document(job))


@require_GET
@api_view
def proof(request: HttpRequest, job_id: str) -> JsonResponse:
    job = selectors.job_for_user(request.user, job_id)
    try:
        certificate = job.certificate
    except DeletionCertificate.DoesNotExist as exc:
        raise errors.JobError(errors.PROOF_UNAVAILABLE) from exc
    return JsonResponse(certificate.as_document(), json_dumps_params={"ensure_ascii": False})

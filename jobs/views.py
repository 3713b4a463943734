"""Pages. Each loads through one permission-checking selector, calls one service, renders."""

from __future__ import annotations

from django.conf import settings
from django.contrib import messages
from django.contrib.auth.decorators import login_required
from django.contrib.auth.views import PasswordChangeView
from django.core.paginator import Paginator
from django.http import Http404, HttpRequest, HttpResponse, HttpResponseBadRequest
from django.shortcuts import redirect, render
from django.utils.cache import patch_cache_control
from django.views.decorators.http import require_http_methods

from jobs import charts, errors, selectors, services, tokens
from jobs.api import submit_upload
from jobs.forms import ApiTokenForm, Crypt4GHPublicKeyForm
from jobs.models import Job, JobStatus, Profile
from security.keys import crypt4gh_public_key_from_text, fingerprint

PAGE_SIZE = 20


def _job_or_404(request: HttpRequest, job_id: str):
    try:
        return selectors.job_for_user(request.user, job_id)
    except errors.JobError as error:
        raise Http404(error.kind.message) from error


@login_required
@require_http_methods(["GET", "POST"])
def upload(request: HttpRequest) -> HttpResponse:
    """The upload page; posting the form without JavaScript lands here too."""
    if request.method == "POST":
        try:
            job = submit_upload(request)
        except errors.JobError as error:
            context = {
                "error": error.kind.message,
                "detail": error.detail,
                "max_bytes": settings.MEDGENOMICS_MAX_UPLOAD_BYTES,
            }
            return render(request, "jobs/upload.html", context, status=error.kind.status)
        return redirect("jobs:detail", job_id=job.job_id)
    return render(request, "jobs/upload.html", {"max_bytes": settings.MEDGENOMICS_MAX_UPLOAD_BYTES})


@login_required
def job_list(request: HttpRequest) -> HttpResponse:
    status = request.GET.get("status") or None
    if status not in {choice for choice, _ in JobStatus.choices}:
        status = None
    page = Paginator(selectors.jobs_of_user(request.user, status=status), PAGE_SIZE).get_page(
        request.GET.get("page")
    )
    rows = [(job, services.job_original_filename(job)) for job in page.object_list]
    context = {"page": page, "rows": rows, "status": status, "statuses": JobStatus.choices}
    return render(request, "jobs/list.html", context)


def live_context(job: Job) -> dict:
    """What the live fragments need; shared by the page and the websocket consumer, so that a
    pushed fragment is exactly what a reload would show."""
    return {
        "job": job,
        "result": selectors.result_document(job),
        "charts": charts.job_charts(job),
    }


@login_required
def job_detail(request: HttpRequest, job_id: str) -> HttpResponse:
    job = _job_or_404(request, job_id)
    context = {**live_context(job), "original_filename": services.job_original_filename(job)}
    return render(request, "jobs/detail.html", context)


@login_required
@require_http_methods(["GET", "POST"])
def profile(request: HttpRequest) -> HttpResponse:
    """The user's Crypt4GH public key and API tokens. Each form posts an ``action``."""
    user_profile, _ = Profile.objects.get_or_create(user=request.user)
    key_form = Crypt4GHPublicKeyForm()
    token_form = ApiTokenForm()
    new_token = None
    status = 200
    action = request.POST.get("action")
    if action == "save-key":
        key_form = Crypt4GHPublicKeyForm(request.POST)
        if key_form.is_valid():
            user_profile.crypt4gh_public_key = key_form.cleaned_data["public_key"]
            user_profile.save(update_fields=["crypt4gh_public_key"])
            messages.success(
                request, "Your Crypt4GH public key is saved: new archives open with it."
            )
            return redirect("jobs:profile")
        status = 400
    elif action == "remove-key":
        user_profile.crypt4gh_public_key = ""
        user_profile.save(update_fields=["crypt4gh_public_key"])
        messages.success(
            request, "Your public key is removed: new archives are not encrypted to it."
        )
        return redirect("jobs:profile")
    elif action == "create-token":
        token_form = ApiTokenForm(request.POST)
        if token_form.is_valid():
            # Shown in this response only (never stored, never put in a redirect or the session).
            new_token = tokens.api_token_create(
                user=request.user, name=token_form.cleaned_data["name"]
            )
            token_form = ApiTokenForm()
        else:
            status = 400
    elif action == "revoke-token":
        try:
            token_id = int(request.POST.get("token", ""))
        except ValueError:
            token_id = 0
        if tokens.api_token_revoke(user=request.user, token_id=token_id):
            messages.success(request, "The token is revoked: it no longer opens the API.")
        return redirect("jobs:profile")
    elif request.method == "POST":
        return HttpResponseBadRequest("Unknown action")
    context = {
        "key_form": key_form,
        "token_form": token_form,
        "new_token": new_token,
        "api_tokens": tokens.tokens_of_user(request.user),
        "public_key": user_profile.crypt4gh_public_key,
        "public_key_fingerprint": _fingerprint_or_none(user_profile.crypt4gh_public_key),
    }
    response = render(request, "jobs/profile.html", context, status=status)
    if new_token is not None:
        patch_cache_control(response, no_store=True, private=True)
    return response


def _fingerprint_or_none(public_key_text: str) -> str | None:
    if not public_key_text.strip():
        return None
    try:
        return fingerprint(crypt4gh_public_key_from_text(public_key_text))
    except ValueError:
        return None


class OneTimePasswordChangeView(PasswordChangeView):
    """Django's password change, which also clears the one-time-password flag."""

    def form_valid(self, form):
        response = super().form_valid(form)
        Profile.objects.filter(user=self.request.user).update(must_change_password=False)
        return response

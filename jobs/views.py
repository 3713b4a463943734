"""Pages. Each loads through one permission-checking selector, calls one service, renders."""

from __future__ import annotations

from django.contrib.auth.decorators import login_required
from django.contrib.auth.views import PasswordChangeView
from django.core.paginator import Paginator
from django.http import Http404, HttpRequest, HttpResponse
from django.shortcuts import redirect, render
from django.views.decorators.http import require_http_methods

from jobs import errors, selectors, services
from jobs.api import submit_upload
from jobs.models import JobStatus, Profile

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
            context = {"error": error.kind.message, "detail": error.detail}
            return render(request, "jobs/upload.html", context, status=error.kind.status)
        return redirect("jobs:detail", job_id=job.job_id)
    return render(request, "jobs/upload.html", {})


@login_required
def job_list(request: HttpRequest) -> HttpResponse:
    status = request.GET.get("status") or None
    if status not in {choice for choice, _ in JobStatus.choices}:
        status = None
    page = Paginator(selectors.jobs_of_user(request.user, status=status), PAGE_SIZE).get_page(
        request.GET.get("page")
    )
    context = {"page": page, "status": status, "statuses": JobStatus.choices}
    return render(request, "jobs/list.html", context)


@login_required
def job_detail(request: HttpRequest, job_id: str) -> HttpResponse:
    job = _job_or_404(request, job_id)
    context = {
        "job": job,
        "original_filename": services.job_original_filename(job),
        "result": selectors.result_document(job),
        "certificate": getattr(job, "certificate", None),
    }
    return render(request, "jobs/detail.html", context)


class OneTimePasswordChangeView(PasswordChangeView):
    """Django's password change, which also clears the one-time-password flag."""

    def form_valid(self, form):
        response = super().form_valid(form)
        Profile.objects.filter(user=self.request.user).update(must_change_password=False)
        return response

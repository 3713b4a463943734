"""Run the whole pipeline on a local file, synchronously, and print the result JSON."""

from __future__ import annotations

import json
from pathlib import Path

from django.contrib.auth import get_user_model
from django.core.management.base import BaseCommand, CommandError

from jobs import errors, selectors, services
from jobs.models import JobStatus
from jobs.runner import run_until_settled
from jobs.upload import stage_stream


class Command(BaseCommand):
    help = "Process FILE as USER through the same pipeline as an upload; print the result JSON."

    def add_arguments(self, parser) -> None:
        parser.add_argument("file", type=Path)
        parser.add_argument("--user", required=True, help="user name of the job's owner")

    def handle(self, *args, file: Path, user: str, **options) -> None:
        try:
            owner = get_user_model().objects.get(username=user)
        except get_user_model().DoesNotExist as exc:
            raise CommandError(f"no user named {user!r}") from exc
        try:
            with file.open("rb") as source:
                staged = stage_stream(source, name=file.name)
        except OSError as exc:
            raise CommandError(f"cannot read {file}: {exc.strerror}") from exc
        try:
            with self._inline_runner():
                job = services.job_submit(owner=owner, staged=staged, source_ip=None)
        except errors.JobError as error:
            self._fail(errors.error_body(error.kind, detail=error.detail))
        run_until_settled(job.job_id)
        job.refresh_from_db()
        if job.status != JobStatus.COMPLETED:
            self._fail(selectors.status_document(job))
        self.stdout.write(json.dumps(selectors.result_document(job), indent=2, ensure_ascii=False))

    def _fail(self, body: dict) -> None:
        self.stderr.write(json.dumps(body, indent=2, ensure_ascii=False))
        raise CommandError(body.get("message") or body.get("error"))

    @staticmethod
    def _inline_runner():
        """The command runs the job itself, after submit, instead of handing it to a pool."""
        from django.test.utils import override_settings

        return override_settings(
            MEDGENOMICS_JOB_RUNNER="none", MEDGENOMICS_UPLOADS_PER_MINUTE=10**9
        )

from __future__ import annotations

import json
import uuid

from django.contrib import admin, messages
from django.utils import timezone
from django.utils.html import format_html

from jobs.models import ApiToken, Job, Profile

# Never shown, even read-only: the wrapped staging key and the sealed original file name.
_HIDDEN_JOB_FIELDS = ("wrapped_key", "original_filename_sealed")


def _pretty_json(value) -> str:
    if value in (None, {}, []):
        return "—"
    return format_html("<pre>{}</pre>", json.dumps(value, indent=2, ensure_ascii=False))


@admin.register(Job)
class JobAdmin(admin.ModelAdmin):
    list_display = (
        "job_id",
        "owner",
        "status",
        "progress",
        "received",
        "file_format",
        "species",
        "sequence_length",
        "gc_content",
        "attempts",
    )
    list_filter = ("status", "received", "completed", "file_format", "ids_passed")
    search_fields = ("job_id", "owner__username")
    search_help_text = "A job id (whole, or its first characters) or the owner's user name."
    date_hierarchy = "received"
    list_select_related = ("owner",)
    ordering = ("-received",)
    # Results are the pipeline's: admins read them, never edit them.
    exclude = _HIDDEN_JOB_FIELDS
    readonly_fields = [
        *(
            field.name
            for field in Job._meta.fields
            if field.name not in (*_HIDDEN_JOB_FIELDS, "results", "stages", "markers")
        ),
        "stages_table",
        "results_json",
        "markers_json",
    ]
    fieldsets = (
        (None, {"fields": ("job_id", "owner", "status", "progress", "message", "attempts")}),
        (
            "Upload",
            {
                "fields": (
                    "filename",
                    "file_format",
                    "upload_size",
                    "file_sha256",
                    "received",
                    "completed",
                    "source_ip",
                    "heartbeat",
                )
            },
        ),
        ("Stages", {"fields": ("stages_table", "processing_time_ms", "policy_version")}),
        (
            "Results",
            {
                "fields": (
                    "species",
                    "gc_content",
                    "quality_score",
                    "sequence_length",
                    "k_mer_count",
                    "markers_json",
                    "results_json",
                )
            },
        ),
        (
            "Security",
            {"fields": ("ids_passed", "aml_passed", "security_score")},
        ),
        (
            "Archive and deletion",
            {
                "fields": (
                    "encryption_method",
                    "encryption_key_hash",
                    "encrypted_path",
                    "archive_size",
                    "compression_ratio",
                    "archive_expires",
                    "staging_path",
                    "deletion_timestamp",
                    "deletion_hash",
                )
            },
        ),
        (
            "Failure",
            {
                "classes": ("collapse",),
                "fields": ("error_message", "error_detail", "error_status_code"),
            },
        ),
        ("Bookkeeping", {"classes": ("collapse",), "fields": ("created_at", "updated_at")}),
    )

    def has_add_permission(self, request) -> bool:
        return False

    def has_change_permission(self, request, obj=None) -> bool:
        # The change page stays viewable (Django shows it read-only); nothing can be saved.
        return False

    def get_search_results(self, request, queryset, search_term):
        """A whole job id (with or without hyphens) is looked up by primary key; anything else
        (part of an id, a user name) goes through the usual search. Django strips hyphens from
        the search text on databases that store UUIDs as hex, so pasted ids match there too."""
        try:
            return queryset.filter(pk=uuid.UUID(search_term.strip())), False
        except ValueError:
            return super().get_search_results(request, queryset, search_term)

    @admin.display(description="Stages")
    def stages_table(self, job: Job) -> str:
        if not job.stages:
            return "—"
        rows = format_html("<tr><th>Stage</th><th>Status</th><th>Duration</th></tr>")
        for stage in job.stages:
            duration = stage.get("duration_ms")
            rows += format_html(
                "<tr><td>{}</td><td>{}</td><td>{}</td></tr>",
                stage.get("label", stage.get("name")),
                stage.get("status"),
                "—" if duration is None else f"{duration} ms",
            )
        return format_html("<table>{}</table>", rows)

    @admin.display(description="Results (JSON)")
    def results_json(self, job: Job) -> str:
        return _pretty_json(job.results)

    @admin.display(description="Markers (JSON)")
    def markers_json(self, job: Job) -> str:
        if job.markers is None:
            return "not run"
        return _pretty_json(job.markers)


@admin.register(Profile)
class ProfileAdmin(admin.ModelAdmin):
    list_display = ("user", "must_change_password", "has_public_key")
    search_fields = ("user__username",)
    list_select_related = ("user",)

    @admin.display(boolean=True, description="Crypt4GH key")
    def has_public_key(self, profile: Profile) -> bool:
        return bool(profile.crypt4gh_public_key.strip())


@admin.register(ApiToken)
class ApiTokenAdmin(admin.ModelAdmin):
    """Tokens are created by their owners (shown once); admins see and revoke them."""

    list_display = ("name", "user", "created", "last_used", "revoked")
    list_filter = ("revoked", "created", "last_used")
    search_fields = ("name", "user__username")
    list_select_related = ("user",)
    readonly_fields = ("user", "name", "created", "last_used", "revoked")
    exclude = ("token_hash",)
    actions = ("revoke",)

    def has_add_permission(self, request) -> bool:
        return False

    @admin.action(description="Revoke the selected tokens", permissions=["change"])
    def revoke(self, request, queryset) -> None:
        count = queryset.filter(revoked__isnull=True).update(revoked=timezone.now())
        self.message_user(request, f"{count} token(s) revoked.", messages.SUCCESS)

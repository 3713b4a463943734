from django.contrib import admin

from jobs.models import Job, Profile


@admin.register(Job)
class JobAdmin(admin.ModelAdmin):
    list_display = (
        "job_id",
        "owner",
        "status",
        "received",
        "species",
        "sequence_length",
        "gc_content",
    )
    list_filter = ("status", "received", "file_format")
    search_fields = ("job_id",)
    date_hierarchy = "received"
    # Results are the pipeline's: admins read them, never edit them.
    exclude = ("wrapped_key", "original_filename_sealed")
    readonly_fields = [
        field.name
        for field in Job._meta.fields
        if field.name not in ("wrapped_key", "original_filename_sealed")
    ]

    def has_add_permission(self, request) -> bool:
        return False


@admin.register(Profile)
class ProfileAdmin(admin.ModelAdmin):
    list_display = ("user", "must_change_password")

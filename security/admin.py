from django.contrib import admin

from security.models import DeletionCertificate


@admin.register(DeletionCertificate)
class DeletionCertificateAdmin(admin.ModelAdmin):
    list_display = ("certificate_id", "job", "issued_at", "signing_key_fingerprint")
    search_fields = ("certificate_id", "job__job_id")
    readonly_fields = (
        "certificate_id",
        "job",
        "payload",
        "signature",
        "signing_key_fingerprint",
        "issued_at",
    )

    def has_add_permission(self, request) -> bool:
        return False

    def has_change_permission(self, request, obj=None) -> bool:
        return False

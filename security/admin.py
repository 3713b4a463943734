from django.contrib import admin

from security.models import BlockedAddress, DeletionCertificate, SecurityEvent, SecurityPolicy


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

    # A signed document is never edited or made by hand.
    def has_add_permission(self, request) -> bool:
        return False

    def has_change_permission(self, request, obj=None) -> bool:
        return False

    def has_delete_permission(self, request, obj=None) -> bool:
        return False


@admin.register(SecurityEvent)
class SecurityEventAdmin(admin.ModelAdmin):
    list_display = ("occurred_at", "threat_type", "pattern", "stage", "source_ip", "user", "job")
    list_filter = ("threat_type", "stage", "occurred_at")
    search_fields = ("source_ip", "job__job_id", "threat_type")
    date_hierarchy = "occurred_at"
    readonly_fields = [field.name for field in SecurityEvent._meta.fields]

    def has_add_permission(self, request) -> bool:
        return False


@admin.register(BlockedAddress)
class BlockedAddressAdmin(admin.ModelAdmin):
    list_display = ("address", "reason", "blocked_at", "expires_at")
    search_fields = ("address",)
    list_filter = ("expires_at",)


@admin.register(SecurityPolicy)
class SecurityPolicyAdmin(admin.ModelAdmin):
    list_display = ("version", "active", "source", "created_at")
    list_filter = ("active", "source")

    def get_readonly_fields(self, request, obj=None):
        # Jobs record the version they ran under: a stored version's numbers never change.
        # Admins can switch which version is active, or add a new version.
        if obj is None:
            return ("created_at",)
        return ("version", "source", "parameters", "fitness", "created_at")

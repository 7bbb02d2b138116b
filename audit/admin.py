from __future__ import annotations

from django.contrib import admin

from audit.models import AuditEvent


@admin.register(AuditEvent)
class AuditEventAdmin(admin.ModelAdmin):
    list_display = ["timestamp", "action", "outcome", "actor", "organization", "sandbox_id", "resource", "ip"]
    list_filter = ["outcome", "action", "organization"]
    search_fields = ["id", "actor", "resource", "sandbox_id", "session_id", "request_id"]
    date_hierarchy = "timestamp"
    list_select_related = ["organization"]

    def get_readonly_fields(self, request, obj=None):
        return [field.name for field in self.model._meta.fields]

    def has_add_permission(self, request):
        return False

    def has_change_permission(self, request, obj=None):
        return False

    def has_delete_permission(self, request, obj=None):
        return False

from __future__ import annotations

from django.contrib import admin

from sandboxes.models import Sandbox


@admin.register(Sandbox)
class SandboxAdmin(admin.ModelAdmin):
    list_display = ["id", "organization", "status", "host", "isolated", "session_id", "created_at", "expires_at"]
    list_filter = ["status", "host", "isolated"]
    search_fields = ["id", "session_id"]
    list_select_related = ["organization"]

    def get_readonly_fields(self, request, obj=None):
        return [field.name for field in self.model._meta.fields]

    def has_add_permission(self, request):
        return False

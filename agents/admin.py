from __future__ import annotations

from django.contrib import admin

from agents.models import AgentSession, Rotation


@admin.register(AgentSession)
class AgentSessionAdmin(admin.ModelAdmin):
    list_display = ("id", "name", "organization", "status", "current_sandbox_id", "rotation_count", "created_at")
    list_filter = ("status",)
    search_fields = ("id", "name", "client_id")
    readonly_fields = [field.name for field in AgentSession._meta.fields]


@admin.register(Rotation)
class RotationAdmin(admin.ModelAdmin):
    list_display = ("id", "session", "reason", "state", "old_sandbox_id", "new_sandbox_id", "created_at")
    list_filter = ("state", "reason")
    readonly_fields = [field.name for field in Rotation._meta.fields]

from __future__ import annotations

from django.contrib import admin

from members.models import Invitation


@admin.register(Invitation)
class InvitationAdmin(admin.ModelAdmin):
    list_display = ["id", "organization", "role", "note", "created_at", "expires_at", "accepted_at", "revoked_at"]
    list_filter = ["organization", "role"]
    # Invitations are made on the members page, where the link is shown once; the hash is useless here.
    exclude = ["token_hash"]
    readonly_fields = [
        "id",
        "organization",
        "role",
        "note",
        "created_by",
        "created_at",
        "expires_at",
        "accepted_at",
        "accepted_by",
        "revoked_at",
    ]

    def has_add_permission(self, request):
        return False

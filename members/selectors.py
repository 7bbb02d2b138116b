from __future__ import annotations

from django.db.models import QuerySet

from accounts.models import Membership
from members.models import Invitation


def member_list(*, organization_id: str) -> QuerySet[Membership]:
    return Membership.objects.filter(organization_id=organization_id).select_related("user").order_by("user__username")


def invitation_list(*, organization_id: str, limit: int = 50) -> list[Invitation]:
    return list(
        Invitation.objects.filter(organization_id=organization_id)
        .select_related("created_by", "accepted_by")
        .order_by("-created_at")[:limit]
    )

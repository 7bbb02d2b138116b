from __future__ import annotations

from django.db.models import QuerySet

from accounts.models import ApiKey, Organization


def organization_get(*, organization_id: str) -> Organization:
    return Organization.objects.get(id=organization_id)


def api_key_list(*, organization_id: str) -> QuerySet[ApiKey]:
    return ApiKey.objects.filter(organization_id=organization_id).order_by("-created_at")

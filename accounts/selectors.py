from __future__ import annotations

from collections.abc import Iterable

from django.db.models import QuerySet

from accounts.models import ApiKey, Organization


def organization_get(*, organization_id: str) -> Organization:
    return Organization.objects.get(id=organization_id)


def api_key_list(*, organization_id: str) -> QuerySet[ApiKey]:
    return ApiKey.objects.filter(organization_id=organization_id).order_by("-created_at")


def api_key_lineage(*, organization_id: str, key_ids: Iterable[str]) -> list[str]:
    """These keys and every key made with them, and with those, and so on: oldest generation first."""
    found = list(dict.fromkeys(key_ids))
    seen, generation = set(found), found
    while generation:
        children = ApiKey.objects.filter(organization_id=organization_id, parent_key_id__in=generation)
        generation = [key_id for key_id in children.values_list("id", flat=True) if key_id not in seen]
        seen.update(generation)
        found.extend(generation)
    return found


def api_keys_made_by(*, organization_id: str, user_id: int) -> QuerySet[ApiKey]:
    """The keys someone made here that still work, with those made with them through the API."""
    made = ApiKey.objects.filter(organization_id=organization_id, created_by_id=user_id).values_list("id", flat=True)
    lineage = api_key_lineage(organization_id=organization_id, key_ids=list(made))
    return ApiKey.objects.filter(organization_id=organization_id, id__in=lineage, revoked_at__isnull=True)

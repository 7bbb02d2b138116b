"""Staff changes to an organization's quotas, from the admin and ``manage.py org_quota`` alike."""

from __future__ import annotations

from django.db import transaction
from django.utils import timezone

from accounts.models import Organization
from audit.services import audit_record
from core.actor import Actor
from core.errors import InvalidInput, NotFound
from quotas.limits import parse_quota
from quotas.models import QUOTA_NAMES, OrganizationQuota


def organization_find(*, ref: str) -> Organization:
    """The organization with this id, or else the one with this name (a name two share is refused)."""
    found = Organization.objects.filter(id=ref).first()
    if found is not None:
        return found
    named = list(Organization.objects.filter(name=ref)[:2])
    if len(named) > 1:
        raise InvalidInput(f"more than one organization is named {ref[:200]!r}: give its id")
    if not named:
        raise NotFound(f"no organization has the id or name {ref[:200]!r}", code="ORGANIZATION_NOT_FOUND")
    return named[0]


def quota_set(
    *, actor: Actor, organization: Organization, values: dict[str, str | int | None], clear: tuple[str, ...] = ()
) -> OrganizationQuota:
    """Set (``values``, each parsed: 0 is unlimited) and clear back to the default (``clear``) some of
    an organization's quota overrides. Every value is checked before anything changes."""
    unknown = (set(values) | set(clear)) - set(QUOTA_NAMES)
    if unknown:
        raise InvalidInput(f"unknown quota {sorted(unknown)[0]!r}; the quotas are {', '.join(QUOTA_NAMES)}")
    both = set(values) & set(clear)
    if both:
        raise InvalidInput(f"the {sorted(both)[0]} quota cannot be both set and cleared")
    parsed = {name: parse_quota(name, value) for name, value in values.items()}
    with transaction.atomic():
        quota = OrganizationQuota.objects.select_for_update().filter(organization=organization).first()
        quota = quota or OrganizationQuota(organization=organization)
        before = {name: getattr(quota, name) for name in QUOTA_NAMES}
        for name, value in parsed.items():
            setattr(quota, name, value)
        for name in clear:
            setattr(quota, name, None)
        quota.updated_at = timezone.now()
        quota.save()
        audit_record(
            actor=actor,
            action="quota.set",
            resource=f"organization:{organization.id}",
            details={"before": before, "after": {name: getattr(quota, name) for name in QUOTA_NAMES}},
            organization_id=organization.id,
        )
    return quota

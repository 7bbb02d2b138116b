"""The dashboard's quota banner: one query on the organization's counter and override rows."""

from __future__ import annotations

from typing import Any

from django.conf import settings
from django.http import HttpRequest

from accounts.models import Organization
from quotas.limits import limits_with
from quotas.models import OrganizationQuota


def quota_warnings(*, organization_id: str) -> list[dict[str, Any]]:
    """The stored bytes and artifacts quotas at or past the warning share: name, used, limit,
    percent and whether it is full; the fullest first."""
    row = (
        Organization.objects.filter(id=organization_id)
        .values("usage__stored_bytes", "usage__artifact_count", "quota__bytes", "quota__artifacts")
        .first()
    )
    if row is None:
        return []
    override = OrganizationQuota(bytes=row["quota__bytes"], artifacts=row["quota__artifacts"])
    limits = limits_with(override)
    warn = settings.STOWAGE_QUOTA_WARN_PERCENT
    warnings = []
    for name, used, limit in (
        ("bytes", row["usage__stored_bytes"] or 0, limits.bytes),
        ("artifacts", row["usage__artifact_count"] or 0, limits.artifacts),
    ):
        if limit is None:
            continue
        percent = used * 100 // limit
        if percent >= warn:
            warnings.append({"name": name, "used": used, "limit": limit, "percent": percent, "full": used >= limit})
    return sorted(warnings, key=lambda warning: -warning["percent"])


def quota_banner(request: HttpRequest) -> dict[str, Any]:
    membership = getattr(request, "membership", None)
    if membership is None:
        return {}
    return {"quota_warnings": quota_warnings(organization_id=membership.organization_id)}

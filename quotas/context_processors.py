"""The dashboard's quota banner, read from the organization's counter and override rows, which the
dashboard loads with the membership (accounts.access.current_membership): no query of its own."""

from __future__ import annotations

from typing import Any

from django.conf import settings
from django.core.exceptions import ObjectDoesNotExist
from django.http import HttpRequest

from accounts.models import Organization
from quotas.limits import limits_with


def _related(organization: Organization, name: str):
    try:
        return getattr(organization, name)
    except ObjectDoesNotExist:
        return None


def quota_warnings(organization: Organization) -> list[dict[str, Any]]:
    """The stored bytes and artifacts quotas at or past the warning share: name, used, limit,
    percent and whether it is full; the fullest first."""
    usage = _related(organization, "usage")
    limits = limits_with(_related(organization, "quota"))
    warn = settings.STOWAGE_QUOTA_WARN_PERCENT
    warnings = []
    for name, used, limit in (
        ("bytes", usage.stored_bytes if usage else 0, limits.bytes),
        ("artifacts", usage.artifact_count if usage else 0, limits.artifacts),
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
    return {"quota_warnings": quota_warnings(membership.organization)}

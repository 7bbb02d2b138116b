"""Reads of quotas: the limits in force for an organization and its use of each."""

from __future__ import annotations

from quotas.counters import usage_read
from quotas.limits import Limits, limits_with
from quotas.models import QUOTA_NAMES, OrganizationQuota


def quota_override(*, organization_id: str) -> OrganizationQuota | None:
    return OrganizationQuota.objects.filter(organization_id=organization_id).first()


def quota_limits(*, organization_id: str) -> Limits:
    """The quotas in force: the organization's overrides over the instance's defaults."""
    return limits_with(quota_override(organization_id=organization_id))


def _running_sandboxes(organization_id: str) -> int:
    from sandboxes.models import Sandbox, SandboxStatus

    return Sandbox.objects.filter(
        organization_id=organization_id, status__in=[SandboxStatus.CREATING, SandboxStatus.RUNNING]
    ).count()


def _largest(organization_id: str) -> int:
    from artifacts.models import Artifact, ArtifactState

    largest = (
        Artifact.objects.filter(organization_id=organization_id, state=ArtifactState.READY)
        .order_by("-size")
        .values_list("size", flat=True)
        .first()
    )
    return largest or 0


def quota_usage(organization, *, with_largest: bool = True) -> list[tuple[str, int, int | None]]:
    """(name, used, limit) for each quota, limit None when unlimited: ``bytes`` (unique stored
    bytes), ``artifacts``, ``largest`` (the largest ready artifact) and ``sandboxes`` (creating or
    running now)."""
    organization_id = getattr(organization, "id", organization)
    limits = quota_limits(organization_id=organization_id)
    usage = usage_read(organization_id=organization_id)
    used = {
        "bytes": usage.stored_bytes,
        "artifacts": usage.artifact_count,
        "largest": _largest(organization_id) if with_largest else 0,
        "sandboxes": _running_sandboxes(organization_id),
    }
    return [(name, used[name], getattr(limits, name)) for name in QUOTA_NAMES]

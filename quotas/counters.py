"""The usage counters: moved in the transactions that change what they count, recounted on demand.

``stored_bytes`` is the organization's unique bytes: the sizes of its blobs (a blob being removed
still counts until its row goes) plus artifacts published before blobs that have none yet.
``artifact_count`` is its ready and trashed artifacts (trashed ones still hold their bytes).

Lock order: the counter row is taken after any blob row and before any folder summary or audit
row, by every writer, so concurrent publishes and collections never wait on each other in a circle.
"""

from __future__ import annotations

from django.db import transaction
from django.db.models import F, Sum
from django.utils import timezone

from artifacts.models import Artifact, ArtifactState, Blob
from quotas.models import OrganizationUsage


def usage_add(*, organization_id: str, stored_bytes: int = 0, artifacts: int = 0) -> None:
    """Move the counters by these amounts in the caller's transaction (the row stays locked to its end)."""
    if not stored_bytes and not artifacts:
        return
    changes = {"stored_bytes": F("stored_bytes") + stored_bytes, "artifact_count": F("artifact_count") + artifacts}
    if not OrganizationUsage.objects.filter(organization_id=organization_id).update(**changes):
        OrganizationUsage.objects.bulk_create(
            [OrganizationUsage(organization_id=organization_id)], ignore_conflicts=True
        )
        OrganizationUsage.objects.filter(organization_id=organization_id).update(**changes)


def usage_locked(*, organization_id: str) -> OrganizationUsage:
    """The organization's counters, locked until the transaction ends."""
    OrganizationUsage.objects.bulk_create([OrganizationUsage(organization_id=organization_id)], ignore_conflicts=True)
    return OrganizationUsage.objects.select_for_update().get(organization_id=organization_id)


def usage_read(*, organization_id: str) -> OrganizationUsage:
    """The counters as they stand, unlocked (a missing row is zero use)."""
    usage = OrganizationUsage.objects.filter(organization_id=organization_id).first()
    return usage or OrganizationUsage(organization_id=organization_id)


def usage_recount(*, organization_id: str) -> OrganizationUsage:
    """Set the counters from the rows themselves: the repair path, and the start of an organization
    that existed before the counters. Holds the counter row while it sums, so no change is lost."""
    held = (ArtifactState.READY, ArtifactState.TRASHED)
    with transaction.atomic():
        usage = usage_locked(organization_id=organization_id)
        blobs = Blob.objects.filter(organization_id=organization_id).aggregate(b=Sum("size"))["b"] or 0
        legacy = Artifact.objects.filter(
            organization_id=organization_id, state__in=held, blob__isnull=True, is_folder=False
        ).aggregate(b=Sum("size"))["b"]
        count = Artifact.objects.filter(organization_id=organization_id, state__in=held).count()
        usage.stored_bytes, usage.artifact_count = blobs + (legacy or 0), count
        usage.recounted_at = timezone.now()
        usage.save(update_fields=["stored_bytes", "artifact_count", "recounted_at"])
    return usage

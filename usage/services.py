"""The daily usage snapshot: taken by the beat task ``usage.snapshot_daily``, as often as it runs;
each run of a day rewrites that day's row, so running it twice changes nothing more."""

from __future__ import annotations

from datetime import date

from django.utils import timezone

from accounts.models import Organization
from quotas.models import OrganizationUsage
from usage.models import UsageSnapshot
from usage.selectors import usage_breakdowns


def usage_snapshot_take(*, day: date | None = None) -> int:
    """Write (or rewrite) every organization's snapshot for ``day`` (today); how many rows."""
    day = day or timezone.localdate()
    counters = {row.organization_id: row for row in OrganizationUsage.objects.all()}
    by_sandbox = usage_breakdowns("sandbox_id")
    by_type = usage_breakdowns("content_type")
    now = timezone.now()
    snapshots = []
    for organization_id in Organization.objects.values_list("id", flat=True).iterator():
        counter = counters.get(organization_id)
        snapshots.append(
            UsageSnapshot(
                organization_id=organization_id,
                date=day,
                stored_bytes=counter.stored_bytes if counter else 0,
                artifact_count=counter.artifact_count if counter else 0,
                by_sandbox=by_sandbox.get(organization_id, []),
                by_content_type=by_type.get(organization_id, []),
                taken_at=now,
            )
        )
    UsageSnapshot.objects.bulk_create(
        snapshots,
        batch_size=500,
        update_conflicts=True,
        unique_fields=["organization", "date"],
        update_fields=["stored_bytes", "artifact_count", "by_sandbox", "by_content_type", "taken_at"],
    )
    return len(snapshots)

"""What each organization held on each day: one snapshot a day, refreshed until the day ends."""

from __future__ import annotations

from django.db import models
from django.utils import timezone


class UsageSnapshot(models.Model):
    """An organization's stored bytes and artifacts on ``date``, with the breakdowns the usage page
    draws, so the page reads one row instead of grouping over every artifact.

    ``stored_bytes`` and ``artifact_count`` are the quota counters (unique bytes; ready and trashed
    artifacts). ``by_sandbox`` and ``by_content_type`` are ``[[label, bytes, artifacts], ...]``,
    largest first, over ready artifacts counting every version at its size; the rest is one last
    entry labelled null (``""`` is no sandbox, or no content type).
    """

    organization = models.ForeignKey("accounts.Organization", on_delete=models.CASCADE, related_name="usage_snapshots")
    date = models.DateField()
    stored_bytes = models.BigIntegerField(default=0)
    artifact_count = models.BigIntegerField(default=0)
    by_sandbox = models.JSONField(default=list)
    by_content_type = models.JSONField(default=list)
    taken_at = models.DateTimeField(default=timezone.now)

    class Meta:
        constraints = [models.UniqueConstraint(fields=["organization", "date"], name="usage_snapshot_one_a_day")]

    def __str__(self) -> str:
        return f"usage of {self.organization_id} on {self.date}"

"""An organization's quota overrides, set by staff, and the counters its quotas are checked against."""

from __future__ import annotations

from django.db import models
from django.utils import timezone

# The quotas, in the order they are shown; each is a column of both rows below.
QUOTA_NAMES = ("bytes", "artifacts", "largest", "sandboxes")


class OrganizationQuota(models.Model):
    """Per-organization overrides of the instance's defaults (settings ``STOWAGE_QUOTA_*``).

    A column left empty follows the default; 0 means unlimited for this organization.
    """

    organization = models.OneToOneField(
        "accounts.Organization", primary_key=True, on_delete=models.CASCADE, related_name="quota"
    )
    bytes = models.PositiveBigIntegerField(null=True, blank=True, help_text="Stored bytes (unique bytes).")
    artifacts = models.PositiveBigIntegerField(null=True, blank=True, help_text="Artifacts, the trashed included.")
    largest = models.PositiveBigIntegerField(null=True, blank=True, help_text="Bytes of the largest artifact.")
    sandboxes = models.PositiveIntegerField(null=True, blank=True, help_text="Sandboxes creating or running at once.")
    updated_at = models.DateTimeField(default=timezone.now)

    def __str__(self) -> str:
        return f"quota of {self.organization_id}"


class OrganizationUsage(models.Model):
    """What an organization holds, kept exact in the transactions that change it (blob creation and
    removal, an artifact's publish and deletion), so a quota check reads one row instead of summing
    every blob. The row is also the lock that orders the final checks of concurrent publishes."""

    organization = models.OneToOneField(
        "accounts.Organization", primary_key=True, on_delete=models.CASCADE, related_name="usage"
    )
    stored_bytes = models.BigIntegerField(default=0)
    artifact_count = models.BigIntegerField(default=0)
    recounted_at = models.DateTimeField(null=True, blank=True)

    def __str__(self) -> str:
        return f"usage of {self.organization_id}"

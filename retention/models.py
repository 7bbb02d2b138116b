from __future__ import annotations

from django.conf import settings
from django.db import models
from django.utils import timezone

from core.ids import new_id


def new_policy_id() -> str:
    return new_id("rtp")


class PolicyKind(models.TextChoices):
    KEEP_LAST = "keep_last", "Keep the last N versions of each path"
    MAX_AGE = "max_age", "Remove versions older than N days"
    NOT_DOWNLOADED = "not_downloaded", "Remove versions not downloaded for N days"


# What ``value`` counts for each kind, and its bounds.
VALUE_BOUNDS = {
    PolicyKind.KEEP_LAST: (1, 10_000),
    PolicyKind.MAX_AGE: (1, 36_500),
    PolicyKind.NOT_DOWNLOADED: (1, 36_500),
}
VALUE_UNITS = {PolicyKind.KEEP_LAST: "versions", PolicyKind.MAX_AGE: "days", PolicyKind.NOT_DOWNLOADED: "days"}


class RetentionPolicy(models.Model):
    """A rule that moves an organization's ready artifacts to the trash: every version of a path
    beyond its newest ``value`` (keep_last), older than ``value`` days (max_age), or neither made
    nor downloaded within ``value`` days (not_downloaded); only under ``prefix`` when it is set.
    An aliased or legally held version is never removed."""

    id = models.CharField(primary_key=True, max_length=40, default=new_policy_id, editable=False)
    organization = models.ForeignKey("accounts.Organization", on_delete=models.CASCADE, related_name="+")
    name = models.CharField(max_length=100)
    prefix = models.CharField(max_length=1024, blank=True)
    kind = models.CharField(max_length=20, choices=PolicyKind.choices)
    value = models.PositiveIntegerField()
    enabled = models.BooleanField(default=True)
    created_by_user = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    created_by_api_key = models.ForeignKey(
        "accounts.ApiKey", null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    created_by_label = models.CharField(max_length=200, blank=True)
    created_at = models.DateTimeField(default=timezone.now)
    updated_at = models.DateTimeField(default=timezone.now)
    last_run_at = models.DateTimeField(null=True, blank=True)
    last_removed_count = models.BigIntegerField(default=0)

    class Meta:
        ordering = ["name"]
        constraints = [
            models.UniqueConstraint(fields=["organization", "name"], name="retention_policy_one_per_name"),
        ]
        indexes = [models.Index(fields=["enabled", "last_run_at"], name="retention_policy_due")]

    def __str__(self) -> str:
        return self.name

    @property
    def unit(self) -> str:
        return VALUE_UNITS[PolicyKind(self.kind)]

    @property
    def rule(self) -> str:
        """The policy in words, for pages and events."""
        where = f" under {self.prefix}" if self.prefix else ""
        plural = "" if self.value == 1 else "s"
        if self.kind == PolicyKind.KEEP_LAST:
            return f"keep the last {self.value} version{plural} of each path{where}"
        if self.kind == PolicyKind.MAX_AGE:
            return f"remove versions older than {self.value} day{plural}{where}"
        return f"remove versions neither made nor downloaded in {self.value} day{plural}{where}"

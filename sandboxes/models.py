from __future__ import annotations

from django.conf import settings
from django.db import models
from django.utils import timezone

from core.ids import new_id


def new_sandbox_id() -> str:
    return new_id("sbx")


def new_session_id() -> str:
    return new_id("ses")


class SandboxStatus(models.TextChoices):
    CREATING = "creating"
    RUNNING = "running"
    TERMINATING = "terminating"
    TERMINATED = "terminated"
    ERROR = "error"


FINAL_STATUSES = frozenset({SandboxStatus.TERMINATED, SandboxStatus.ERROR})


class Sandbox(models.Model):
    id = models.CharField(primary_key=True, max_length=40, default=new_sandbox_id, editable=False)
    organization = models.ForeignKey("accounts.Organization", on_delete=models.CASCADE, related_name="sandboxes")
    session_id = models.CharField(max_length=128, default=new_session_id)
    status = models.CharField(max_length=12, choices=SandboxStatus.choices, default=SandboxStatus.CREATING)
    host = models.CharField(max_length=128, help_text="The worker host whose queue runs this sandbox's work.")
    isolated = models.BooleanField(default=True, help_text="False when the host runs sandboxes without bubblewrap.")
    cpus = models.CharField(max_length=16)
    memory = models.CharField(max_length=16)
    memory_bytes = models.BigIntegerField()
    cpu_count = models.FloatField(default=1.0)
    cpus_requested = models.CharField(
        max_length=16, blank=True, default="", help_text="The cpus asked for, when more than a host has."
    )
    disk = models.CharField(max_length=16, blank=True, default="", help_text="The size of the workspace filesystem.")
    disk_bytes = models.BigIntegerField(null=True, blank=True)
    disk_enforced = models.BooleanField(
        default=False, help_text="True when the kernel holds the workspace to its disk size."
    )
    created_by_api_key = models.ForeignKey(
        "accounts.ApiKey", null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    created_by_user = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    created_at = models.DateTimeField(default=timezone.now)
    started_at = models.DateTimeField(null=True, blank=True)
    expires_at = models.DateTimeField()
    stopped_at = models.DateTimeField(null=True, blank=True)
    error_message = models.TextField(blank=True)

    class Meta:
        ordering = ["-created_at"]
        indexes = [
            models.Index(fields=["organization", "-created_at"], name="sandbox_org_created"),
            models.Index(fields=["organization", "session_id", "-created_at"], name="sandbox_org_session"),
            models.Index(fields=["status", "expires_at"], name="sandbox_status_expiry"),
        ]

    def __str__(self) -> str:
        return self.id

    @property
    def is_running(self) -> bool:
        return self.status == SandboxStatus.RUNNING

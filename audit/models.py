from __future__ import annotations

from django.conf import settings
from django.db import models
from django.utils import timezone


class AppendOnlyError(Exception):
    pass


class AuditEventQuerySet(models.QuerySet):
    def update(self, **kwargs):  # type: ignore[override]
        raise AppendOnlyError("audit events are append-only")

    def delete(self):  # type: ignore[override]
        raise AppendOnlyError("audit events are append-only")

    _raw_delete = delete


class Outcome(models.TextChoices):
    SUCCESS = "success"
    FAILURE = "failure"
    DENIED = "denied"


class AuditEvent(models.Model):
    """One thing someone did. Rows are only ever inserted; each carries the hash of the one
    before it, so an edit, a deletion or a reordering breaks the chain and is detectable."""

    seq = models.BigAutoField(primary_key=True)
    id = models.CharField(max_length=40, unique=True, editable=False)
    timestamp = models.DateTimeField(default=timezone.now, db_index=True)
    organization = models.ForeignKey(
        "accounts.Organization", on_delete=models.PROTECT, null=True, blank=True, related_name="+"
    )
    actor_user = models.ForeignKey(
        settings.AUTH_USER_MODEL,
        on_delete=models.SET_NULL,
        null=True,
        blank=True,
        related_name="+",
        db_constraint=False,
    )
    actor_api_key = models.ForeignKey(
        "accounts.ApiKey", on_delete=models.SET_NULL, null=True, blank=True, related_name="+", db_constraint=False
    )
    actor = models.CharField(
        max_length=200, blank=True, help_text="Who acted, as shown at the time (username, key prefix or 'system')."
    )
    action = models.CharField(max_length=64, db_index=True)
    resource = models.CharField(max_length=1200, blank=True)
    sandbox_id = models.CharField(max_length=40, blank=True, db_index=True)
    session_id = models.CharField(max_length=128, blank=True)
    details = models.JSONField(default=dict, blank=True)
    outcome = models.CharField(max_length=10, choices=Outcome.choices, default=Outcome.SUCCESS)
    error_message = models.TextField(blank=True)
    duration_ms = models.IntegerField(null=True, blank=True)
    ip = models.GenericIPAddressField(null=True, blank=True)
    user_agent = models.CharField(max_length=400, blank=True)
    request_id = models.CharField(max_length=128, blank=True)
    client_request_id = models.CharField(
        max_length=128, blank=True, help_text="The X-Request-Id the client sent, if any; not unique."
    )
    # Which chain: an organization's id, or "instance" for the events of no organization; empty for
    # the shared chain of the events of earlier releases (the database fills it in for their code).
    chain = models.CharField(max_length=40, blank=True, default="", db_default="")
    prev_hash = models.CharField(max_length=64)
    hash = models.CharField(max_length=64)

    objects = AuditEventQuerySet.as_manager()

    class Meta:
        ordering = ["-seq"]
        indexes = [
            models.Index(fields=["organization", "-seq"], name="audit_org_seq"),
            models.Index(fields=["organization", "sandbox_id", "-seq"], name="audit_org_sandbox_seq"),
            models.Index(fields=["chain", "seq"], name="audit_chain_seq"),
        ]

    def __str__(self) -> str:
        return f"{self.timestamp:%Y-%m-%d %H:%M:%S} {self.action} {self.outcome}"

    def save(self, *args, **kwargs):  # type: ignore[override]
        if not self._state.adding:
            raise AppendOnlyError("audit events are append-only")
        super().save(*args, **kwargs)

    def delete(self, *args, **kwargs):  # type: ignore[override]
        raise AppendOnlyError("audit events are append-only")


class AuditChainHead(models.Model):
    """The head of the one chain every event joined before each organization had a chain of its own
    (events whose ``chain`` is empty). Nothing of this release appends to it; a process of the
    earlier release still running during an upgrade may, which keeps it whole."""

    id = models.PositiveSmallIntegerField(primary_key=True, default=1)
    last_hash = models.CharField(max_length=64, default="0" * 64)
    last_seq = models.BigIntegerField(default=0)

    def __str__(self) -> str:
        return f"shared audit chain head at {self.last_seq}"


class AuditChain(models.Model):
    """The head of one chain: an organization's (``key`` is its id), or the instance's for events
    of no organization (``key`` is ``instance``). Its row is locked while an event is appended, so
    appends to one chain have one order and appends to different chains never wait on each other.

    A chain begins where the shared chain stood when its first event was appended: ``start_hash``
    is the hash of the shared chain's event ``start_seq`` (64 zeros and 0 when it had none), and
    the chain's first event links to it."""

    key = models.CharField(primary_key=True, max_length=40)
    start_seq = models.BigIntegerField(default=0)
    start_hash = models.CharField(max_length=64)
    last_hash = models.CharField(max_length=64)
    last_seq = models.BigIntegerField(default=0)
    events = models.BigIntegerField(default=0)

    def __str__(self) -> str:
        return f"audit chain {self.key} at {self.last_seq}"

from __future__ import annotations

from django.db import models
from django.utils import timezone

from core.ids import new_id


def new_transfer_id() -> str:
    return new_id("trf")


class TransferKind(models.TextChoices):
    UPLOAD = "upload", "sandbox → storage"
    DOWNLOAD = "download", "storage → sandbox"
    PUT = "put", "client → storage"


class TransferState(models.TextChoices):
    """A transfer from or to a sandbox, or a streamed PUT: queued → running → succeeded or failed.

    A direct browser upload first receives its parts (``receiving``, the only state in which a
    part is signed); once the browser completes it, it is queued for a worker to join and check
    (``queued`` → ``running``), or ``unqueued`` when the task queue refused the finish, which is
    then sent again.
    """

    RECEIVING = "receiving"
    UNQUEUED = "unqueued"
    QUEUED = "queued"
    RUNNING = "running"
    SUCCEEDED = "succeeded"
    FAILED = "failed"


UNFINISHED_STATES = (TransferState.RECEIVING, TransferState.UNQUEUED, TransferState.QUEUED, TransferState.RUNNING)
FINAL_STATES = frozenset({TransferState.SUCCEEDED, TransferState.FAILED})


class Transfer(models.Model):
    """One movement of bytes, with progress the API and dashboard read while it runs."""

    id = models.CharField(primary_key=True, max_length=40, default=new_transfer_id, editable=False)
    organization = models.ForeignKey("accounts.Organization", on_delete=models.CASCADE, related_name="transfers")
    kind = models.CharField(max_length=10, choices=TransferKind.choices)
    artifact = models.ForeignKey("artifacts.Artifact", on_delete=models.CASCADE, related_name="transfers")
    sandbox_id = models.CharField(max_length=40, blank=True)
    host = models.CharField(max_length=128, blank=True)
    path = models.CharField(
        max_length=4096, blank=True, help_text="Source path (upload) or target path (download) in the sandbox."
    )
    state = models.CharField(max_length=10, choices=TransferState.choices, default=TransferState.QUEUED)
    bytes_done = models.BigIntegerField(default=0)
    bytes_total = models.BigIntegerField(null=True, blank=True)
    error_code = models.CharField(max_length=64, blank=True)
    error_message = models.TextField(blank=True)
    # What the error's code alone does not say (a quota's name, use and limit), answered as its details.
    error_details = models.JSONField(default=dict, blank=True)
    attempts = models.PositiveIntegerField(default=0)
    created_at = models.DateTimeField(default=timezone.now)
    started_at = models.DateTimeField(null=True, blank=True)
    finished_at = models.DateTimeField(null=True, blank=True)
    actor = models.JSONField(
        default=dict, blank=True, help_text="Who asked for it, for the audit event the worker records."
    )
    # A browser upload sent straight to the object store: its multipart upload, its part size,
    # and when the browser said every part was sent.
    upload_id = models.CharField(max_length=1024, blank=True)
    part_size = models.PositiveBigIntegerField(null=True, blank=True)
    completed_at = models.DateTimeField(null=True, blank=True)
    # Once completed: when its finishing task was last sent (queued) or last showed progress
    # (running). Only one worker holds the finish while this is fresh; a stale one is taken over.
    heartbeat_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        # The table the model had in the artifacts app, kept so that no row moves.
        db_table = "artifacts_transfer"
        ordering = ["-created_at"]
        indexes = [
            models.Index(fields=["organization", "-created_at"], name="transfer_org_created"),
            models.Index(fields=["state", "created_at"], name="transfer_state_created"),
            models.Index(fields=["artifact", "kind"], name="transfer_artifact_kind"),
        ]

    def __str__(self) -> str:
        return f"{self.kind} {self.id} ({self.state})"

    @property
    def is_direct(self) -> bool:
        return bool(self.upload_id)

    @property
    def part_count(self) -> int:
        if not self.part_size or self.bytes_total is None:
            return 0
        return max(1, -(-self.bytes_total // self.part_size))

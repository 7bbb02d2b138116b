from __future__ import annotations

from django.conf import settings
from django.db import models
from django.db.models import Q
from django.utils import timezone

from core.ids import new_id


def new_artifact_id() -> str:
    return new_id("art")


def new_transfer_id() -> str:
    return new_id("trf")


class ArtifactState(models.TextChoices):
    PENDING = "pending"
    READY = "ready"
    FAILED = "failed"
    DELETED = "deleted"


class ArtifactQuerySet(models.QuerySet):
    def visible(self) -> ArtifactQuerySet:
        """Ready and not past its expiry, whether or not the expiry sweep has run yet."""
        return self.filter(state=ArtifactState.READY).filter(
            Q(expires_at__isnull=True) | Q(expires_at__gt=timezone.now())
        )


class Artifact(models.Model):
    """A stored file. Visible (state ``ready``) only once its bytes are stored whole and its
    checksum recorded; the storage key is made here, never from user input."""

    id = models.CharField(primary_key=True, max_length=40, default=new_artifact_id, editable=False)
    organization = models.ForeignKey("accounts.Organization", on_delete=models.CASCADE, related_name="artifacts")
    # Plain ids, not foreign keys: the artifact outlives its sandbox and its session.
    sandbox_id = models.CharField(max_length=40, blank=True)
    session_id = models.CharField(max_length=128, blank=True)
    source_path = models.CharField(max_length=4096, blank=True)
    remote_path = models.CharField(max_length=1024)
    version = models.PositiveIntegerField(null=True, blank=True)
    size = models.BigIntegerField(default=0)
    checksum = models.CharField(max_length=71, blank=True, help_text="sha256:<hex>")
    content_type = models.CharField(max_length=255, blank=True)
    metadata = models.JSONField(default=dict, blank=True)
    is_archive = models.BooleanField(default=False, help_text="A directory stored as one tar.gz archive.")
    storage_key = models.CharField(max_length=300, unique=True)
    state = models.CharField(max_length=10, choices=ArtifactState.choices, default=ArtifactState.PENDING)
    error_message = models.TextField(blank=True)
    created_at = models.DateTimeField(default=timezone.now)
    ready_at = models.DateTimeField(null=True, blank=True)
    expires_at = models.DateTimeField(null=True, blank=True)
    deleted_at = models.DateTimeField(null=True, blank=True)
    created_by_api_key = models.ForeignKey(
        "accounts.ApiKey", null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    created_by_user = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    created_by_label = models.CharField(max_length=200, blank=True)

    objects = ArtifactQuerySet.as_manager()

    class Meta:
        ordering = ["-created_at", "-id"]
        constraints = [
            models.UniqueConstraint(
                fields=["organization", "remote_path", "version"],
                condition=Q(version__isnull=False),
                name="artifact_one_version_per_path",
            ),
        ]
        # Listings are keyset-paginated on (created_at, id) among ready artifacts, so a deep
        # page is one index range scan; each filter has an index that starts with it.
        indexes = [
            models.Index(fields=["organization", "state", "-created_at", "-id"], name="artifact_org_list"),
            models.Index(
                fields=["organization", "sandbox_id", "state", "-created_at", "-id"], name="artifact_org_sandbox"
            ),
            models.Index(
                fields=["organization", "session_id", "state", "-created_at", "-id"], name="artifact_org_session"
            ),
            models.Index(
                fields=["organization", "content_type", "state", "-created_at", "-id"], name="artifact_org_ctype"
            ),
            models.Index(fields=["organization", "remote_path", "-version"], name="artifact_org_path"),
            # The dashboard's "largest first" sort.
            models.Index(fields=["organization", "state", "-size", "-id"], name="artifact_org_size"),
            models.Index(fields=["state", "expires_at"], name="artifact_state_expiry"),
        ]

    def __str__(self) -> str:
        return f"{self.remote_path} ({self.id})"

    @property
    def is_visible(self) -> bool:
        return self.state == ArtifactState.READY and (self.expires_at is None or self.expires_at > timezone.now())

    @property
    def filename(self) -> str:
        return self.remote_path.rsplit("/", 1)[-1] or self.id


class TransferKind(models.TextChoices):
    UPLOAD = "upload", "sandbox → storage"
    DOWNLOAD = "download", "storage → sandbox"
    PUT = "put", "client → storage"


class TransferState(models.TextChoices):
    QUEUED = "queued"
    RUNNING = "running"
    SUCCEEDED = "succeeded"
    FAILED = "failed"


class Transfer(models.Model):
    """One movement of bytes, with progress the API and dashboard read while it runs."""

    id = models.CharField(primary_key=True, max_length=40, default=new_transfer_id, editable=False)
    organization = models.ForeignKey("accounts.Organization", on_delete=models.CASCADE, related_name="transfers")
    kind = models.CharField(max_length=10, choices=TransferKind.choices)
    artifact = models.ForeignKey(Artifact, on_delete=models.CASCADE, related_name="transfers")
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
    attempts = models.PositiveIntegerField(default=0)
    created_at = models.DateTimeField(default=timezone.now)
    started_at = models.DateTimeField(null=True, blank=True)
    finished_at = models.DateTimeField(null=True, blank=True)
    actor = models.JSONField(
        default=dict, blank=True, help_text="Who asked for it, for the audit event the worker records."
    )
    # A browser upload sent straight to the object store: its multipart upload, its part size,
    # and when the browser said every part was sent (after which no part is signed; a worker
    # joins them and checks the object).
    upload_id = models.CharField(max_length=1024, blank=True)
    part_size = models.PositiveBigIntegerField(null=True, blank=True)
    completed_at = models.DateTimeField(null=True, blank=True)
    # Once completed: when its finishing task was last sent (queued) or last showed progress
    # (running). Only one worker holds the finish while this is fresh; a stale one is taken over.
    heartbeat_at = models.DateTimeField(null=True, blank=True)

    class Meta:
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

from __future__ import annotations

from django.conf import settings
from django.db import models
from django.db.models import Q
from django.utils import timezone

from core.ids import new_id


def new_artifact_id() -> str:
    return new_id("art")


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


class ArtifactSearchEntry(models.Model):
    """An artifact's place in the search index (artifacts/search_index.py), present exactly while
    the artifact is ready. The words themselves are in the FTS5 table ``artifacts_search_fts``
    (rowid = sort_key) on SQLite, and in this table's ``document`` tsvector column on PostgreSQL;
    both are made by migration 0006 for their database only, so the model does not name them."""

    artifact = models.OneToOneField(Artifact, primary_key=True, on_delete=models.CASCADE, related_name="search_entry")
    organization_id = models.CharField(max_length=40)
    # Creation time in microseconds x 1024 plus a counter: newest first is sort_key descending.
    sort_key = models.BigIntegerField(unique=True)

    class Meta:
        indexes = [models.Index(fields=["organization_id", "-sort_key"], name="artifact_search_org_key")]

    def __str__(self) -> str:
        return f"search entry of {self.artifact_id}"


class ArtifactFolder(models.Model):
    """A remote_path prefix that ends in ``/`` with how many ready artifacts (every version) lie
    anywhere under it and their total size: kept by artifacts/prefixes.py in the transactions that
    publish and delete, so a folder view never groups over the artifacts themselves."""

    organization_id = models.CharField(max_length=40)
    path = models.CharField(max_length=1024)
    parent = models.CharField(max_length=1024, blank=True)
    artifact_count = models.BigIntegerField(default=0)
    total_size = models.BigIntegerField(default=0)

    class Meta:
        constraints = [models.UniqueConstraint(fields=["organization_id", "path"], name="artifact_folder_one_per_path")]
        indexes = [models.Index(fields=["organization_id", "parent", "path"], name="artifact_folder_children")]

    def __str__(self) -> str:
        return self.path

    @property
    def name(self) -> str:
        return self.path[len(self.parent) :]


class ArtifactPathHead(models.Model):
    """One remote_path with ready versions: its folder, its newest version and how many there are."""

    organization_id = models.CharField(max_length=40)
    folder = models.CharField(max_length=1024, blank=True)
    remote_path = models.CharField(max_length=1024)
    latest = models.ForeignKey(Artifact, on_delete=models.CASCADE, related_name="+")
    latest_created_at = models.DateTimeField()
    latest_size = models.BigIntegerField(default=0)
    versions = models.PositiveIntegerField(default=1)

    class Meta:
        constraints = [
            models.UniqueConstraint(fields=["organization_id", "remote_path"], name="artifact_path_head_one_per_path")
        ]
        # The folder view's orders, each a range of one index.
        indexes = [
            models.Index(fields=["organization_id", "folder", "remote_path"], name="artifact_head_by_name"),
            models.Index(
                fields=["organization_id", "folder", "-latest_created_at", "remote_path"], name="artifact_head_by_time"
            ),
            models.Index(
                fields=["organization_id", "folder", "-latest_size", "remote_path"], name="artifact_head_by_size"
            ),
        ]

    def __str__(self) -> str:
        return self.remote_path

from __future__ import annotations

from django.conf import settings
from django.db import models
from django.db.models import Q
from django.utils import timezone

from core.ids import new_id, new_ids


def new_artifact_id() -> str:
    return new_id("art")


class ArtifactState(models.TextChoices):
    PENDING = "pending"
    READY = "ready"
    FAILED = "failed"
    # Deleted by a person, a retention policy or expiry: invisible at once, restorable by an
    # organization admin until ``purge_after``, then purged (state ``deleted``).
    TRASHED = "trashed"
    DELETED = "deleted"


# An artifact in these states needs its blob's bytes (a pending one may hold a blob already: a
# folder recording its entries); a blob is removed only once no artifact in them references it.
BLOB_HOLDING_STATES = (ArtifactState.PENDING, ArtifactState.READY, ArtifactState.TRASHED)


def new_blob_id() -> str:
    return new_id("blb")


def new_blob_ids(count: int) -> list[str]:
    return new_ids("blb", count)


class BlobState(models.TextChoices):
    LIVE = "live"
    # Claimed by the collector: its object is being removed. A publish that finds it so revives it
    # with its own copy of the bytes (artifacts.blobs.blob_adopt), never points at it as it is.
    DELETING = "deleting"


class Blob(models.Model):
    """Bytes stored once per organization, named by their SHA-256 within it.

    ``storage_key`` is where the object is: the key it was first written under (an artifact's upload
    key, a direct upload's object, an object of the release before blobs), so that becoming a blob
    never copies bytes. Artifacts (and folder entries) point here; the collector removes a blob only
    once nothing that needs its bytes does (artifacts.blobs).
    """

    id = models.CharField(primary_key=True, max_length=40, default=new_blob_id, editable=False)
    # No index of its own: blob_one_per_org_digest starts with it.
    organization = models.ForeignKey(
        "accounts.Organization", on_delete=models.CASCADE, related_name="blobs", db_index=False
    )
    sha256 = models.CharField(max_length=64, help_text="hex")
    size = models.BigIntegerField()
    storage_key = models.CharField(max_length=300, unique=True)
    state = models.CharField(max_length=10, choices=BlobState.choices, default=BlobState.LIVE)
    created_at = models.DateTimeField(default=timezone.now)

    class Meta:
        constraints = [
            models.UniqueConstraint(fields=["organization", "sha256"], name="blob_one_per_org_digest"),
        ]
        indexes = [models.Index(fields=["state", "created_at"], name="blob_state_created")]

    def __str__(self) -> str:
        return f"{self.sha256[:12]}… ({self.organization_id})"

    @property
    def checksum(self) -> str:
        return f"sha256:{self.sha256}"


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
    # A directory stored as a manifest (ArtifactEntry rows), each file a blob; no blob of its own.
    is_folder = models.BooleanField(default=False)
    entry_count = models.PositiveIntegerField(default=0)
    # A folder's entries that were not stored (FIFOs, sockets, devices, names that are not UTF-8):
    # [{"path", "reason"}], at most FOLDER_SKIPPED_SHOWN of them.
    skipped = models.JSONField(default=list, blank=True)
    # Where this artifact's own upload is written while it is pending; once ready its bytes are
    # its blob's (``content_key``), which may be this key or another artifact's.
    storage_key = models.CharField(max_length=300, unique=True)
    blob = models.ForeignKey(Blob, null=True, blank=True, on_delete=models.PROTECT, related_name="artifacts")
    state = models.CharField(max_length=10, choices=ArtifactState.choices, default=ArtifactState.PENDING)
    error_message = models.TextField(blank=True)
    created_at = models.DateTimeField(default=timezone.now)
    ready_at = models.DateTimeField(null=True, blank=True)
    expires_at = models.DateTimeField(null=True, blank=True)
    deleted_at = models.DateTimeField(null=True, blank=True)
    # Set when the artifact moves to the trash; the purge removes it for good after this time.
    purge_after = models.DateTimeField(null=True, blank=True)
    trashed_reason = models.CharField(max_length=200, blank=True)
    # A legal hold keeps the artifact from every retention policy and from manual deletion.
    legal_hold = models.BooleanField(default=False)
    legal_hold_reason = models.CharField(max_length=500, blank=True)
    # Download statistics, folded in from a counter outside the database (not a write per download).
    download_count = models.BigIntegerField(default=0)
    last_downloaded_at = models.DateTimeField(null=True, blank=True)
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
            models.Index(fields=["state", "purge_after"], name="artifact_state_purge"),
            # The trash, newest deleted first.
            models.Index(fields=["organization", "state", "-deleted_at", "-id"], name="artifact_org_trash"),
            models.Index(
                fields=["organization", "state", "last_downloaded_at", "id"], name="artifact_org_last_download"
            ),
            models.Index(fields=["organization", "state", "-download_count", "-id"], name="artifact_org_downloads"),
        ]

    def __str__(self) -> str:
        return f"{self.remote_path} ({self.id})"

    @property
    def is_visible(self) -> bool:
        return self.state == ArtifactState.READY and (self.expires_at is None or self.expires_at > timezone.now())

    @property
    def content_key(self) -> str:
        """The storage key of the artifact's bytes: its blob's; its own for a row published by a
        release before blobs and not yet adopted."""
        return self.blob.storage_key if self.blob_id else self.storage_key

    @property
    def filename(self) -> str:
        return self.remote_path.rsplit("/", 1)[-1] or self.id


def new_alias_id() -> str:
    return new_id("ali")


class ArtifactAlias(models.Model):
    """A name (``production``, ``stable``) one version of a remote_path carries until it is moved.
    ``latest`` is never stored: it always means the newest visible version."""

    id = models.CharField(primary_key=True, max_length=40, default=new_alias_id, editable=False)
    organization = models.ForeignKey("accounts.Organization", on_delete=models.CASCADE, related_name="+")
    remote_path = models.CharField(max_length=1024)
    name = models.CharField(max_length=63)
    artifact = models.ForeignKey(Artifact, on_delete=models.CASCADE, related_name="aliases")
    created_at = models.DateTimeField(default=timezone.now)
    updated_at = models.DateTimeField(default=timezone.now)
    updated_by_user = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    updated_by_api_key = models.ForeignKey(
        "accounts.ApiKey", null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    updated_by_label = models.CharField(max_length=200, blank=True)

    class Meta:
        ordering = ["name"]
        constraints = [
            models.UniqueConstraint(fields=["organization", "remote_path", "name"], name="alias_one_per_path_name"),
        ]

    def __str__(self) -> str:
        return f"{self.remote_path}@{self.name}"


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


class EntryType(models.TextChoices):
    FILE = "file"
    DIRECTORY = "directory"
    SYMLINK = "symlink"


class ArtifactEntry(models.Model):
    """One entry of a folder artifact's manifest (artifacts/manifests.py checks and hashes them).

    ``path`` is relative to the folder, ``/``-separated, never ``..`` or absolute; ``parent`` is the
    path of its directory ('' at the top), so a directory's listing is one index range.
    """

    # Indexed by artifact_entry_one_per_path and artifact_entry_dir, which start with it; a folder's
    # 10,000 entries are inserted at once, so every index more is paid on each of them.
    artifact = models.ForeignKey(Artifact, on_delete=models.CASCADE, related_name="entries", db_index=False)
    path = models.CharField(max_length=2048)
    parent = models.CharField(max_length=2048, blank=True)
    type = models.CharField(max_length=10, choices=EntryType.choices)
    mode = models.PositiveIntegerField(default=0o644)
    size = models.BigIntegerField(default=0)
    sha256 = models.CharField(max_length=64, blank=True)
    mtime = models.DateTimeField(null=True, blank=True)
    link_target = models.CharField(max_length=4096, blank=True)
    blob = models.ForeignKey(
        Blob, null=True, blank=True, on_delete=models.PROTECT, related_name="entries", db_index=False
    )  # indexed by artifact_entry_blob

    class Meta:
        constraints = [
            models.UniqueConstraint(fields=["artifact", "path"], name="artifact_entry_one_per_path"),
        ]
        indexes = [
            models.Index(fields=["artifact", "parent", "path"], name="artifact_entry_dir"),
            models.Index(fields=["blob"], name="artifact_entry_blob"),
        ]

    def __str__(self) -> str:
        return f"{self.artifact_id}:{self.path}"

    @property
    def name(self) -> str:
        return self.path.rsplit("/", 1)[-1]


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

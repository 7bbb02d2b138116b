from __future__ import annotations

from django.conf import settings
from django.db import models
from django.utils import timezone

from core.ids import new_id


def new_share_id() -> str:
    return new_id("shr")


class ShareLinkState(models.TextChoices):
    PENDING = "pending"
    ACTIVE = "active"
    REVOKED = "revoked"


class ShareLink(models.Model):
    """A managed link to one artifact. Only a hash of its token is kept."""

    id = models.CharField(primary_key=True, max_length=40, default=new_share_id, editable=False)
    organization = models.ForeignKey("accounts.Organization", on_delete=models.CASCADE, related_name="share_links")
    # A string, not the class: artifacts.services revokes links through this model, so this
    # module must import nothing from artifacts.
    artifact = models.ForeignKey("artifacts.Artifact", on_delete=models.CASCADE, related_name="share_links")
    token_hash = models.CharField(max_length=64, unique=True)
    # The token again, Fernet-encrypted (core/secrets.py), so managers can copy the link later;
    # empty on links made before it was kept, which still open but cannot be copied again.
    token_encrypted = models.TextField(blank=True, default="")
    label = models.CharField(max_length=100, blank=True, default="")
    note = models.TextField(blank=True, default="")
    state = models.CharField(max_length=10, choices=ShareLinkState.choices, default=ShareLinkState.PENDING)
    expires_at = models.DateTimeField(null=True, blank=True)
    max_downloads = models.PositiveIntegerField(null=True, blank=True)
    download_count = models.PositiveIntegerField(default=0)
    password_hash = models.CharField(max_length=200, blank=True)
    created_at = models.DateTimeField(default=timezone.now)
    revoked_at = models.DateTimeField(null=True, blank=True)
    last_download_at = models.DateTimeField(null=True, blank=True)
    created_by_api_key = models.ForeignKey(
        "accounts.ApiKey", null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    created_by_user = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )

    class Meta:
        # The table the artifacts app created: the rows stayed where they were when the model moved.
        db_table = "artifacts_sharelink"
        ordering = ["-created_at"]
        indexes = [models.Index(fields=["artifact", "-created_at"], name="share_artifact_created")]

    def __str__(self) -> str:
        return f"share {self.id} of {self.artifact_id}"

    @property
    def created_by_label(self) -> str:
        """Who made it, in words; the selectors load both creators with the row."""
        if self.created_by_user_id and self.created_by_user:
            return (
                self.created_by_user.get_full_name()
                or self.created_by_user.email
                or self.created_by_user.get_username()
            )
        if self.created_by_api_key_id and self.created_by_api_key:
            return f"API key {self.created_by_api_key.name}"
        return ""

    @property
    def can_copy(self) -> bool:
        return bool(self.token_encrypted)

    @property
    def has_password(self) -> bool:
        return bool(self.password_hash)

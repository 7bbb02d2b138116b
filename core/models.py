"""The one table that plumbing needs: the answers kept for retried POSTs (``core.idempotency``)."""

from __future__ import annotations

from django.db import models
from django.utils import timezone


class IdempotentRequest(models.Model):
    """A POST sent with an ``Idempotency-Key``: what it asked (a fingerprint) and, once it has
    answered, the answer that a retry with the same key gets instead of running it again."""

    # A plain id, not a foreign key: plumbing depends on no app.
    organization_id = models.CharField(max_length=40)
    key = models.CharField(max_length=255)
    fingerprint = models.CharField(max_length=64, help_text="SHA-256 of the method, path, query and body.")
    method = models.CharField(max_length=10)
    path = models.CharField(max_length=2048)
    created_at = models.DateTimeField(default=timezone.now)
    # While the first request runs; a request that died holding it is taken over once this passes.
    locked_until = models.DateTimeField()
    status = models.PositiveSmallIntegerField(null=True, blank=True)
    content_type = models.CharField(max_length=255, blank=True)
    body = models.BinaryField(blank=True, default=b"")
    replayable = models.BooleanField(default=True, help_text="False for a streamed answer, which cannot be kept.")
    completed_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        constraints = [models.UniqueConstraint(fields=["organization_id", "key"], name="idempotency_one_per_key")]
        indexes = [models.Index(fields=["created_at"], name="idempotency_created")]

    def __str__(self) -> str:
        return f"{self.method} {self.path} ({self.key})"

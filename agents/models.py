"""Agent sessions: a long-lived unit of an agent's work that owns a current sandbox, outlives the
rotation of that sandbox, and tags everything it produces with its id."""

from __future__ import annotations

from django.conf import settings
from django.db import models
from django.db.models import Q
from django.utils import timezone

from core.ids import new_id


def new_session_id() -> str:
    return new_id("ses")


def new_event_id() -> str:
    return new_id("aev")


def new_rotation_id() -> str:
    return new_id("rot")


class SessionStatus(models.TextChoices):
    PENDING = "pending"
    RUNNING = "running"
    ROTATING = "rotating"
    PAUSED = "paused"
    COMPLETED = "completed"
    FAILED = "failed"
    CANCELLED = "cancelled"


FINAL_STATUSES = frozenset({SessionStatus.COMPLETED, SessionStatus.FAILED, SessionStatus.CANCELLED})
# The statuses in which a session holds a sandbox.
LIVE_STATUSES = (SessionStatus.RUNNING, SessionStatus.ROTATING, SessionStatus.PAUSED)


class AgentSession(models.Model):
    id = models.CharField(primary_key=True, max_length=40, default=new_session_id, editable=False)
    organization = models.ForeignKey("accounts.Organization", on_delete=models.CASCADE, related_name="agent_sessions")
    name = models.CharField(max_length=200, blank=True)
    description = models.TextField(blank=True)
    client_id = models.CharField(max_length=128, blank=True, help_text="The caller's own name for it, to reattach.")
    status = models.CharField(max_length=10, choices=SessionStatus.choices, default=SessionStatus.PENDING)
    # A plain id: the session keeps naming its sandbox after the sandbox row is gone.
    current_sandbox_id = models.CharField(max_length=40, blank=True)
    sandbox_config = models.JSONField(
        default=dict, blank=True, help_text="cpus, memory, timeout_seconds, isolation, env"
    )
    pre_rotate_buffer_seconds = models.PositiveIntegerField(default=60)
    cost_cap_cents = models.PositiveBigIntegerField(null=True, blank=True)
    iteration_limit = models.PositiveIntegerField(null=True, blank=True)
    duration_limit_seconds = models.PositiveIntegerField(null=True, blank=True)
    # Cost is not metered yet; the counter is here so that the answer has its shape.
    cost_cents = models.PositiveBigIntegerField(default=0)
    exec_count = models.PositiveIntegerField(default=0)
    # Time spent running: the seconds of earlier runs, plus now - running_since while it runs.
    active_seconds = models.PositiveBigIntegerField(default=0)
    running_since = models.DateTimeField(null=True, blank=True)
    context = models.JSONField(default=dict, blank=True, help_text="The agent context, kept across rotations.")
    rotation_count = models.PositiveIntegerField(default=0)
    # Written by rotations only, so that they never race an agent's own context updates.
    last_sandbox_id = models.CharField(max_length=40, blank=True)
    last_checkpoint_id = models.CharField(
        max_length=40, blank=True, help_text="The artifact of the last saved workspace."
    )
    last_sequence = models.PositiveBigIntegerField(default=0, help_text="The sequence number of its newest event.")
    created_at = models.DateTimeField(default=timezone.now)
    started_at = models.DateTimeField(null=True, blank=True)
    completed_at = models.DateTimeField(null=True, blank=True)
    last_activity_at = models.DateTimeField(null=True, blank=True)
    last_heartbeat_at = models.DateTimeField(null=True, blank=True)
    deleted_at = models.DateTimeField(null=True, blank=True)
    error_code = models.CharField(max_length=64, blank=True)
    error_message = models.TextField(blank=True)
    created_by_api_key = models.ForeignKey(
        "accounts.ApiKey", null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    created_by_user = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )

    class Meta:
        ordering = ["-created_at", "-id"]
        indexes = [
            models.Index(fields=["organization", "-created_at", "-id"], name="session_org_created"),
            models.Index(fields=["organization", "status", "-created_at"], name="session_org_status"),
            models.Index(
                fields=["organization", "client_id", "-created_at"],
                condition=~Q(client_id=""),
                name="session_org_client",
            ),
            # The rotation sweep reads only the sessions that hold a sandbox.
            models.Index(fields=["status"], condition=Q(status__in=["running", "paused"]), name="session_live"),
        ]

    def __str__(self) -> str:
        return self.name or self.id

    @property
    def is_final(self) -> bool:
        return self.status in FINAL_STATUSES

    def duration_seconds(self, now=None) -> int:
        running = (now or timezone.now()) - self.running_since if self.running_since else None
        return int(self.active_seconds + (running.total_seconds() if running else 0))


class AgentEvent(models.Model):
    """One step of a session's timeline; numbered from 1 within its session, without gaps."""

    id = models.CharField(primary_key=True, max_length=40, default=new_event_id, editable=False)
    session = models.ForeignKey(AgentSession, on_delete=models.CASCADE, related_name="events")
    sequence_number = models.PositiveBigIntegerField()
    event_type = models.CharField(max_length=40)
    event_subtype = models.CharField(max_length=64, blank=True)
    sandbox_id = models.CharField(max_length=40, blank=True)
    payload = models.JSONField(default=dict, blank=True)
    duration_ms = models.PositiveIntegerField(null=True, blank=True)
    success = models.BooleanField(null=True, blank=True)
    error_message = models.TextField(blank=True)
    created_at = models.DateTimeField(default=timezone.now)

    class Meta:
        ordering = ["session", "sequence_number"]
        constraints = [
            models.UniqueConstraint(fields=["session", "sequence_number"], name="agent_event_one_per_sequence")
        ]
        indexes = [models.Index(fields=["session", "event_type", "sequence_number"], name="agent_event_type")]

    def __str__(self) -> str:
        return f"{self.session_id} #{self.sequence_number} {self.event_type}"


class ToolType(models.TextChoices):
    BUILTIN = "builtin"
    CUSTOM = "custom"
    MCP = "mcp"


class AgentTool(models.Model):
    """A tool the agent told the session it uses; registering the same name again replaces it."""

    session = models.ForeignKey(AgentSession, on_delete=models.CASCADE, related_name="tools")
    name = models.CharField(max_length=64)
    tool_type = models.CharField(max_length=10, choices=ToolType.choices, default=ToolType.CUSTOM)
    description = models.TextField(blank=True)
    input_schema = models.JSONField(null=True, blank=True)
    enabled = models.BooleanField(default=True)
    created_at = models.DateTimeField(default=timezone.now)
    updated_at = models.DateTimeField(default=timezone.now)

    class Meta:
        ordering = ["session", "name"]
        constraints = [models.UniqueConstraint(fields=["session", "name"], name="agent_tool_one_per_name")]

    def __str__(self) -> str:
        return f"{self.name} ({self.tool_type})"


class RotationReason(models.TextChoices):
    EXPIRING = "expiring"
    REQUESTED = "requested"


class RotationState(models.TextChoices):
    QUEUED = "queued"
    RUNNING = "running"
    COMPLETED = "completed"
    FAILED = "failed"


class Rotation(models.Model):
    """One move of a session to a new sandbox: the old workspace saved as an artifact, a new
    sandbox made, the artifact restored into it, the old sandbox stopped."""

    id = models.CharField(primary_key=True, max_length=40, default=new_rotation_id, editable=False)
    session = models.ForeignKey(AgentSession, on_delete=models.CASCADE, related_name="rotations")
    reason = models.CharField(max_length=10, choices=RotationReason.choices)
    state = models.CharField(max_length=10, choices=RotationState.choices, default=RotationState.QUEUED)
    # The status the session goes back to once moved: running, or paused for a paused session.
    resume_status = models.CharField(max_length=10, choices=SessionStatus.choices)
    old_sandbox_id = models.CharField(max_length=40)
    new_sandbox_id = models.CharField(max_length=40, blank=True)
    artifact_id = models.CharField(max_length=40, blank=True, help_text="The saved workspace.")
    error_code = models.CharField(max_length=64, blank=True)
    error_message = models.TextField(blank=True)
    actor = models.JSONField(default=dict, blank=True)
    created_at = models.DateTimeField(default=timezone.now)
    started_at = models.DateTimeField(null=True, blank=True)
    finished_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["-created_at"]
        indexes = [
            models.Index(fields=["session", "-created_at"], name="rotation_session"),
            models.Index(fields=["state"], condition=Q(state__in=["queued", "running"]), name="rotation_live"),
        ]

    def __str__(self) -> str:
        return f"rotation {self.id} of {self.session_id} ({self.state})"

"""The event types a webhook can subscribe to: the SDK's names and Stowage's own.

docs/webhooks.md shows each one's payload. ``webhook.test`` is sent only by a test request, to
the webhook it tests, whatever that webhook subscribes to.
"""

from __future__ import annotations

EVENT_TYPES: dict[str, str] = {
    "sandbox.created": "a sandbox was created",
    "sandbox.ready": "a sandbox started and is running",
    "sandbox.stopped": "a sandbox stopped",
    "sandbox.error": "a sandbox failed to start",
    "sandbox.timeout": "a sandbox reached its expiry and is being stopped",
    "command.started": "a command started in a sandbox",
    "command.completed": "a command exited with status 0",
    "command.failed": "a command exited with another status, timed out or could not run",
    "file.written": "files were written into a sandbox",
    "artifact.uploaded": "an artifact was stored and is ready",
    "artifact.downloaded": "an artifact was downloaded (API, presigned URL, share link, into a sandbox)",
    "artifact.deleted": "an artifact was deleted",
    "artifact.expired": "an artifact reached its expiry and was deleted",
    "artifact.restored": "an artifact was restored from the trash",
    "share.created": "a share link became active",
    "share.downloaded": "an artifact was downloaded through a share link",
    "share.revoked": "a share link was revoked",
    "session.running": "an agent session is running (started, resumed or rotated)",
    "session.rotating": "an agent session is moving to a new sandbox",
    "session.paused": "an agent session was paused",
    "session.completed": "an agent session completed",
    "session.failed": "an agent session failed",
    "session.cancelled": "an agent session was cancelled",
}

TEST_EVENT = "webhook.test"

"""Webhook settings (docs/webhooks.md), imported at the end of config/settings.py."""

from __future__ import annotations

import sys

from config.env import env_int, env_list, env_str

# Host names, or networks in CIDR form, that webhooks may reach although their addresses are
# loopback, private or link-local. The test suite allows its own receivers on 127.0.0.1.
STOWAGE_WEBHOOK_ALLOWED_HOSTS = env_list(
    "STOWAGE_WEBHOOK_ALLOWED_HOSTS", ["127.0.0.1/32"] if "pytest" in sys.modules else []
)
# Failed deliveries in a row, over at least this long, that disable a webhook.
STOWAGE_WEBHOOK_DISABLE_AFTER = env_int("STOWAGE_WEBHOOK_DISABLE_AFTER", 20)
STOWAGE_WEBHOOK_DISABLE_AFTER_SECONDS = env_int("STOWAGE_WEBHOOK_DISABLE_AFTER_SECONDS", 24 * 3600)
# A Retry-After longer than this is cut to it; so is every backoff.
STOWAGE_WEBHOOK_MAX_RETRY_DELAY_SECONDS = env_int("STOWAGE_WEBHOOK_MAX_RETRY_DELAY_SECONDS", 600)
# While a webhook fails, the sweep sends its oldest failed delivery again this often; the first
# success sends every failed delivery younger than the replay window again.
STOWAGE_WEBHOOK_PROBE_SECONDS = env_int("STOWAGE_WEBHOOK_PROBE_SECONDS", 60)
STOWAGE_WEBHOOK_REPLAY_WINDOW_SECONDS = env_int("STOWAGE_WEBHOOK_REPLAY_WINDOW_SECONDS", 3 * 86400)
# How long an attempt's claim outlives its timeout before the sweep presumes its worker dead.
STOWAGE_WEBHOOK_LEASE_GRACE_SECONDS = env_int("STOWAGE_WEBHOOK_LEASE_GRACE_SECONDS", 30)
# Rows the sweep leaves alone this long, so the task sent on commit gets there first.
STOWAGE_WEBHOOK_SWEEP_GRACE_SECONDS = env_int("STOWAGE_WEBHOOK_SWEEP_GRACE_SECONDS", 5)
STOWAGE_WEBHOOK_SWEEP_SECONDS = env_int("STOWAGE_WEBHOOK_SWEEP_SECONDS", 10)
# Events (and their deliveries) are kept this long for the delivery log and redelivery.
STOWAGE_WEBHOOK_EVENT_RETENTION_DAYS = env_int("STOWAGE_WEBHOOK_EVENT_RETENTION_DAYS", 30)
STOWAGE_WEBHOOK_MAX_PER_ORGANIZATION = env_int("STOWAGE_WEBHOOK_MAX_PER_ORGANIZATION", 50)

# The queue of webhook tasks. Deliveries mostly wait on receivers, so by default a queue of their
# own that each host's command pool also consumes: a flood of them, or a slow receiver, never holds
# up the shared queue's tasks (share links, sweeps) or a host's file calls and transfers.
STOWAGE_WEBHOOK_QUEUE = env_str("STOWAGE_WEBHOOK_QUEUE", "stowage.webhooks")

WEBHOOK_BEAT_SCHEDULE = {
    "sweep-webhook-deliveries": {"task": "webhooks.sweep_deliveries", "schedule": STOWAGE_WEBHOOK_SWEEP_SECONDS},
    "prune-webhook-events": {"task": "webhooks.prune_events", "schedule": 3600},
}

# httpx notes every request at INFO: one line per delivery attempt, already in the delivery log.
WEBHOOK_LOGGERS = {"httpx": {"level": "WARNING"}, "httpcore": {"level": "WARNING"}}

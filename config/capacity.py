"""How much a sandbox host runs at once and how much work may wait for it (docs/operations.md).

Commands mostly wait on a sandbox's process, so a host runs many at once; file calls and
transfers have a pool of their own, so long commands never hold them up.
"""

from __future__ import annotations

import os

from config.env import env_int

_CPUS = os.cpu_count() or 1

# Threads of the worker pool that runs commands (queue sandbox.<host>.exec): each one only waits
# on a sandbox's process, so the bound is what the host's sandboxes can run, not its cores.
SANDBOX_EXEC_CONCURRENCY = env_int("STOWAGE_EXEC_CONCURRENCY", max(64, 64 * _CPUS))
# Threads of the pool that runs file calls, transfers and the shared queue (queue sandbox.<host>).
SANDBOX_FILE_CONCURRENCY = env_int("STOWAGE_FILE_CONCURRENCY", max(16, 8 * _CPUS))
# Commands, file calls and transfers sent to one host and not yet answered; past it the API
# answers 429 BACKLOG_FULL with Retry-After. Once half of it is taken, an organization holding
# more than its share (the backlog divided among the organizations waiting) is refused first.
HOST_BACKLOG = env_int("STOWAGE_HOST_BACKLOG", 1024)
BACKLOG_RETRY_AFTER_SECONDS = env_int("STOWAGE_BACKLOG_RETRY_AFTER_SECONDS", 2)
# Synchronous steps (database, audit) of async requests that one web process runs at once; it
# bounds the database connections that requests waiting on sandbox hosts can hold (core/threads.py).
WEB_DB_STEPS = env_int("STOWAGE_WEB_DB_STEPS", 16)
# `make run` (manage.py runstack) starts the workers this much nicer than the web process, which
# shares the machine with them there; 0 turns it off.
WORKER_NICENESS = env_int("STOWAGE_WORKER_NICENESS", 5)
# How long a worker's answer waits in Redis for the request that sent the task.
TASK_ANSWER_TTL_SECONDS = env_int("STOWAGE_TASK_ANSWER_TTL_SECONDS", 3600)

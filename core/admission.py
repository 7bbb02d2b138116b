"""Admission of work to a sandbox host: at most ``HOST_BACKLOG`` commands, file calls and
transfers sent to a host and not yet answered, shared fairly among organizations.

The count lives in Redis (sorted sets of task ids scored by the time their wait ends, so a task
that was lost stops counting by itself). Once half the backlog is taken, an organization that
already holds its share (the backlog divided among the organizations with work waiting) is
refused first, so one busy organization cannot fill a host for everyone else. A refusal is
``TooBusy`` (429 BACKLOG_FULL with Retry-After), never a wait that times out.
"""

from __future__ import annotations

import time
from functools import lru_cache

from django.conf import settings
from redis.client import Pipeline

from config.redis import get_redis
from core.errors import TooBusy

_ADMIT = """
local host, orgs, owners = KEYS[1], KEYS[2], KEYS[3]
local now, deadline, task, org, backlog = tonumber(ARGV[1]), tonumber(ARGV[2]), ARGV[3], ARGV[4], tonumber(ARGV[5])
local mine = host .. ':org:' .. org
redis.call('ZREMRANGEBYSCORE', host, '-inf', now)
redis.call('ZREMRANGEBYSCORE', mine, '-inf', now)
redis.call('ZREMRANGEBYSCORE', orgs, '-inf', now)
local total = redis.call('ZCARD', host)
if total >= backlog then return 0 end
if total * 2 >= backlog then
  local active = redis.call('ZCARD', orgs)
  if not redis.call('ZSCORE', orgs, org) then active = active + 1 end
  if redis.call('ZCARD', mine) >= math.max(1, math.floor(backlog / active)) then return 0 end
end
redis.call('ZADD', host, deadline, task)
redis.call('ZADD', mine, deadline, task)
local until_then = tonumber(redis.call('ZSCORE', orgs, org) or '0')
if deadline > until_then then redis.call('ZADD', orgs, deadline, org) end
redis.call('HSET', owners, task, org)
local ttl = math.ceil(deadline - now) + 60
for _, key in ipairs({host, mine, orgs, owners}) do
  if redis.call('TTL', key) < ttl then redis.call('EXPIRE', key, ttl) end
end
return 1
"""

_RELEASE = """
local host, orgs, owners = KEYS[1], KEYS[2], KEYS[3]
local task = ARGV[1]
local org = redis.call('HGET', owners, task)
redis.call('ZREM', host, task)
redis.call('HDEL', owners, task)
if org then
  local mine = host .. ':org:' .. org
  redis.call('ZREM', mine, task)
  if redis.call('ZCARD', mine) == 0 then redis.call('ZREM', orgs, org) end
end
return 1
"""


def _keys(host: str) -> list[str]:
    base = f"stowage:backlog:{host}"
    return [base, base + ":orgs", base + ":owners"]


@lru_cache(maxsize=1)
def _scripts():
    client = get_redis()
    return client.register_script(_ADMIT), client.register_script(_RELEASE)


def admit(*, host: str, organization_id: str, task_id: str, hold_seconds: float) -> None:
    """Count the task against the host's backlog, or refuse it with TooBusy."""
    now = time.time()
    admit_script, _ = _scripts()
    admitted = admit_script(
        keys=_keys(host), args=[now, now + hold_seconds, task_id, organization_id, settings.HOST_BACKLOG]
    )
    if not admitted:
        retry_after = settings.BACKLOG_RETRY_AFTER_SECONDS
        raise TooBusy(
            f"sandbox host {host} has more work waiting than it takes (backlog {settings.HOST_BACKLOG}); "
            f"retry in {retry_after} s",
            retry_after=retry_after,
            details={"host": host, "backlog": settings.HOST_BACKLOG},
        )


def release(*, host: str, task_id: str) -> None:
    """The task was answered (or never sent): it no longer counts. Safe to call twice."""
    _, release_script = _scripts()
    release_script(keys=_keys(host), args=[task_id])


def release_queued(pipe: Pipeline, *, host: str, task_id: str) -> None:
    """``release`` queued on ``pipe``, by its script's digest alone (a ``Script`` on a pipeline
    asks Redis whether it knows the script first, one more round trip each time). Its reply is a
    ``NoScriptError`` when Redis has forgotten the script (restarted since): call ``release``."""
    _, release_script = _scripts()
    pipe.evalsha(release_script.sha, 3, *_keys(host), task_id)


def backlog_size(host: str) -> int:
    return get_redis().zcount(_keys(host)[0], time.time(), "+inf")

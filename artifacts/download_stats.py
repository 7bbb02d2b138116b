"""Download statistics: each artifact's download count and last download time.

A download adds one to a Redis hash (artifact id → count) and sets its time in another; the
beat task ``artifacts.flush_download_stats`` folds both into the rows every few seconds with a
few bulk UPDATEs, so a popular artifact costs its row one write per flush instead of one per
download. The hashes are handed over by renaming them in one Lua script, so a download counted
between the flush's read and its delete lands in the next flush instead of being lost. When
Redis cannot be reached the download still succeeds and is counted straight on the row.
"""

from __future__ import annotations

import logging
from datetime import UTC, datetime
from functools import lru_cache

import redis
from celery import shared_task
from django.conf import settings
from django.db import transaction
from django.db.models import Case, F, Value, When
from django.db.models.functions import Coalesce, Greatest
from django.utils import timezone

from artifacts.models import Artifact

logger = logging.getLogger(__name__)

COUNTS_KEY = "stowage:downloads:counts"
TIMES_KEY = "stowage:downloads:times"
FLUSHING_COUNTS_KEY = "stowage:downloads:flushing:counts"
FLUSHING_TIMES_KEY = "stowage:downloads:flushing:times"
FLUSH_LOCK_KEY = "stowage:downloads:flush-lock"
# Longer than any flush takes; a flusher that died leaves the lock to expire.
FLUSH_LOCK_SECONDS = 120
FLUSH_BATCH = 500
# A download waits at most this long on Redis before it is counted on the row instead.
REDIS_TIMEOUT_SECONDS = 1.0

# Keeps the newer of two times (epoch seconds as text) for one artifact.
_RECORD = """
redis.call('HINCRBY', KEYS[1], ARGV[1], 1)
local seen = redis.call('HGET', KEYS[2], ARGV[1])
if (not seen) or tonumber(seen) < tonumber(ARGV[2]) then
  redis.call('HSET', KEYS[2], ARGV[1], ARGV[2])
end
return 1
"""

# Moves the live hashes aside unless a flush that died left some to finish first.
_HAND_OVER = """
if redis.call('EXISTS', KEYS[3]) == 1 then
  return 1
end
if redis.call('EXISTS', KEYS[1]) == 0 then
  return 0
end
redis.call('RENAME', KEYS[1], KEYS[3])
if redis.call('EXISTS', KEYS[2]) == 1 then
  redis.call('RENAME', KEYS[2], KEYS[4])
end
return 1
"""


@lru_cache(maxsize=4)
def _client_for(url: str) -> redis.Redis:
    return redis.Redis.from_url(
        url, socket_timeout=REDIS_TIMEOUT_SECONDS, socket_connect_timeout=REDIS_TIMEOUT_SECONDS, retry_on_timeout=False
    )


def stats_redis() -> redis.Redis:
    return _client_for(settings.REDIS_CLIENT_URL)


def download_record(*, artifact_id: str, at: datetime | None = None) -> None:
    """Count one download of ``artifact_id``. Never raises: a download is not refused for its statistics."""
    at = at or timezone.now()
    try:
        stats_redis().eval(_RECORD, 2, COUNTS_KEY, TIMES_KEY, artifact_id, f"{at.timestamp():.6f}")
        return
    except redis.RedisError as exc:
        logger.warning("download of %s counted on its row: Redis unavailable (%s)", artifact_id, type(exc).__name__)
    try:
        _fold({artifact_id: (1, at)})
    except Exception:
        logger.exception("could not count the download of %s", artifact_id)


def _fold(pending: dict[str, tuple[int, datetime]]) -> int:
    """Add each count and keep the later of each time, in one UPDATE per batch of artifacts."""
    ids = sorted(pending)
    for start in range(0, len(ids), FLUSH_BATCH):
        batch = ids[start : start + FLUSH_BATCH]
        added = Case(*[When(id=i, then=Value(pending[i][0])) for i in batch], default=Value(0))
        latest = Case(*[When(id=i, then=Value(pending[i][1])) for i in batch])
        # Greatest is NULL on SQLite when either side is, so a first download keeps its own time.
        Artifact.objects.filter(id__in=batch).update(
            download_count=F("download_count") + added,
            last_downloaded_at=Greatest(Coalesce(F("last_downloaded_at"), latest), latest),
        )
    return len(ids)


def _parse(counts: dict[bytes, bytes], times: dict[bytes, bytes]) -> dict[str, tuple[int, datetime]]:
    now = timezone.now()
    pending = {}
    for raw_id, raw_count in counts.items():
        raw_time = times.get(raw_id)
        at = datetime.fromtimestamp(float(raw_time), tz=UTC) if raw_time else now
        pending[raw_id.decode()] = (int(raw_count), at)
    return pending


def download_stats_flush() -> int:
    """Fold the counted downloads into their rows; how many artifacts changed."""
    client = stats_redis()
    if not client.set(FLUSH_LOCK_KEY, "1", nx=True, ex=FLUSH_LOCK_SECONDS):
        return 0
    try:
        if not client.eval(_HAND_OVER, 4, COUNTS_KEY, TIMES_KEY, FLUSHING_COUNTS_KEY, FLUSHING_TIMES_KEY):
            return 0
        pending = _parse(client.hgetall(FLUSHING_COUNTS_KEY), client.hgetall(FLUSHING_TIMES_KEY))
        with transaction.atomic():
            changed = _fold(pending)
        # Only once the rows hold them; a flush that dies before this repeats them next time.
        client.delete(FLUSHING_COUNTS_KEY, FLUSHING_TIMES_KEY)
        return changed
    finally:
        client.delete(FLUSH_LOCK_KEY)


@shared_task(name="artifacts.flush_download_stats", ignore_result=True)
def flush_download_stats() -> int:
    try:
        return download_stats_flush()
    except redis.RedisError as exc:
        # Downloads are counted on their rows meanwhile; the next run picks up what Redis kept.
        logger.warning("download statistics not flushed: Redis unavailable (%s)", type(exc).__name__)
        return 0

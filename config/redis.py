from __future__ import annotations

from functools import lru_cache

import redis
from django.conf import settings


@lru_cache(maxsize=1)
def get_redis() -> redis.Redis:
    return redis.Redis.from_url(
        settings.REDIS_CLIENT_URL, socket_timeout=30, socket_connect_timeout=5, health_check_interval=30
    )

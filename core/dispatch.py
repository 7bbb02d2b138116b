"""Sending work to a worker (on a sandbox's host queue or the shared one) and waiting for its answer."""

from __future__ import annotations

import logging
from collections.abc import Callable
from typing import Any

from celery import Task
from celery.exceptions import TimeoutError as CeleryTimeout
from kombu.exceptions import OperationalError
from redis.exceptions import ConnectionError as RedisConnectionError

from core.errors import GatewayTimeout, Unavailable, error_from_code

logger = logging.getLogger(__name__)


def enqueue(
    task: Task,
    *,
    host: str | None = None,
    task_id: str | None = None,
    on_unavailable: Callable[[], None] | None = None,
    **kwargs: Any,
):
    """Publish the task; when the broker is down, let the caller undo what it prepared
    (``on_unavailable``) and answer 503, so a retry of the request starts afresh."""
    if host is not None:
        kwargs["host"] = host
    try:
        return task.apply_async(kwargs=kwargs, task_id=task_id)
    except (OperationalError, RedisConnectionError) as exc:
        logger.warning("broker unavailable: %s", exc)
    except RuntimeError as exc:
        # Celery's result backend gives up reconnecting with a bare RuntimeError.
        if not isinstance(exc.__cause__, (OperationalError, RedisConnectionError, OSError)):
            raise
        logger.warning("result store unavailable: %s", exc.__cause__)
    if on_unavailable is not None:
        on_unavailable()
    raise Unavailable("the task queue is unavailable; try again shortly", code="BROKER_UNAVAILABLE") from None


def wait_for(async_result, *, timeout: float) -> dict[str, Any]:
    """The task's answer; a runtime error it reported becomes the matching API error."""
    try:
        answer = async_result.get(timeout=timeout, propagate=True, disable_sync_subtasks=False)
    except CeleryTimeout:
        raise GatewayTimeout(
            f"no worker answered within {int(timeout)} s; the sandbox host may be down or busy"
        ) from None
    except (OperationalError, RedisConnectionError):
        raise Unavailable("the task queue is unavailable; try again shortly", code="BROKER_UNAVAILABLE") from None
    error = answer.get("error") if isinstance(answer, dict) else None
    if error:
        raise error_from_code(error["code"], error["message"])
    return answer


def run_on_host(task: Task, *, host: str, timeout: float, **kwargs: Any) -> dict[str, Any]:
    return wait_for(enqueue(task, host=host, **kwargs), timeout=timeout)

"""Sending work to a worker (on a sandbox's host queue or the shared one) and waiting for its
answer: blocking (``wait_for``, for synchronous callers) or awaited (``await_task``, for the
API's async endpoints: the wait holds no thread, see ``core.answers``)."""

from __future__ import annotations

import logging
import uuid
from collections.abc import Callable
from typing import Any

from asgiref.sync import sync_to_async
from celery import Task
from celery.exceptions import TimeoutError as CeleryTimeout
from celery.result import AsyncResult
from kombu.exceptions import OperationalError
from redis.exceptions import ConnectionError as RedisConnectionError
from redis.exceptions import TimeoutError as RedisTimeoutError

from core import admission
from core.answers import await_answer
from core.errors import GatewayTimeout, StowageError, Unavailable, error_from_code

logger = logging.getLogger(__name__)


def _broker_unavailable() -> Unavailable:
    return Unavailable("the task queue is unavailable; try again shortly", code="BROKER_UNAVAILABLE")


def enqueue(
    task: Task,
    *,
    host: str | None = None,
    task_id: str | None = None,
    on_unavailable: Callable[[], None] | None = None,
    admit_org: str | None = None,
    hold_seconds: float = 3600,
    ignore_result: bool = False,
    **kwargs: Any,
):
    """Publish the task; when the broker is down, let the caller undo what it prepared
    (``on_unavailable``) and answer 503, so a retry of the request starts afresh.

    With ``admit_org`` the task first takes a place in its host's backlog (``core.admission``)
    for at most ``hold_seconds``; a full backlog is 429 BACKLOG_FULL, undone the same way.

    ``ignore_result`` is for a task only its sender awaits (``await_task``): its answer comes
    through ``core.answers`` alone, so neither Celery's result store nor its subscription to
    the result is needed."""
    if host is not None:
        kwargs["host"] = host
    admitted = False
    try:
        if admit_org is not None and host is not None:
            task_id = task_id or str(uuid.uuid4())
            admission.admit(host=host, organization_id=admit_org, task_id=task_id, hold_seconds=hold_seconds)
            admitted = True
        options = {"ignore_result": True} if ignore_result else {}
        return task.apply_async(kwargs=kwargs, task_id=task_id, **options)
    except StowageError:
        if on_unavailable is not None:
            on_unavailable()
        raise
    except (OperationalError, RedisConnectionError, RedisTimeoutError) as exc:
        logger.warning("broker unavailable: %s", exc)
    except RuntimeError as exc:
        # Celery's result backend gives up reconnecting with a bare RuntimeError.
        if not isinstance(exc.__cause__, (OperationalError, RedisConnectionError, OSError)):
            raise
        logger.warning("result store unavailable: %s", exc.__cause__)
    if admitted:
        _release_quietly(host, task_id)
    if on_unavailable is not None:
        on_unavailable()
    raise _broker_unavailable() from None


def _release_quietly(host: str | None, task_id: str | None) -> None:
    try:
        admission.release(host=host, task_id=task_id)
    except (RedisConnectionError, RedisTimeoutError, OSError):
        pass  # its place expires with its wait


def _checked(answer: Any) -> dict[str, Any]:
    error = answer.get("error") if isinstance(answer, dict) else None
    if error:
        raise error_from_code(error["code"], error["message"])
    return answer


def _no_answer(timeout: float) -> GatewayTimeout:
    return GatewayTimeout(f"no worker answered within {int(timeout)} s; the sandbox host may be down or busy")


def wait_for(async_result, *, timeout: float) -> dict[str, Any]:
    """The task's answer; a runtime error it reported becomes the matching API error."""
    try:
        answer = async_result.get(timeout=timeout, propagate=True, disable_sync_subtasks=False)
    except CeleryTimeout:
        raise _no_answer(timeout) from None
    except (OperationalError, RedisConnectionError):
        raise _broker_unavailable() from None
    return _checked(answer)


def _stored_answer(task_id: str) -> Any | None:
    result = AsyncResult(task_id)
    if not result.ready():
        return None
    return result.get(timeout=1, propagate=True, disable_sync_subtasks=False)


async def await_task(task_id: str, *, timeout: float) -> dict[str, Any]:
    """``wait_for`` without holding a thread or a Redis connection (``core.answers``)."""
    try:
        answer = await await_answer(task_id, timeout=timeout)
        if answer is None:
            # A worker of the previous release answers only through the result store.
            answer = await sync_to_async(_stored_answer, thread_sensitive=False)(task_id)
    except (OperationalError, RedisConnectionError, RedisTimeoutError, OSError) as exc:
        logger.warning("no answer from the task queue: %r", exc)
        raise _broker_unavailable() from None
    if answer is None:
        raise _no_answer(timeout)
    if isinstance(answer, dict) and "task_failed" in answer:
        raise StowageError(
            "the sandbox host failed while doing this; the request id identifies it in the logs",
            code="WORKER_FAILED",
        )
    return _checked(answer)


def run_on_host(task: Task, *, host: str, timeout: float, **kwargs: Any) -> dict[str, Any]:
    return wait_for(enqueue(task, host=host, hold_seconds=timeout, **kwargs), timeout=timeout)


async def arun_on_host(task: Task, *, host: str, timeout: float, **kwargs: Any) -> dict[str, Any]:
    """``run_on_host`` from async code: published in a thread, awaited without one."""
    pending = await sync_to_async(enqueue, thread_sensitive=False)(
        task, host=host, hold_seconds=timeout, ignore_result=True, **kwargs
    )
    return await await_task(pending.id, timeout=timeout)

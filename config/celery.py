"""The one Celery app, where every task is routed, and how a worker hands its answers back."""

from __future__ import annotations

import logging
import os
from typing import Any

from celery import Celery
from celery.signals import task_postrun, task_prerun
from redis.exceptions import NoScriptError

from config.redis import get_redis
from core import admission
from core.answers import publish_answer_queued

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "config.settings")

logger = logging.getLogger(__name__)

app = Celery("stowage")
app.config_from_object("django.conf:settings", namespace="CELERY")
app.autodiscover_tasks()
# An app whose work runs in a worker keeps its tasks in worker.py, beside the code they run.
app.autodiscover_tasks(related_name="worker")
# autodiscover_tasks() finds only <app>.tasks modules (and worker modules, above); these declare tasks
# beside the code they run.
app.conf.imports = (
    "artifacts.blobs",
    "artifacts.download_stats",
    "artifacts.services",
    "artifacts.trash_services",
    "transfers.direct",
    "transfers.sweeps",
)

SHARED_QUEUE = "stowage"
# Tasks that run a command in a sandbox: they mostly wait on its process, so they have a pool
# of their own on each host (queue sandbox.<host>.exec) and never hold up file calls and transfers.
COMMAND_TASKS = frozenset({"sandboxes.tasks.sandbox_execute"})


def sandbox_queue(host: str) -> str:
    """File calls, transfers and a sandbox's start and stop on ``host``."""
    return f"sandbox.{host}"


def command_queue(host: str) -> str:
    return f"sandbox.{host}.exec"


def webhook_queue() -> str:
    """Where webhook tasks go (``STOWAGE_WEBHOOK_QUEUE``)."""
    from django.conf import settings

    return settings.STOWAGE_WEBHOOK_QUEUE


def host_queues(host: str) -> list[str]:
    """Every queue of a sandbox host; a worker of the previous release consumed only the first."""
    return [sandbox_queue(host), command_queue(host)]


def route_task(
    name: str, args: Any, kwargs: dict[str, Any], options: dict[str, Any], task: Any = None, **_: Any
) -> dict[str, str]:
    # Work on a sandbox's files must run on the host that holds them; callers pass that
    # host as the `host` keyword and nothing else decides where such a task goes.
    host = (kwargs or {}).get("host")
    if host:
        return {"queue": command_queue(host) if name in COMMAND_TASKS else sandbox_queue(host)}
    if name.startswith("webhooks."):
        # Deliveries may wait on slow receivers: they go where waiting work goes.
        return {"queue": webhook_queue()}
    return {"queue": SHARED_QUEUE}


app.conf.task_routes = (route_task,)

# Celery's Django fixup closes a worker thread's database connections after every task, so each
# task opened a new one. Connections follow Django's own rules instead, as between requests
# (_reuse_connections below): kept up to CONN_MAX_AGE and while healthy; given back to the pool
# after every task where there is one (CONN_MAX_AGE 0), so idle threads hold none.
app.conf["CELERY_DB_REUSE_MAX"] = 1_000_000


@task_prerun.connect
@task_postrun.connect
def _reuse_connections(sender=None, task=None, **_: Any) -> None:
    if getattr(getattr(task, "request", None), "is_eager", False):
        return
    from django.db import close_old_connections

    close_old_connections()


@task_postrun.connect
def _hand_back_answer(sender=None, task_id=None, task=None, kwargs=None, retval=None, state=None, **_: Any) -> None:
    """A task of a sandbox host pushes its answer for the request awaiting it and leaves the
    host's backlog (core.admission); retries and revoked tasks leave nothing to hand back."""
    host = (kwargs or {}).get("host")
    if not host or state not in ("SUCCESS", "FAILURE") or getattr(task.request, "is_eager", False):
        return
    if getattr(task.request, "answer_handed_back", False):
        return
    answer = retval if state == "SUCCESS" else {"task_failed": type(retval).__name__}
    _give_back(host, task_id, answer)


def hand_back_now(task: Any, answer: Any) -> None:
    """The running task's answer, handed back before its last steps (the record of what it did)
    are done; its end then hands back nothing more. Celery's result store still gets the return
    value when the task ends."""
    request = task.request
    host = (request.kwargs or {}).get("host")
    if not host or getattr(request, "is_eager", False):
        return
    _give_back(host, request.id, answer)
    request.answer_handed_back = True


def _give_back(host: str, task_id: str, answer: Any) -> None:
    # The answer and the backlog place in one transaction (one round trip): the request the
    # answer ends may look at the backlog at once, and finds the place free.
    try:
        pipe = get_redis().pipeline(transaction=True)
        publish_answer_queued(pipe, task_id, answer)
        admission.release_queued(pipe, host=host, task_id=task_id)
        *published, released = pipe.execute(raise_on_error=False)
    except Exception:
        logger.exception("could not hand back the answer of task %s", task_id)
        return
    failed = next((reply for reply in published if isinstance(reply, Exception)), None)
    if failed is not None:
        logger.error("could not hand back the answer of task %s: %r", task_id, failed)
    if isinstance(released, NoScriptError):
        released = _release_alone(host, task_id)
    if isinstance(released, Exception):
        logger.error("could not give back the backlog place of task %s: %r", task_id, released)


def _release_alone(host: str, task_id: str) -> Exception | None:
    try:
        admission.release(host=host, task_id=task_id)
    except Exception as exc:
        return exc
    return None

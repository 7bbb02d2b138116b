"""The one Celery app, and where every task is routed."""

from __future__ import annotations

import os
from typing import Any

from celery import Celery

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "config.settings")

app = Celery("stowage")
app.config_from_object("django.conf:settings", namespace="CELERY")
app.autodiscover_tasks()
# An app whose work runs in a worker keeps its tasks in worker.py, beside the code they run.
app.autodiscover_tasks(related_name="worker")
# autodiscover_tasks() finds only <app>.tasks modules (and worker modules, above); these declare tasks
# beside the code they run.
app.conf.imports = ("artifacts.blobs", "artifacts.services", "transfers.direct", "transfers.sweeps")

SHARED_QUEUE = "stowage"


def sandbox_queue(host: str) -> str:
    return f"sandbox.{host}"


def route_task(
    name: str, args: Any, kwargs: dict[str, Any], options: dict[str, Any], task: Any = None, **_: Any
) -> dict[str, str]:
    # Work on a sandbox's files must run on the host that holds them; callers pass that
    # host as the `host` keyword and nothing else decides where such a task goes.
    host = (kwargs or {}).get("host")
    if host:
        return {"queue": sandbox_queue(host)}
    return {"queue": SHARED_QUEUE}


app.conf.task_routes = (route_task,)

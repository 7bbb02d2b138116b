"""The ASGI application the web processes serve (gunicorn with uvicorn workers, see
gunicorn.conf.py): requests that wait on a worker await its answer without holding a thread."""

from __future__ import annotations

import os

from django.core.asgi import get_asgi_application

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "config.settings")
django_application = get_asgi_application()

from ops.probes import liveness_first  # noqa: E402  (needs the apps loaded)

application = liveness_first(django_application)

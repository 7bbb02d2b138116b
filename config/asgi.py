"""The ASGI application the web processes serve (gunicorn with uvicorn workers, see
gunicorn.conf.py): requests that wait on a worker await its answer without holding a thread."""

from __future__ import annotations

import os

import django

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "config.settings")
# As django.core.asgi.get_asgi_application does, with the handler of config.asgi_handler.
django.setup(set_prefix=False)

from config.asgi_handler import PooledThreadASGIHandler  # noqa: E402  (needs the apps loaded)
from ops.probes import liveness_first  # noqa: E402

django_application = PooledThreadASGIHandler()
application = liveness_first(django_application)

"""The ASGI application the web processes serve (gunicorn with uvicorn workers, see
gunicorn.conf.py): requests that wait on a worker await its answer without holding a thread."""

from __future__ import annotations

import os

from django.core.asgi import get_asgi_application

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "config.settings")
application = get_asgi_application()

"""The sandbox runtime of this host, built once per worker process from settings."""

from __future__ import annotations

from functools import lru_cache

from django.conf import settings
from django.utils.module_loading import import_string

from sandboxes.runtime import SandboxRuntime


@lru_cache(maxsize=1)
def get_runtime() -> SandboxRuntime:
    runtime_class = import_string(settings.STOWAGE_SANDBOX_RUNTIME)
    return runtime_class(
        settings.SANDBOX_ROOT,
        allow_unisolated=settings.SANDBOX_ALLOW_UNISOLATED,
        output_limit_bytes=settings.SANDBOX_OUTPUT_LIMIT_BYTES,
        network=settings.SANDBOX_NETWORK,
        disk_enforce=settings.SANDBOX_DISK_ENFORCE,
    )

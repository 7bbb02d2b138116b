"""A system check: the instance's quota defaults must parse, or no upload could be checked."""

from __future__ import annotations

from django.core.checks import Error, register

from core.errors import InvalidInput
from quotas.limits import instance_defaults


@register()
def quota_defaults_parse(app_configs=None, **kwargs) -> list[Error]:
    try:
        instance_defaults()
    except InvalidInput as exc:
        return [Error(f"a STOWAGE_QUOTA_* setting is not valid: {exc.message}", id="quotas.E001")]
    return []

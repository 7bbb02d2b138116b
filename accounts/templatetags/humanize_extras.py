from __future__ import annotations

from datetime import datetime

from django import template
from django.utils import timezone
from django.utils.timesince import timesince, timeuntil

register = template.Library()


@register.filter
def ago(value: datetime | None) -> str:
    """'3 minutes ago' or 'in 2 hours'; the exact time is in the title where it matters."""
    if value is None:
        return "never"
    now = timezone.now()
    if abs((now - value).total_seconds()) < 60:
        return "just now"
    if value <= now:
        return f"{timesince(value, now).split(',')[0]} ago"
    return f"in {timeuntil(value, now).split(',')[0]}"

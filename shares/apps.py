from __future__ import annotations

from django.apps import AppConfig


class SharesConfig(AppConfig):
    name = "shares"
    default_auto_field = "django.db.models.BigAutoField"

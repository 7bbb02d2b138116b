from __future__ import annotations

from django.core.management.base import BaseCommand

from artifacts.download_stats import download_stats_flush
from usage.services import usage_snapshot_take


class Command(BaseCommand):
    help = (
        "Take today's usage snapshot of every organization now (beat does it hourly; "
        "a second run the same day rewrites that day's row), after folding in the counted downloads."
    )

    def handle(self, *args, **options) -> None:
        download_stats_flush()
        count = usage_snapshot_take()
        self.stdout.write(f"usage snapshot taken for {count} organization{'s' if count != 1 else ''}")

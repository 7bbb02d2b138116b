from __future__ import annotations

from django.core.management.base import BaseCommand, CommandError

from core.actor import Actor
from core.errors import StowageError
from quotas.counters import usage_recount
from quotas.models import QUOTA_NAMES
from quotas.selectors import quota_override, quota_usage
from quotas.services import organization_find, quota_set


class Command(BaseCommand):
    help = (
        "Show an organization's quota use and limits, set its overrides (0 is unlimited), clear them back "
        "to the instance's defaults, or recount its usage. ORG is the organization's id or name."
    )

    def add_arguments(self, parser):
        parser.add_argument("org", metavar="ORG")
        parser.add_argument("--bytes", help="stored (unique) bytes, e.g. 50GiB")
        parser.add_argument("--artifacts", help="artifacts, the trashed included")
        parser.add_argument("--largest", help="bytes of the largest artifact, e.g. 5GiB")
        parser.add_argument("--sandboxes", help="sandboxes creating or running at once")
        parser.add_argument(
            "--clear", action="append", default=[], choices=[*QUOTA_NAMES, "all"], help="back to the default"
        )
        parser.add_argument("--recount", action="store_true", help="recount stored bytes and artifacts")

    def handle(self, *args, **options):
        try:
            organization = organization_find(ref=options["org"])
            values = {name: options[name] for name in QUOTA_NAMES if options[name] is not None}
            clear = tuple(QUOTA_NAMES if "all" in options["clear"] else dict.fromkeys(options["clear"]))
            if values or clear:
                quota_set(
                    actor=Actor(organization_id=organization.id, label="manage.py org_quota"),
                    organization=organization,
                    values=values,
                    clear=clear,
                )
            if options["recount"]:
                usage_recount(organization_id=organization.id)
        except StowageError as exc:
            raise CommandError(exc.message) from None
        override = quota_override(organization_id=organization.id)
        self.stdout.write(f"{organization.name} ({organization.id})")
        for name, used, limit in quota_usage(organization):
            own = getattr(override, name, None) is not None
            shown = "unlimited" if limit is None else str(limit)
            self.stdout.write(f"  {name:<10} {used:>20} / {shown:<20} {'(set for this organization)' if own else ''}")

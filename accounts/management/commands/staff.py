from __future__ import annotations

from django.contrib.auth import get_user_model
from django.core.management.base import BaseCommand, CommandError
from django.db.models import Count, Q

from accounts.models import Role
from accounts.services import staff_set
from core.actor import Actor
from core.errors import StowageError


class Command(BaseCommand):
    help = (
        "List the instance's staff, or promote or demote an account (staff and superuser: /admin/, every organization)."
    )

    def add_arguments(self, parser):
        parser.add_argument("action", choices=["list", "promote", "demote"])
        parser.add_argument("username", nargs="?")

    def handle(self, *args, **options):
        if options["action"] == "list":
            staff = get_user_model().objects.filter(is_staff=True).order_by("date_joined", "pk")
            for user in staff.annotate(owns=Count("memberships", filter=Q(memberships__role=Role.OWNER))):
                notes = [
                    note
                    for note, applies in (
                        ("superuser", user.is_superuser),
                        (f"owner of {user.owns} organization(s)", user.owns),
                    )
                    if applies
                ]
                self.stdout.write(f"{user.get_username()}{' (' + ', '.join(notes) + ')' if notes else ''}")
            return
        if not options["username"]:
            raise CommandError(f"say whom to {options['action']}")
        try:
            user = staff_set(
                username=options["username"],
                staff=options["action"] == "promote",
                actor=Actor(organization_id=None, label="manage.py staff"),
            )
        except StowageError as exc:
            raise CommandError(exc.message) from None
        state = "is now staff" if user.is_staff else "is no longer staff"
        self.stdout.write(self.style.SUCCESS(f"{user.get_username()} {state}"))

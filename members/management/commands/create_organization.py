from __future__ import annotations

from django.conf import settings
from django.contrib.auth import get_user_model
from django.core.management.base import BaseCommand, CommandError
from django.urls import reverse

from core.actor import Actor
from core.errors import StowageError
from members.services import organization_create


class Command(BaseCommand):
    help = "Create an organization: with an existing account as its owner, or print an owner invitation link."

    def add_arguments(self, parser):
        parser.add_argument("name")
        parser.add_argument("--owner", help="username of an existing account to make the owner")

    def handle(self, *args, **options):
        owner = None
        if options["owner"]:
            owner = get_user_model().objects.filter(username=options["owner"]).first()
            if owner is None:
                raise CommandError(f"there is no account '{options['owner']}'")
        try:
            organization, token = organization_create(
                name=options["name"],
                actor=Actor(organization_id=None, label="manage.py create_organization"),
                owner=owner,
            )
        except StowageError as exc:
            raise CommandError(exc.message) from None
        self.stdout.write(f"Organization: {organization.name} ({organization.id})")
        if token:
            path = reverse("members-join", args=[organization.id, token])
            base = settings.PUBLIC_BASE_URL.rstrip("/") or "http://127.0.0.1:8000"
            self.stdout.write(f"Owner invitation (shown once, valid 7 days): {base}{path}")

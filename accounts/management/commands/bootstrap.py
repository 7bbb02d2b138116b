from __future__ import annotations

import json

from django.core.management.base import BaseCommand

from accounts.models import Organization
from accounts.services import organization_bootstrap


class Command(BaseCommand):
    help = "Create an organization, its owner user and an API key. The key and password are shown only now."

    def add_arguments(self, parser):
        parser.add_argument("--org", required=True, help="organization name")
        parser.add_argument("--email", required=True, help="owner's email address")
        parser.add_argument("--username", help="owner's username (default: the email's local part)")
        parser.add_argument(
            "--json", action="store_true", help="end with one JSON line: org_id, api_key, username, password"
        )
        parser.add_argument("--if-empty", action="store_true", help="do nothing when an organization already exists")

    def handle(self, *args, **options):
        if options["if_empty"] and Organization.objects.exists():
            self.stdout.write("An organization already exists; nothing created.")
            return
        org, user, password, _key, secret = organization_bootstrap(
            org_name=options["org"], email=options["email"], username=options["username"]
        )
        if options["json"]:
            self.stdout.write(
                json.dumps({"org_id": org.id, "api_key": secret, "username": user.get_username(), "password": password})
            )
            return
        self.stdout.write(
            "\n".join(
                [
                    f"Organization: {org.name} ({org.id})",
                    f"Sign in as:   {user.get_username()} / {password}",
                    f"API key:      {secret}",
                    "Keep these now: the password and the key are not shown again.",
                ]
            )
        )

from __future__ import annotations

import json
from urllib.parse import urlsplit

from django.conf import settings
from django.core.management.base import BaseCommand, CommandError

from artifacts.multipart import s3_bucket_cors, s3_set_bucket_cors
from artifacts.storage import BlobError, blob_storage, is_s3

# The rule this command owns in the bucket's CORS configuration; other rules are kept as they are.
RULE_ID = "stowage-direct-uploads"


def _origin(value: str) -> str:
    parts = urlsplit(value.strip())
    if (
        parts.scheme not in ("http", "https")
        or not parts.netloc
        or parts.path not in ("", "/")
        or parts.query
        or parts.fragment
    ):
        raise CommandError(
            f"{value!r} is not an origin: give a scheme and host (and port), such as https://stowage.example.com"
        )
    return f"{parts.scheme}://{parts.netloc}"


def _public_origin() -> list[str]:
    """The origin of STOWAGE_PUBLIC_URL (which may carry a path), if it is set."""
    if not settings.PUBLIC_BASE_URL:
        return []
    parts = urlsplit(settings.PUBLIC_BASE_URL.strip())
    return [_origin(f"{parts.scheme}://{parts.netloc}")]


def direct_upload_rule(origins: list[str]) -> dict:
    """What a browser on the dashboard needs to PUT parts: the method, the checksum header we sign."""
    return {
        "ID": RULE_ID,
        "AllowedOrigins": origins,
        "AllowedMethods": ["PUT"],
        "AllowedHeaders": ["content-type", "x-amz-checksum-sha256"],
        "ExposeHeaders": ["ETag"],
        "MaxAgeSeconds": 3600,
    }


class Command(BaseCommand):
    help = (
        "Let browsers on the dashboard send upload parts straight to the S3 bucket: adds (or replaces) "
        f"the CORS rule '{RULE_ID}' for the given origins and keeps the bucket's other rules."
    )

    def add_arguments(self, parser):
        parser.add_argument(
            "--origin",
            action="append",
            default=[],
            help="the dashboard's origin, such as https://stowage.example.com (repeatable; default: STOWAGE_PUBLIC_URL)",
        )
        parser.add_argument("--show", action="store_true", help="print the bucket's CORS rules and change nothing")
        parser.add_argument("--remove", action="store_true", help="remove this command's rule and keep the others")

    def handle(self, *args, **options):
        storage = blob_storage()
        if not is_s3(storage):
            raise CommandError(
                "Artifacts are not stored on S3 (AWS_STORAGE_BUCKET_NAME is not set); there is no bucket to configure."
            )
        try:
            rules = s3_bucket_cors()
        except BlobError as exc:
            raise CommandError(str(exc)) from None
        if options["show"]:
            self.stdout.write(json.dumps(rules, indent=2))
            return
        kept = [rule for rule in rules if rule.get("ID") != RULE_ID]
        if options["remove"]:
            new_rules = kept
        else:
            origins = [_origin(value) for value in options["origin"]] or _public_origin()
            if not origins:
                raise CommandError(
                    "Say where the dashboard is served: --origin https://stowage.example.com (or set STOWAGE_PUBLIC_URL)."
                )
            new_rules = [direct_upload_rule(origins), *kept]
        try:
            s3_set_bucket_cors(new_rules)
        except BlobError as exc:
            raise CommandError(str(exc)) from None
        if options["remove"]:
            self.stdout.write(
                f"Removed the rule {RULE_ID} from bucket {storage.bucket_name}; {len(kept)} other rule(s) kept."
            )
        else:
            self.stdout.write(
                f"Bucket {storage.bucket_name} now takes upload parts from {', '.join(new_rules[0]['AllowedOrigins'])}; {len(kept)} other rule(s) kept."
            )

from __future__ import annotations

from django.core.management.base import BaseCommand, CommandError

from audit.services import audit_verify_chain


class Command(BaseCommand):
    help = "Verify that the audit log has not been edited, truncated, reordered or had events deleted."

    def handle(self, *args, **options):
        report = audit_verify_chain()
        if not report.ok:
            where = f"event {report.first_bad_event_id}" if report.first_bad_event_id else "the end of the log"
            raise CommandError(
                f"audit log altered at {where}: {report.problem} ({report.checked} events verified before it)"
            )
        self.stdout.write(self.style.SUCCESS(f"audit log intact: {report.checked} events verified"))

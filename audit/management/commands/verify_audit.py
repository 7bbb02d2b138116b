from __future__ import annotations

from django.core.management.base import BaseCommand, CommandError

from audit.services import audit_verify_chain


def _span(report) -> str:
    if not report.checked:
        return "no events"
    return f"{report.checked} events verified, from {report.first_timestamp:%Y-%m-%d %H:%M:%S} to {report.last_timestamp:%Y-%m-%d %H:%M:%S} UTC"


class Command(BaseCommand):
    help = "Verify that the audit log has not been edited, truncated, reordered or had events deleted."

    def handle(self, *args, **options):
        report = audit_verify_chain()
        if not report.ok:
            where = f"event {report.first_bad_event_id}" if report.first_bad_event_id else "the end of the log"
            raise CommandError(
                f"audit log altered at {where}: {report.problem} ({_span(report)} before it; "
                f"last good hash {report.head_hash} at seq {report.head_seq})"
            )
        self.stdout.write(
            self.style.SUCCESS(
                f"audit log intact: {_span(report)}; head hash {report.head_hash} (seq {report.head_seq})"
            )
        )

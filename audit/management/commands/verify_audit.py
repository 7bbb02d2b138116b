from __future__ import annotations

from django.core.management.base import BaseCommand, CommandError

from audit.verify import SHARED_CHAIN, ChainReport, audit_verify_chains


def _span(report: ChainReport) -> str:
    if not report.checked:
        return "no events"
    return f"{report.checked} events verified, from {report.first_timestamp:%Y-%m-%d %H:%M:%S} to {report.last_timestamp:%Y-%m-%d %H:%M:%S} UTC"


def _name(report: ChainReport) -> str:
    if report.chain == SHARED_CHAIN:
        return "shared chain (before per-organization chains)"
    return f"chain {report.chain}"


class Command(BaseCommand):
    help = (
        "Verify that the audit log has not been edited, truncated, reordered or had events deleted: "
        "the shared chain of earlier events, then each organization's chain and the instance's, one by one."
    )

    def add_arguments(self, parser):
        parser.add_argument("--org", help="verify only this organization's chain (and the shared chain it starts from)")
        parser.add_argument(
            "--instance", action="store_true", help="verify only the chain of events of no organization"
        )

    def handle(self, *args, **options):
        reports = audit_verify_chains(organization_id=options["org"], instance=options["instance"])
        broken = [report for report in reports if not report.ok]
        total = sum(report.checked for report in reports)
        if not broken:
            self.stdout.write(self.style.SUCCESS(f"audit log intact: {total} events verified in {len(reports)} chains"))
        for report in reports:
            if report.ok:
                self.stdout.write(
                    f"  {_name(report)}: intact, {_span(report)}; head hash {report.head_hash} (seq {report.head_seq})"
                )
            else:
                where = f"event {report.first_bad_event_id}" if report.first_bad_event_id else "its end"
                self.stdout.write(
                    f"  {_name(report)}: ALTERED at {where}: {report.problem} ({_span(report)} before it; "
                    f"last good hash {report.head_hash} at seq {report.head_seq})"
                )
        if broken:
            first = broken[0]
            where = f"event {first.first_bad_event_id}" if first.first_bad_event_id else "the end of the log"
            raise CommandError(
                f"audit log altered at {where} in {_name(first)}: {first.problem} "
                f"({len(broken)} of {len(reports)} chains broken)"
            )

from __future__ import annotations

from datetime import datetime

from django.db.models import Count, Q, QuerySet

from audit.models import AuditEvent, Outcome


def action_filter(action: str) -> Q:
    """``artifact.`` (or ``artifact.*``) is every artifact action; anything else one action."""
    if action.endswith("*"):
        action = action[:-1]
    if action.endswith("."):
        return Q(action__startswith=action)
    return Q(action=action)


def audit_event_list(
    *,
    organization_id: str | None,
    sandbox_id: str | None = None,
    action: str | None = None,
    outcome: str | None = None,
    start_time: datetime | None = None,
    end_time: datetime | None = None,
    actor: str | None = None,
) -> QuerySet[AuditEvent]:
    # None is the instance security log: the events of no organization.
    events = AuditEvent.objects.filter(organization_id=organization_id)
    if actor:
        events = events.filter(actor__icontains=actor)
    if sandbox_id:
        events = events.filter(sandbox_id=sandbox_id)
    if action:
        events = events.filter(action_filter(action))
    if outcome:
        events = events.filter(outcome=outcome)
    if start_time:
        events = events.filter(timestamp__gte=start_time)
    if end_time:
        events = events.filter(timestamp__lte=end_time)
    return events.order_by("-seq")


def audit_sandbox_counts(*, organization_id: str, sandbox_id: str) -> dict[str, int]:
    return AuditEvent.objects.filter(organization_id=organization_id, sandbox_id=sandbox_id).aggregate(
        total_events=Count("seq"),
        commands_executed=Count("seq", filter=Q(action="command.execute")),
        files_written=Count("seq", filter=Q(action="file.write")),
        files_read=Count("seq", filter=Q(action="file.read")),
        secrets_accessed=Count("seq", filter=Q(action="secret.access")),
        errors=Count("seq", filter=~Q(outcome=Outcome.SUCCESS)),
    )

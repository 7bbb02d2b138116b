"""A system check for instances upgraded from versions that made every owner a superuser."""

from __future__ import annotations

from django.contrib.auth import get_user_model
from django.core.checks import Tags, Warning, register
from django.db import DatabaseError

from accounts.models import Membership, Role


@register(Tags.security, Tags.database)
def superusers_who_own_organizations(app_configs=None, databases=None, **kwargs) -> list[Warning]:
    """Superusers who own an organization, other than the instance's first administrator and
    those promoted with ``manage.py staff``: earlier versions of ``bootstrap`` made every owner a
    superuser, and an upgrade changes no one's rights by itself. Read only when the check is asked
    to look at the database (``migrate``, ``check --database default``)."""
    if not databases or "default" not in databases:
        return []
    from audit.models import AuditEvent

    User = get_user_model()
    try:
        superusers = list(User.objects.filter(is_superuser=True).order_by("date_joined", "pk"))
        if len(superusers) < 2:
            return []
        promoted = set(AuditEvent.objects.filter(action="staff.promote").values_list("resource", flat=True))
        owners = set(Membership.objects.filter(role=Role.OWNER, user__in=superusers).values_list("user_id", flat=True))
    except DatabaseError:
        # Before the first migrate there are no tables to read.
        return []
    named = [user for user in superusers[1:] if user.pk in owners and f"user:{user.pk}" not in promoted]
    if not named:
        return []
    names = ", ".join(user.get_username() for user in named)
    commands = "; ".join(f"manage.py staff demote {user.get_username()}" for user in named)
    return [
        Warning(
            f"{names} {'are superusers who own' if len(named) > 1 else 'is a superuser who owns'} an "
            "organization: earlier versions made every owner created by bootstrap a superuser, with "
            "/admin/ and every organization.",
            hint=f"Demote each who should not run the instance ({commands}); manage.py staff list shows them all.",
            id="accounts.W001",
        )
    ]

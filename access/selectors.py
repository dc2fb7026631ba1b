"""Reading the audit trail: newest first, by person, function, action and time."""

import datetime as dt

from django.db.models import QuerySet

from access.models import AuditAction, AuditEvent


def audit_events(
    *,
    actor: str = "",
    function: str = "",
    action: str = "",
    since: dt.datetime | None = None,
    until: dt.datetime | None = None,
) -> QuerySet[AuditEvent]:
    """Events matching every filter given; raises ValueError for an unknown action."""
    events = AuditEvent.objects.all()
    if action:
        if action not in AuditAction.values:
            raise ValueError(
                f"unknown action {action!r}; use one of: {', '.join(AuditAction.values)}"
            )
        events = events.filter(action=action)
    if actor:
        events = events.filter(actor=actor)
    if function:
        events = events.filter(function=function)
    if since is not None:
        events = events.filter(at__gte=since)
    if until is not None:
        events = events.filter(at__lt=until)
    return events

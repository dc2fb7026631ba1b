"""Reads of access: the audit trail (newest first, by person, function, action and time) and
the API tokens a person may see."""

import datetime as dt

from django.db.models import QuerySet

from access.actor import Actor
from access.models import ApiToken, AuditAction, AuditEvent
from access.rights import Right
from access.services import rights_of


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


def tokens_visible_to(actor: Actor) -> QuerySet[ApiToken]:
    """The API tokens `actor` may see, with their owners: everyone's for an admin (and the
    platform), else the person's own."""
    tokens = ApiToken.objects.select_related("created_by")
    if Right.ADMIN in rights_of(actor):
        return tokens
    if actor.user is None:
        return tokens.none()
    return tokens.filter(created_by=actor.user)

"""The audit trail, for admins: every change, who made it (person and token), when and from
where, filtered by person, function, action and day."""

import datetime as dt

from django.core.exceptions import PermissionDenied
from django.template.response import TemplateResponse

from access.actor import Actor
from access.models import AuditAction
from access.rights import Right
from access.selectors import audit_events
from access.services import AccessDenied, authorize
from common.paging import int_cursor, keyset_page, pager_query
from console.access import console_view
from console.inputs import ConsoleInputError, filter_text

PAGE_SIZE = 100


def _day(params, name: str) -> dt.date | None:
    raw = params.get(name, "").strip()
    if not raw:
        return None
    try:
        return dt.date.fromisoformat(raw)
    except ValueError:
        raise ConsoleInputError(f"{name} is a day written 2026-12-01, not {raw!r}.") from None


@console_view
def audit_page(request):
    try:
        authorize(Actor.of_request(request), Right.ADMIN)
    except AccessDenied as exc:
        raise PermissionDenied(exc.message) from None
    error, status, page = "", 200, None
    filters = {}
    try:
        filters = {
            "actor": filter_text(request.GET, "actor"),
            "function": filter_text(request.GET, "function"),
            "action": request.GET.get("action", ""),
        }
        since, until = _day(request.GET, "since"), _day(request.GET, "until")
        events = audit_events(
            **filters,
            since=dt.datetime.combine(since, dt.time(), dt.UTC) if since else None,
            until=dt.datetime.combine(until + dt.timedelta(days=1), dt.time(), dt.UTC)
            if until
            else None,
        )
        page = keyset_page(
            events,
            key="id",
            size=PAGE_SIZE,
            after=int_cursor(request.GET, "after"),
            before=int_cursor(request.GET, "before"),
            descending=True,
        )
    except (ConsoleInputError, ValueError) as exc:
        error, status = getattr(exc, "message", str(exc)), 400
    context = {
        "page": page,
        "filters": {
            **filters,
            "since": request.GET.get("since", ""),
            "until": request.GET.get("until", ""),
        },
        "actions": AuditAction.values,
        "error": error,
        "pager_query": pager_query(request.GET),
    }
    return TemplateResponse(request, "console/audit.html", context, status=status)

"""API tokens: create one (its text is shown once, in this response only, never cached),
list them with their scopes, expiry and last use, revoke. People see their own tokens; an
admin sees and revokes everyone's."""

import datetime as dt

from django.conf import settings
from django.contrib import messages
from django.template.response import TemplateResponse
from django.urls import reverse
from django.utils import timezone
from django.views.decorators.cache import never_cache

from access.actor import Actor
from access.auth import token_state
from access.models import ApiToken
from access.rights import Right
from access.selectors import tokens_visible_to
from access.services import rights_of
from access.tokens import TokenError, token_create, token_revoke
from common.errors import ServiceError
from common.paging import int_cursor, keyset_page, pager_query
from console.access import console_view, see_other

PAGE_SIZE = 50
MAX_EXPIRY_DAYS = 3650


def _expiry(raw: str, now: dt.datetime) -> dt.datetime | None:
    if raw == "":
        return None
    if not raw.isdigit() or not 1 <= int(raw) <= MAX_EXPIRY_DAYS:
        raise TokenError(
            f"Expires after is a number of days from 1 to {MAX_EXPIRY_DAYS}, or empty for never."
        )
    return now + dt.timedelta(days=int(raw))


def _create(request, actor: Actor) -> dict:
    now = timezone.now()
    token, plaintext = token_create(
        name=request.POST.get("name", ""),
        user=request.user,
        actor=actor,
        now=now,
        # The form always sends "scopes" (a hidden empty one first), so none ticked is an
        # error, not "everything"; a POST without the field gets all the person's rights.
        scopes=[s for s in request.POST.getlist("scopes") if s]
        if "scopes" in request.POST
        else None,
        expires_at=_expiry(request.POST.get("expires_days", "").strip(), now),
    )
    return {"token": token, "plaintext": plaintext}


def _revoke(request, actor: Actor):
    token_id = request.POST.get("token", "")
    token = ApiToken.objects.filter(pk=int(token_id)).first() if token_id.isdigit() else None
    if token is None:
        raise TokenError("There is no such API token; reload the page and try again.")
    token_revoke(token=token, actor=actor, now=timezone.now())
    messages.success(
        request,
        f"API token {token.name} ({token.prefix}…) revoked: requests with it are refused now.",
    )
    return see_other(reverse("tokens"))


@never_cache  # the page that shows a new token's text must never be stored by a browser
@console_view
def tokens_page(request):
    actor = Actor.of_request(request)
    error = ""
    created = None
    status = 200
    if request.method == "POST":
        action = request.POST.get("action")
        try:
            if action == "create":
                # Rendered here, not redirected: the text must not sit in a session or cookie.
                created, status = _create(request, actor), 201
            elif action == "revoke":
                return _revoke(request, actor)
            else:
                raise TokenError("Unknown action: use the page's buttons.")
        except ServiceError as exc:
            error, status = exc.message, exc.status
    held = rights_of(actor)
    page = keyset_page(
        tokens_visible_to(actor),
        key="id",
        size=PAGE_SIZE,
        after=int_cursor(request.GET, "after"),
        before=int_cursor(request.GET, "before"),
        descending=True,
    )
    now = timezone.now()
    # The API's own rule, so a token it refuses (no owner, owner deactivated) is not "active".
    for token in page.items:
        token.state = token_state(token, now)
    context = {
        "page": page,
        "created": created,
        "error": error,
        "scopes": [right.value for right in Right if right in held],
        "chosen_scopes": request.POST.getlist("scopes") if error else None,
        "sees_everyones": Right.ADMIN in held,
        "server_url": settings.CHALK_PUBLIC_URL.rstrip("/"),
        "name_value": request.POST.get("name", "") if error else "",
        "expires_value": request.POST.get("expires_days", "") if error else "",
        "pager_query": pager_query(request.GET),
    }
    return TemplateResponse(request, "console/tokens.html", context, status=status)

"""API tokens: create (its text is shown once, in this response only), list, revoke."""

from django.conf import settings
from django.contrib import messages
from django.template.response import TemplateResponse
from django.urls import reverse
from django.utils import timezone

from common.paging import int_cursor, keyset_page, pager_query
from console.access import console_view, see_other
from scheduling import services
from scheduling.errors import SchedulingError
from scheduling.models import ApiToken

PAGE_SIZE = 50


def _revoke(request, token_id: str):
    token = ApiToken.objects.filter(pk=int(token_id)).first() if token_id.isdigit() else None
    if token is None:
        raise SchedulingError("There is no such API token; reload the page and try again.")
    services.token_revoke(token=token, now=timezone.now())
    messages.success(
        request,
        f"API token {token.name} ({token.prefix}…) revoked: requests with it are refused now.",
    )
    return see_other(reverse("tokens"))


@console_view
def tokens_page(request):
    error = ""
    created = None
    status = 200
    if request.method == "POST":
        action = request.POST.get("action")
        try:
            if action == "create":
                token, plaintext = services.token_create(
                    name=request.POST.get("name", ""), created_by=request.user, now=timezone.now()
                )
                # Rendered here, not redirected: the text must not sit in a session or cookie.
                created = {"token": token, "plaintext": plaintext}
                status = 201
            elif action == "revoke":
                return _revoke(request, request.POST.get("token", ""))
            else:
                raise SchedulingError("Unknown action: use the page's buttons.")
        except SchedulingError as exc:
            error = exc.message
            status = 400
    page = keyset_page(
        ApiToken.objects.select_related("created_by"),
        key="id",
        size=PAGE_SIZE,
        after=int_cursor(request.GET, "after"),
        before=int_cursor(request.GET, "before"),
        descending=True,
    )
    context = {
        "page": page,
        "created": created,
        "error": error,
        "server_url": settings.CHALK_PUBLIC_URL.rstrip("/"),
        "name_value": request.POST.get("name", "") if error else "",
        "pager_query": pager_query(request.GET),
    }
    return TemplateResponse(request, "console/tokens.html", context, status=status)

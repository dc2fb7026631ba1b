"""Secrets: names, when they were set and which functions read them. Actions: set (new or
replace) and delete. A value is never shown, not even back in a rejected form."""

from django.contrib import messages
from django.template.response import TemplateResponse
from django.urls import reverse
from django.utils import timezone

from access.actor import Actor
from common.errors import ServiceError
from common.paging import keyset_page, pager_query, text_cursor
from console.access import console_view, see_other
from scheduling import services
from scheduling.errors import SchedulingError
from scheduling.models import Secret

PAGE_SIZE = 50


def _set(request, name: str) -> str:
    _, created = services.secret_set(
        name=name,
        value=request.POST.get("value", ""),
        actor=Actor.of_request(request),
        now=timezone.now(),
    )
    return (
        f"Secret {name} {'stored' if created else 'replaced'}. Its value is encrypted and is "
        f"never shown again; runs get it as the environment variable {name}."
    )


def _delete(request, name: str) -> str:
    secret = Secret.objects.filter(name=name).first()
    if secret is None:
        raise SchedulingError(f"There is no secret named {name!r} (it may have been deleted).")
    services.secret_delete(secret=secret, actor=Actor.of_request(request), now=timezone.now())
    return f"Secret {name} deleted."


ACTIONS = {"set": _set, "delete": _delete}


@console_view
def secrets_page(request):
    form_errors: dict[str, str] = {}
    status = 200
    if request.method == "POST":
        action = ACTIONS.get(request.POST.get("action", ""))
        name = request.POST.get("name", "")
        if action is None:
            form_errors["page"], status = "Unknown action: use the page's buttons.", 400
        else:
            try:
                messages.success(request, action(request, name))
                return see_other(reverse("secrets"))
            except ServiceError as exc:
                # Shown beside the form it came from: the "new secret" form or a secret's row.
                form_errors["new" if request.POST.get("form") == "new" else name] = exc.message
                status = exc.status
    page = keyset_page(
        Secret.objects.only("name", "created_at", "updated_at"),
        key="name",
        size=PAGE_SIZE,
        after=text_cursor(request.GET, "after"),
        before=text_cursor(request.GET, "before"),
    )
    listed = {secret.name for secret in page.items}
    for where in set(form_errors) - listed - {"new", "page"}:
        form_errors["page"] = form_errors.pop(where)  # its row is not on this page
    used_by = services.secret_users(names=sorted(listed))
    context = {
        "page": page,
        "secrets": [(secret, used_by.get(secret.name, [])) for secret in page.items],
        "errors": form_errors,
        # A rejected new secret keeps its name in the form, never its value.
        "new_name": request.POST.get("name", "") if "new" in form_errors else "",
        "pager_query": pager_query(request.GET),
    }
    return TemplateResponse(request, "console/secrets.html", context, status=status)

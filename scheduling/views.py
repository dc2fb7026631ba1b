"""Console pages for what the platform keeps besides functions: secrets and API tokens; and the
console's access rule, which every console view (here and in `runs/`) applies.

Who may use the console: an active user with staff status (or a superuser) — the operators
who already have the admin. Any other logged-in user gets 403 on every page and action;
anonymous visitors are sent to the login page. Grant access in the admin (Users → "Staff
status"); `make run` creates `admin`, a superuser.
"""

from functools import wraps
from urllib.parse import quote

from django.conf import settings
from django.contrib import messages
from django.contrib.auth.views import redirect_to_login
from django.core.exceptions import PermissionDenied
from django.db.models import Q
from django.http import HttpResponseRedirect
from django.shortcuts import resolve_url
from django.template.response import TemplateResponse
from django.urls import reverse
from django.utils import timezone
from django_htmx.http import HttpResponseClientRedirect

from chalkcompute.names import InvalidNameError, check_secret_name
from scheduling import services
from scheduling.errors import SchedulingError
from scheduling.models import ApiToken, Function, FunctionVersion, Secret
from scheduling.paging import int_cursor, keyset_page, pager_query, text_cursor

NO_CONSOLE_ACCESS = (
    "Your account may not use the Chalkweb console: it is for operators with staff status. "
    "Ask an administrator to turn on “Staff status” for you in the admin (Users)."
)
SECRETS_PAGE_SIZE = 50
TOKENS_PAGE_SIZE = 50


def can_use_console(user) -> bool:
    return bool(user.is_authenticated and user.is_active and (user.is_staff or user.is_superuser))


def console_view(view):
    """Applies the console's access rule: log in first, then staff only (403 otherwise).

    An htmx request (a poller, a row action) whose session ended is sent to the login page
    as a whole-page navigation, not a login form swapped into a fragment."""

    @wraps(view)
    def wrapper(request, *args, **kwargs):
        if not request.user.is_authenticated:
            if request.htmx:
                page = request.htmx.current_url_abs_path or request.get_full_path()
                login = resolve_url(settings.LOGIN_URL)
                return HttpResponseClientRedirect(f"{login}?next={quote(page)}")
            return redirect_to_login(request.get_full_path())
        if not can_use_console(request.user):
            raise PermissionDenied(NO_CONSOLE_ACCESS)
        return view(request, *args, **kwargs)

    return wrapper


def see_other(url: str) -> HttpResponseRedirect:
    """Post/redirect/get: a reload after an action does not repeat it."""
    response = HttpResponseRedirect(url)
    response.status_code = 303
    return response


# --- secrets ---------------------------------------------------------------------------------


@console_view
def secrets_page(request):
    """Secrets: names and when they were set. Actions: set (new or replace) and delete."""
    form_errors: dict[str, str] = {}
    status = 200
    if request.method == "POST":
        action = request.POST.get("action")
        name = request.POST.get("name", "")
        try:
            if action == "set":
                return _secret_set(request, name, request.POST.get("value", ""))
            if action == "delete":
                return _secret_delete(request, name)
            form_errors["page"] = "Unknown action: use the page's buttons."
        except (InvalidNameError, SchedulingError) as exc:
            # Shown beside the form it came from: the "new secret" form or a secret's row.
            form_errors["new" if request.POST.get("form") == "new" else name] = str(exc)
        status = 400
    page = keyset_page(
        Secret.objects.only("name", "created_at", "updated_at"),
        key="name",
        size=SECRETS_PAGE_SIZE,
        after=text_cursor(request.GET, "after"),
        before=text_cursor(request.GET, "before"),
    )
    listed = {secret.name for secret in page.items}
    for where in set(form_errors) - listed - {"new", "page"}:
        form_errors["page"] = form_errors.pop(where)  # its row is not on this page
    used_by = _secret_users(sorted(listed))
    context = {
        "page": page,
        "secrets": [(secret, used_by.get(secret.name, [])) for secret in page.items],
        "errors": form_errors,
        # A rejected new secret keeps its name in the form, never its value.
        "new_name": request.POST.get("name", "") if "new" in form_errors else "",
        "pager_query": pager_query(request.GET),
    }
    return TemplateResponse(request, "console/secrets.html", context, status=status)


def _secret_set(request, name: str, value: str):
    check_secret_name(name)
    if value == "":
        raise SchedulingError(f"Type a value for {name}: a secret cannot be empty.")
    _, created = services.secret_set(name=name, value=value, now=timezone.now())
    messages.success(
        request,
        f"Secret {name} {'stored' if created else 'replaced'}. Its value is encrypted and is "
        "never shown again; runs get it as the environment variable "
        f"{name}.",
    )
    return see_other(reverse("secrets"))


def _secret_delete(request, name: str):
    secret = Secret.objects.filter(name=name).first()
    if secret is None:
        raise SchedulingError(f"There is no secret named {name!r} (it may have been deleted).")
    services.secret_delete(secret=secret)
    messages.success(request, f"Secret {name} deleted.")
    return see_other(reverse("secrets"))


def _secret_users(names: list[str]) -> dict[str, list[str]]:
    """Which functions' current versions read each of `names`, in one query."""
    if not names:
        return {}
    rows = (
        FunctionVersion.objects.filter(
            pk__in=Function.objects.filter(current_version__isnull=False).values("current_version")
        )
        .exclude(Q(secret_names=[]))
        .values_list("function__name", "secret_names")
    )
    wanted = set(names)
    users: dict[str, list[str]] = {}
    for function_name, secret_names in rows:
        for name in wanted.intersection(secret_names):
            users.setdefault(name, []).append(function_name)
    return {name: sorted(functions) for name, functions in users.items()}


# --- API tokens ------------------------------------------------------------------------------


@console_view
def tokens_page(request):
    """API tokens: create (its text is shown once, in this response only), list, revoke."""
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
                return _token_revoke(request, request.POST.get("token", ""))
            else:
                raise SchedulingError("Unknown action: use the page's buttons.")
        except SchedulingError as exc:
            error = exc.message
            status = 400
    page = keyset_page(
        ApiToken.objects.select_related("created_by"),
        key="id",
        size=TOKENS_PAGE_SIZE,
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


def _token_revoke(request, token_id: str):
    token = ApiToken.objects.filter(pk=int(token_id)).first() if token_id.isdigit() else None
    if token is None:
        raise SchedulingError("There is no such API token; reload the page and try again.")
    services.token_revoke(token=token, now=timezone.now())
    messages.success(
        request,
        f"API token {token.name} ({token.prefix}…) revoked: requests with it are refused now.",
    )
    return see_other(reverse("tokens"))

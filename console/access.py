"""Who may use the console, applied by every console view; and post/redirect/get.

Who may use the console: an active user with staff status (or a superuser) — the operators
who already have the admin. Any other logged-in user gets 403 on every page and action;
anonymous visitors are sent to the login page. Grant access in the admin (Users → "Staff
status"); `make run` creates `admin`, a superuser.
"""

from functools import wraps
from urllib.parse import quote

from django.conf import settings
from django.contrib.auth.views import redirect_to_login
from django.core.exceptions import PermissionDenied
from django.http import HttpResponseRedirect
from django.shortcuts import resolve_url
from django_htmx.http import HttpResponseClientRedirect

NO_CONSOLE_ACCESS = (
    "Your account may not use the Chalkweb console: it is for operators with staff status. "
    "Ask an administrator to turn on “Staff status” for you in the admin (Users)."
)


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

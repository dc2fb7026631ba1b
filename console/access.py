"""Who may use the console, applied by every console view; what the templates may offer; and
post/redirect/get.

Anyone with a role (viewer, operator, deployer, admin; a superuser is an admin) may open the
console; each action asks for its own right again in the service that does it. A login with
no role gets 403 on every page; anonymous visitors are sent to the login page. `make run`
creates `admin`, a superuser; `manage.py set_role USER ROLE` gives others a role.
"""

from functools import wraps
from urllib.parse import quote

from django.conf import settings
from django.contrib.auth.views import redirect_to_login
from django.core.exceptions import PermissionDenied
from django.http import HttpResponseRedirect
from django.shortcuts import resolve_url
from django_htmx.http import HttpResponseClientRedirect

from access.actor import Actor
from access.rights import Right
from access.services import AccessDenied, authorize, rights_of, role_of


def console_view(view):
    """Applies the console's access rule: log in first, then the read right (403 otherwise).

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
        try:
            authorize(Actor.of_request(request), Right.READ)
        except AccessDenied as exc:
            raise PermissionDenied(exc.message) from None
        return view(request, *args, **kwargs)

    return wrapper


def rights(request) -> dict:
    """Template context: the signed-in person's role and rights, so pages offer only the
    buttons that person may use (the services check again)."""
    user = getattr(request, "user", None)
    if user is None or not user.is_authenticated:
        return {}
    actor = Actor.of_request(request)
    return {"role": role_of(user), "rights": {right.value for right in rights_of(actor)}}


def see_other(url: str) -> HttpResponseRedirect:
    """Post/redirect/get: a reload after an action does not repeat it."""
    response = HttpResponseRedirect(url)
    response.status_code = 303
    return response

"""Project-level views: the health check, the console's 400 and 404 pages, and the redirect
for console addresses typed with a trailing slash."""

from django.core.exceptions import DisallowedHost
from django.http import HttpResponseBadRequest, HttpResponseNotFound, JsonResponse
from django.shortcuts import redirect
from django.template import loader
from django.urls import Resolver404


def healthz(request):
    return JsonResponse({"status": "ok"})


def bad_request(request, exception):
    """Django's own 400 page renders without the request; this one keeps the console's
    frame and says what was wrong (e.g. a malformed ?after= cursor)."""
    template = loader.get_template("400.html")
    message = str(exception) if exception is not None and str(exception) else ""
    if isinstance(exception, DisallowedHost):  # its message repeats the forged Host
        message = "This server does not answer to that host name."
    return HttpResponseBadRequest(template.render({"exception": message}, request))


def page_not_found(request, exception):
    """Says what is missing in words ("No run 12") when a view said so; an address that no
    page serves gets the page's default sentence, never the name of a resolver exception."""
    message = ""
    if not isinstance(exception, Resolver404) and exception is not None:
        args = getattr(exception, "args", ())
        message = args[0] if args and isinstance(args[0], str) else ""
    template = loader.get_template("404.html")
    return HttpResponseNotFound(template.render({"exception": message}, request))


def without_trailing_slash(request, path: str):
    """/runs/ is how people type /runs: send them there (with the query string)."""
    query = request.META.get("QUERY_STRING", "")
    return redirect(f"/{path}" + (f"?{query}" if query else ""))

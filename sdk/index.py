"""The SDK's package index: a PEP 503 "simple" repository serving `chalkweb-sdk` (this server's
own wheel, distribution.py) at /simple/, so a project pins its SDK to the server it deploys
to. No login: the wheel is the SDK's source, the same for everyone, and holds no data.

It serves that one project. Any other name, `chalkcompute` included (PyPI's is Chalk's own SDK),
is a 404 that says which name to use, so a resolver pointed here never finds a look-alike.
"""

import re

from django.http import Http404, HttpResponse, HttpResponsePermanentRedirect
from django.urls import path
from django.utils.html import format_html
from django.views.decorators.http import require_safe

from sdk import distribution

NOT_SERVED = (
    "This index serves only {distribution} (Chalkweb's SDK, which provides the chalkcompute "
    "and chalk imports); there is no {name!r} here. Install {distribution}: PyPI's "
    "chalkcompute is Chalk's own SDK, not this server's."
)


def normalized(name: str) -> str:
    """PEP 503's normalized form of a project name."""
    return re.sub(r"[-_.]+", "-", name).lower()


def _page(title: str, links: str) -> HttpResponse:
    html = format_html(
        '<!DOCTYPE html>\n<html>\n<head><meta name="pypi:repository-version" content="1.0">'
        "<title>{}</title></head>\n<body>\n",
        title,
    )
    return HttpResponse(
        html + links + "</body>\n</html>\n", content_type="text/html; charset=utf-8"
    )


def _not_served(name: str) -> Http404:
    return Http404(NOT_SERVED.format(distribution=distribution.DISTRIBUTION, name=name))


@require_safe
def index(request):
    name = distribution.DISTRIBUTION
    return _page("Chalkweb SDK index", format_html('<a href="{}/">{}</a>\n', name, name))


@require_safe
def project(request, name: str):
    if normalized(name) != distribution.DISTRIBUTION:
        raise _not_served(name)
    if name != distribution.DISTRIBUTION:
        return HttpResponsePermanentRedirect(f"../{distribution.DISTRIBUTION}/")
    wheel = distribution.wheel()
    link = format_html(
        '<a href="{}#sha256={}" data-requires-python="{}">{}</a><br>\n',
        wheel.filename,
        wheel.sha256,
        distribution.REQUIRES_PYTHON,
        wheel.filename,
    )
    return _page(f"Links for {distribution.DISTRIBUTION}", link)


@require_safe
def download(request, name: str, filename: str):
    wheel = distribution.wheel()
    if name != distribution.DISTRIBUTION:
        raise _not_served(name)
    if filename != wheel.filename:
        raise Http404(f"No file {filename!r}: this server serves {wheel.filename}")
    response = HttpResponse(wheel.content, content_type="application/octet-stream")
    response["Content-Disposition"] = f'attachment; filename="{wheel.filename}"'
    return response


urlpatterns = [
    path("", index, name="sdk-index"),
    path("<str:name>/", project, name="sdk-project"),
    path("<str:name>/<str:filename>", download, name="sdk-download"),
]

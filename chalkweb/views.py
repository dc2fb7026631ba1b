"""Project-level views: the health check and the console's 400 page."""

from django.http import HttpResponseBadRequest, JsonResponse
from django.template import loader


def healthz(request):
    return JsonResponse({"status": "ok"})


def bad_request(request, exception):
    """Django's own 400 page renders without the request; this one keeps the console's
    frame and says what was wrong (e.g. a malformed ?after= cursor)."""
    template = loader.get_template("400.html")
    message = str(exception) if exception is not None and str(exception) else ""
    return HttpResponseBadRequest(template.render({"exception": message}, request))

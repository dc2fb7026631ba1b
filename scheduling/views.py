"""Console pages for what a function is (the runs app adds what happened to it)."""

from django.contrib.auth.decorators import login_required
from django.http import Http404
from django.template.response import TemplateResponse

from scheduling import selectors

NEXT_FIRE_TIMES_SHOWN = 5


@login_required
def function_page(request, name: str):
    function = selectors.function_get(name=name)
    if function is None:
        raise Http404(f"No function named {name}")
    context = {
        "function": function,
        "version": function.current_version,
        "schedule_description": selectors.schedule_description(function.current_version),
        "next_fire_times": selectors.next_fire_times(function, NEXT_FIRE_TIMES_SHOWN),
    }
    return TemplateResponse(request, "console/function.html", context)

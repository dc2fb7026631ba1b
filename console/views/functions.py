"""The functions list: every function with its schedule, next run, last runs and state; pause
(with a reason), resume and run now, one at a time or for the selected functions."""

from django.contrib import messages
from django.template.response import TemplateResponse
from django_htmx.http import HttpResponseClientRedirect

from common.paging import pager_query, text_cursor
from console.access import console_view, see_other
from console.inputs import ConsoleInputError, filter_text
from console.views.deploy import deploy_lines
from console.views.function_actions import function_action
from runs import selectors
from scheduling import selectors as scheduling_selectors
from scheduling.models import Function
from scheduling.services import MAX_PAUSE_REASON

PAGE_SIZE = 50
LAST_RUNS_SHOWN = 10
STATES = {"": "any state", "active": "active", "paused": "paused"}


@console_view
def functions_page(request):
    flash = error = error_function = ""
    status = 200
    if request.method == "POST":
        try:
            done = function_action(request)
        except ConsoleInputError as exc:
            error, error_function, status = exc.message, exc.function, exc.status
        else:
            if done.next_url:
                if request.htmx:
                    return HttpResponseClientRedirect(done.next_url)
                return see_other(done.next_url)
            if not request.htmx:
                messages.success(request, done.message)
                return see_other(request.get_full_path())
            flash = done.message
    try:
        name_contains = filter_text(request.GET, "q")
    except ConsoleInputError as exc:
        name_contains, error, status = "", exc.message, 400
    state = request.GET.get("state", "")
    if state not in STATES:
        state = ""
    tag_text, tag = request.GET.get("tag", "").strip(), None
    if tag_text:
        try:
            tag = scheduling_selectors.parse_tag(tag_text)
        except ValueError as exc:
            tag_text, error, status = "", str(exc), 400
    page = selectors.function_list_page(
        name_contains=name_contains,
        state=state,
        tag=tag,
        after=text_cursor(request.GET, "after"),
        before=text_cursor(request.GET, "before"),
        size=PAGE_SIZE,
    )
    last_runs = selectors.last_runs(
        function_ids=[function.id for function in page.items], per_function=LAST_RUNS_SHOWN
    )
    rows = [
        {
            "function": function,
            "schedule": scheduling_selectors.schedule_description(function.current_version),
            "last_runs": last_runs.get(function.id, []),
        }
        for function in page.items
    ]
    context = {
        "page": page,
        "rows": rows,
        "filters": {"q": name_contains, "state": state, "tag": tag_text},
        "states": STATES,
        "flash": flash,
        "error": error,
        "error_function": error_function,
        "posted_reason": request.POST.get("reason", "") if error else "",
        "max_reason": MAX_PAUSE_REASON,
        "any_function": bool(rows) or Function.objects.exists(),
        "pager_query": pager_query(request.GET),
        "deploy": deploy_lines(),
    }
    template = "console/functions.html"
    if request.htmx and (request.method == "POST" or request.htmx.target == "function-list"):
        template += "#function-list"
    return TemplateResponse(request, template, context, status=status)

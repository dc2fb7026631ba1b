"""All runs, newest first, by function and status, and by text in their logs."""

from django.template.response import TemplateResponse

from common.paging import int_cursor, pager_query
from console.access import console_view
from console.inputs import ConsoleInputError, filter_text
from runs import selectors
from runs.models import RunStatus
from scheduling.models import Function

PAGE_SIZE = 50


@console_view
def runs_page(request):
    error = ""
    status_code = 200
    try:
        function_name = filter_text(request.GET, "function")
        log_text = filter_text(request.GET, "q")
    except ConsoleInputError as exc:
        function_name, log_text, error, status_code = "", "", exc.message, 400
    status = request.GET.get("status", "")
    if status not in RunStatus.values:
        if status:
            error, status_code = f"Unknown status {status!r}: pick one from the list.", 400
        status = ""
    function = None
    if function_name:
        function = Function.objects.filter(name=function_name).only("id", "name").first()
        if function is None:
            error = f"There is no function named {function_name!r}; check the name."
            status_code = 400
    page = None
    if not error:
        page = selectors.run_list_page(
            function=function,
            status=status,
            log_text=log_text,
            after=int_cursor(request.GET, "after"),
            before=int_cursor(request.GET, "before"),
            size=PAGE_SIZE,
        )
    context = {
        "page": page,
        "filters": {"function": function_name, "status": status, "q": log_text},
        "statuses": RunStatus.values,
        "error": error,
        "search_window": selectors.LOG_SEARCH_WINDOW,
        "search_max_runs": selectors.LOG_SEARCH_MAX_RUNS,
        "pager_query": pager_query(request.GET),
    }
    return TemplateResponse(request, "console/runs.html", context, status=status_code)

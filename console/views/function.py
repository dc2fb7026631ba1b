"""A function's page: configuration, build state, next fire times, missed and skipped slots,
backfills with their progress, versions with a diff and rollback, and its runs newest first;
pause, resume, run now, backfill (with a confirm step for a large one) and its cancel."""

from django.contrib import messages
from django.http import Http404
from django.template.response import TemplateResponse
from django.urls import reverse
from django.utils import timezone

from access.selectors import audit_events
from alerts import selectors as alert_selectors
from common.paging import int_cursor, pager_query
from console.access import console_view, see_other
from console.inputs import ConfirmationNeeded, ConsoleInputError
from console.views.function_actions import function_action
from runs import selectors
from runs.backfills import MAX_PARALLEL
from runs.executors import executor_for
from runs.models import BackfillStatus
from scheduling import selectors as scheduling_selectors
from scheduling.services import MAX_PAUSE_REASON
from scheduling.versions import versions_to_diff

RUNS_PAGE_SIZE = 25
VERSIONS_PAGE_SIZE = 10
MISSED_SHOWN = 10
NEXT_FIRE_TIMES_SHOWN = 5
EVENTS_SHOWN = 20
BACKFILLS_SHOWN = 5
BACKFILL_FIELDS = ("start", "end", "rerun", "parallel")


@console_view
def function_page(request, name: str):
    function = scheduling_selectors.function_get(name=name)
    if function is None:
        raise Http404(f"No function named {name}")
    error = confirm = ""
    status = 200
    if request.method == "POST":
        try:
            done = function_action(request)
        except ConfirmationNeeded as exc:
            confirm = exc.question
        except ConsoleInputError as exc:
            error, status = exc.message, exc.status
            function = scheduling_selectors.function_get(name=name)
        else:
            messages.success(request, done.message)
            return see_other(done.next_url or reverse("function", args=[function.name]))

    version = function.current_version
    diff_from, diff_to, diff, diff_error = versions_to_diff(
        function=function,
        wanted_from=int_cursor(request.GET, "from"),
        wanted_to=int_cursor(request.GET, "to"),
    )
    context = {
        "function": function,
        "version": version,
        "schedule_description": scheduling_selectors.schedule_description(version),
        "error": error,
        "posted_reason": request.POST.get("reason", "") if error else "",
        "max_reason": MAX_PAUSE_REASON,
        "pager_query": pager_query(
            request.GET, "after", "before", "versions_after", "versions_before", "from", "to"
        ),
        "diff_from": diff_from,
        "diff_to": diff_to,
        "diff": diff,
        "diff_error": diff_error,
        "confirm": confirm,
        # A backfill asked again (to confirm it, or to fix it) keeps what was typed.
        "backfill_form": {
            field: request.POST.get(field, "")
            for field in BACKFILL_FIELDS
            if request.POST.get("action") == "backfill"
        },
        "max_parallel": MAX_PARALLEL,
    }
    target = request.htmx.target if request.htmx else None
    if target == "version-diff":
        return TemplateResponse(request, "console/function.html#version-diff", context)
    context["backfills"] = selectors.function_backfills(function=function, limit=BACKFILLS_SHOWN)
    context["backfilling"] = any(b.status == BackfillStatus.RUNNING for b in context["backfills"])
    if target == "function-backfills":
        return TemplateResponse(request, "console/function.html#function-backfills", context)
    context["runs"] = selectors.function_runs_page(
        function=function,
        after=int_cursor(request.GET, "after"),
        before=int_cursor(request.GET, "before"),
        size=RUNS_PAGE_SIZE,
    )
    if target == "function-runs":
        return TemplateResponse(request, "console/function.html#function-runs", context)
    context.update(
        upcoming=scheduling_selectors.upcoming_fires(function, NEXT_FIRE_TIMES_SHOWN),
        image_builds=selectors.image_builds(image_id=version.image_id) if version else [],
        installs_at_start=bool(version) and executor_for().installs_at_start(version.image.spec),
        run_isolation=executor_for().isolation(),  # a warning when runs are not isolated
        missed=selectors.missed_and_skipped(function=function, limit=MISSED_SHOWN),
        run_times=selectors.run_times(function=function),
        shortest_gap=scheduling_selectors.shortest_gap(version, timezone.now())
        if version
        else None,
        events=list(audit_events(function=function.name)[:EVENTS_SHOWN]),
        alerts=list(alert_selectors.function_deliveries(function_id=function.id)[:EVENTS_SHOWN]),
        alerting=alert_selectors.function_alerting(function),
        missed_scan=selectors.MISSED_SCAN_RUNS,
        version_files=list(version.files.defer("content")) if version else [],
        versions=selectors.version_history_page(
            function=function,
            after=int_cursor(request.GET, "versions_after"),
            before=int_cursor(request.GET, "versions_before"),
            size=VERSIONS_PAGE_SIZE,
        ),
    )
    return TemplateResponse(request, "console/function.html", context, status=status)

"""A run's page: status, timings, attempts with their errors, the log (live while the run is
active, filtered by level and text), CPU and memory; cancel while active."""

from django.contrib import messages
from django.core.exceptions import PermissionDenied
from django.http import Http404
from django.template.response import TemplateResponse
from django.urls import reverse
from django.utils import timezone

from access.actor import Actor
from access.services import AccessDenied
from common.paging import int_cursor
from console import charts
from console.access import console_view, see_other
from console.inputs import ConsoleInputError, filter_text
from runs import selectors
from runs.executors import executor_for
from runs.services import run_cancel

LOG_TAIL_LINES = 500
LOG_POLL_LINES = 1000


def _cancel(request, run) -> None:
    try:
        cancelled = run_cancel(run=run, actor=Actor.of_request(request), now=timezone.now())
    except AccessDenied as exc:
        raise PermissionDenied(exc.message) from None
    if cancelled:
        messages.success(request, f"Cancelling run {run.id}: its function is stopped.")
    else:
        messages.info(request, f"Run {run.id} had already ended: nothing to cancel.")


def _log_filter(params) -> tuple[str, str]:
    level = params.get("level", "")
    if level not in selectors.LOG_LEVELS:
        raise ConsoleInputError(f"Unknown log level {level!r}: pick one from the list.")
    return level, filter_text(params, "q")


def _usage_context(run, attempts) -> dict:
    end = run.finished_at or timezone.now()
    seconds = (end - run.started_at).total_seconds() if run.started_at else 0
    series = selectors.usage_series(attempt_ids=[a.id for a in attempts], seconds=seconds)
    peak = max((a.peak_memory_bytes or 0 for a in attempts), default=0) or None
    cpu = sum(a.cpu_seconds or 0 for a in attempts) or None
    return {
        "cpu_chart": charts.line_chart(
            charts.cpu_percent([(t, c) for t, c, _ in series]), floor_max=100.0
        ),
        "memory_chart": charts.line_chart([(t, m) for t, _, m in series]),
        "usage_points": len(series),
        # The run's totals are written when it ends; while it runs, the attempts' so far.
        "peak_memory": run.peak_memory_bytes if run.peak_memory_bytes is not None else peak,
        "cpu_seconds": run.cpu_seconds if run.cpu_seconds is not None else cpu,
    }


def _live_tail(request, run, attempts, context: dict, after: int) -> TemplateResponse:
    """The lines after the last one the page has. The run's status is read before its lines,
    so the final poll of a run that ended has all of its lines."""
    lines = selectors.log_after(
        attempt_ids=[a.id for a in attempts],
        level=context["level"],
        text=context["log_text"],
        after=after,
        limit=LOG_POLL_LINES,
    )
    context.update(
        lines=lines,
        last_line=lines[-1].id if lines else after,
        page_was_empty=after == 0,  # its "no lines yet" note goes once lines come
        # Keep polling while the run is active, and after it ends until every line is in.
        live=run.is_active or len(lines) == LOG_POLL_LINES,
        **_usage_context(run, attempts),
    )
    return TemplateResponse(request, "console/run.html#poll", context)


def _log_page(run, attempts, context: dict, before: int | None) -> None:
    """The log's last lines, or the page of lines before `before` (which is not live)."""
    query = {
        "attempt_ids": [a.id for a in attempts],
        "level": context["level"],
        "text": context["log_text"],
        "limit": LOG_TAIL_LINES,
    }
    if before is not None:
        lines = selectors.log_before(before=before, **query)
        live, last_line = False, lines[-1].id if lines else before
    else:
        lines = selectors.log_tail(**query)
        live, last_line = run.is_active, lines[-1].id if lines else 0
    context.update(
        lines=lines,
        last_line=last_line,
        live=live,
        earlier=lines[0].id if len(lines) == LOG_TAIL_LINES else None,
        reading_earlier=before is not None,
        **_usage_context(run, attempts),
    )


@console_view
def run_page(request, run_id: int):
    run = selectors.run_for_page(run_id=run_id)
    if run is None:
        raise Http404(f"No run {run_id}")
    error = ""
    status = 200
    if request.method == "POST":
        if request.POST.get("action") == "cancel":
            _cancel(request, run)
            return see_other(reverse("run", args=[run.id]))
        error, status = "Unknown action: use the page's buttons.", 400
    try:
        level, log_text = _log_filter(request.GET)
    except ConsoleInputError as exc:
        level, log_text, error, status = "", "", exc.message, 400
    attempts = selectors.run_attempts(run=run)
    context = {
        "run": run,
        "attempts": attempts,
        "attempt_numbers": {a.id: a.number for a in attempts},
        "level": level,
        "log_text": log_text,
        "levels": selectors.LOG_LEVELS,
        "error": error,
        "run_isolation": executor_for().isolation(),  # a warning when runs are not isolated
    }
    after = int_cursor(request.GET, "after")
    if request.htmx and after is not None:
        return _live_tail(request, run, attempts, context, after)
    _log_page(run, attempts, context, int_cursor(request.GET, "before"))
    template = "console/run.html"
    if request.htmx and request.htmx.target == "log":
        template += "#log"
    return TemplateResponse(request, template, context, status=status)

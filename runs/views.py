"""Console pages that show functions together with what happened to them: the functions
list (with their last runs), a function (config, versions, runs), all runs, and a run (its
attempts, live log, CPU and memory).

Each page is one view: GET renders the page, or, for an htmx request, only the named partial
the request targets; POST takes the page's actions (pause, resume, run now, rollback, cancel),
each a call of a service, then redirects (post/redirect/get), or re-renders the piece htmx
swapped. Every page works with plain links and forms; htmx only avoids the reloads.
"""

import difflib
import json
from dataclasses import dataclass

from django.conf import settings
from django.contrib import messages
from django.db import transaction
from django.http import Http404
from django.template.response import TemplateResponse
from django.urls import reverse
from django.utils import timezone
from django_htmx.http import HttpResponseClientRedirect

from runs import charts, selectors
from runs.models import RunStatus, Trigger
from runs.services import run_cancel, run_trigger
from scheduling import selectors as scheduling_selectors
from scheduling import services as scheduling_services
from scheduling.api.functions import MAX_PAUSE_REASON
from scheduling.errors import SchedulingError
from scheduling.models import Function, FunctionVersion
from scheduling.paging import int_cursor, pager_query, text_cursor
from scheduling.views import console_view, see_other

FUNCTIONS_PAGE_SIZE = 50
LAST_RUNS_SHOWN = 10
FUNCTION_RUNS_PAGE_SIZE = 25
VERSIONS_PAGE_SIZE = 10
MISSED_SHOWN = 10
NEXT_FIRE_TIMES_SHOWN = 5
RUNS_PAGE_SIZE = 50
LOG_TAIL_LINES = 500
LOG_POLL_LINES = 1000
MAX_FILTER_TEXT = 200

FUNCTION_STATES = {"": "any state", "active": "active", "paused": "paused"}
REASON_TOO_LONG = "A reason is at most {limit} characters; this one is {length}. Shorten it."
UNKNOWN_FUNCTION = "There is no function named {name!r} (it may have been deleted). Reload."
NOTHING_SELECTED = "Select one or more functions first (the boxes in the first column)."
NOT_DEPLOYED = "{name} has no deployed version to run."


class ActionError(Exception):
    """Bad input to a console action: shown on the page with status 400; nothing changed."""

    def __init__(self, message: str, *, function: str = "") -> None:
        super().__init__(message)
        self.message = message
        self.function = function  # the row the error belongs to, if any


def _actor(request) -> str:
    return request.user.get_username()


def _filter_text(params, name: str) -> str:
    value = params.get(name, "").strip()
    if len(value) > MAX_FILTER_TEXT:
        raise ActionError(f"The {name} filter is at most {MAX_FILTER_TEXT} characters.")
    return value


# --- functions -------------------------------------------------------------------------------


def _pause_reason(request) -> str:
    reason = request.POST.get("reason", "").strip()
    if len(reason) > MAX_PAUSE_REASON:
        raise ActionError(
            REASON_TOO_LONG.format(limit=MAX_PAUSE_REASON, length=len(reason)),
            function=request.POST.get("name", ""),
        )
    return reason


def _functions_named(names: list[str]) -> list[Function]:
    found = {f.name: f for f in Function.objects.filter(name__in=names)}
    for name in names:
        if name not in found:
            raise ActionError(UNKNOWN_FUNCTION.format(name=name), function=name)
    return [found[name] for name in names]


def _function_action(request) -> tuple[str, str | None]:
    """Runs the POSTed action of the functions list or a function page. Returns the message
    to show and, for "run now", the new run's page to go to. Raises ActionError on bad input
    before anything is written."""
    action = request.POST.get("action", "")
    now = timezone.now()
    if action in ("pause-selected", "resume-selected"):
        names = [n for n in request.POST.getlist("names") if n]
        if not names:
            raise ActionError(NOTHING_SELECTED)
        reason = _pause_reason(request) if action == "pause-selected" else ""
        functions = _functions_named(names)
        with transaction.atomic():  # all of them or, if one fails, none
            for function in functions:
                if action == "pause-selected":
                    scheduling_services.function_pause(
                        function=function, paused_by=_actor(request), reason=reason, now=now
                    )
                else:
                    scheduling_services.function_resume(function=function, now=now)
        verb = "Paused" if action == "pause-selected" else "Resumed"
        return f"{verb} {len(functions)} function(s): {', '.join(names)}.", None
    if action not in ("pause", "resume", "run", "rollback"):
        raise ActionError("Unknown action: use the page's buttons.")
    reason = _pause_reason(request) if action == "pause" else ""
    (function,) = _functions_named([request.POST.get("name", "")])
    if action == "pause":
        function = scheduling_services.function_pause(
            function=function, paused_by=_actor(request), reason=reason, now=now
        )
        why = f": {function.paused_reason}" if function.paused_reason else ""
        return f"Paused {function.name}{why}. No slots run until it is resumed.", None
    if action == "resume":
        function = scheduling_services.function_resume(function=function, now=now)
        return f"Resumed {function.name}.", None
    if action == "run":
        if function.current_version_id is None:
            raise ActionError(NOT_DEPLOYED.format(name=function.name), function=function.name)
        run = run_trigger(
            function=function, trigger=Trigger.MANUAL, triggered_by=_actor(request), now=now
        )
        return f"Started run {run.id} of {function.name}.", reverse("run", args=[run.id])
    number = request.POST.get("version", "")
    if not number.isdigit():
        raise ActionError("Choose a version to roll back to.", function=function.name)
    try:
        result = scheduling_services.function_rollback(
            function=function, number=int(number), deployed_by=_actor(request), now=now
        )
    except (SchedulingError, ValueError) as exc:
        raise ActionError(str(exc), function=function.name) from None
    current = result.function.current_version.number
    if result.outcome == "unchanged":
        return f"Version {number}'s content is what already runs (version {current}).", None
    return f"Rolled back: version {current} now has the content of version {number}.", None


@console_view
def functions_page(request):
    """Every function with its schedule, next run, last runs and state; pause (with a
    reason), resume and run now, one at a time or for the selected functions."""
    flash = error = ""
    error_function = ""
    status = 200
    if request.method == "POST":
        try:
            flash, run_url = _function_action(request)
        except ActionError as exc:
            error, error_function, status = exc.message, exc.function, 400
        else:
            if run_url:
                if request.htmx:
                    return HttpResponseClientRedirect(run_url)
                return see_other(run_url)
            if not request.htmx:
                messages.success(request, flash)
                return see_other(request.get_full_path())
    try:
        name_contains = _filter_text(request.GET, "q")
    except ActionError as exc:
        name_contains, error, status = "", exc.message, 400
    state = request.GET.get("state", "")
    if state not in FUNCTION_STATES:
        state = ""
    page = selectors.function_list_page(
        name_contains=name_contains,
        state=state,
        after=text_cursor(request.GET, "after"),
        before=text_cursor(request.GET, "before"),
        size=FUNCTIONS_PAGE_SIZE,
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
        "filters": {"q": name_contains, "state": state},
        "states": FUNCTION_STATES,
        "flash": flash,
        "error": error,
        "error_function": error_function,
        "posted_reason": request.POST.get("reason", "") if error else "",
        "max_reason": MAX_PAUSE_REASON,
        "any_function": bool(rows) or Function.objects.exists(),
        "pager_query": pager_query(request.GET),
    }
    template = "console/functions.html"
    if request.htmx and (request.method == "POST" or request.htmx.target == "function-list"):
        template += "#function-list"
    return TemplateResponse(request, template, context, status=status)


# --- a function ------------------------------------------------------------------------------


def version_document(version: FunctionVersion) -> list[str]:
    """A version as lines of text, configuration first, for the diff between two versions."""
    retries = version.retries or {}
    lines = [
        f"schedule:   {version.schedule or 'on demand'}"
        + (f"  (cron {version.cron})" if version.cron and version.cron != version.schedule else ""),
        f"image:      {json.dumps(version.image.spec, sort_keys=True)}",
        f"cpu:        {version.cpu or 'default'}",
        f"memory:     {version.memory or 'default'}",
        f"gpu:        {version.gpu or 'none'}",
        f"retries:    {json.dumps(retries, sort_keys=True)}",
        f"timeout:    {f'{version.timeout:g} s' if version.timeout else 'none'}",
        f"overlap:    {version.overlap}",
        f"secrets:    {', '.join(version.secret_names) or 'none'}",
        f"entrypoint: {version.entrypoint} in {version.source_filename}",
        "",
    ]
    return lines + version.source.splitlines()


@dataclass(frozen=True)
class DiffLine:
    kind: str  # "add", "remove", "hunk", "context", "file"
    text: str


def version_diff(old: FunctionVersion, new: FunctionVersion) -> list[DiffLine]:
    """A unified diff (difflib) of two versions' documents, each line tagged for display."""
    diff = difflib.unified_diff(
        version_document(old),
        version_document(new),
        fromfile=f"version {old.number}",
        tofile=f"version {new.number}",
        lineterm="",
        n=3,
    )
    tagged = []
    for line in diff:
        if line.startswith(("---", "+++")):
            kind = "file"
        elif line.startswith("@@"):
            kind = "hunk"
        elif line.startswith("+"):
            kind = "add"
        elif line.startswith("-"):
            kind = "remove"
        else:
            kind = "context"
        tagged.append(DiffLine(kind=kind, text=line))
    return tagged


def _diff_context(function: Function, params) -> dict:
    current = function.current_version.number if function.current_version else 0
    wanted_from = int_cursor(params, "from")
    wanted_to = int_cursor(params, "to")
    context = {
        "diff_from": wanted_from or max(current - 1, 1),
        "diff_to": wanted_to or current,
        "diff": None,
        "diff_error": "",
    }
    if wanted_from is None and wanted_to is None:
        return context
    versions = {
        v.number: v
        for v in FunctionVersion.objects.select_related("image").filter(
            function=function, number__in=[context["diff_from"], context["diff_to"]]
        )
    }
    missing = [n for n in (context["diff_from"], context["diff_to"]) if n not in versions]
    if missing:
        context["diff_error"] = (
            f"{function.name} has no version {missing[0]}; versions are numbered 1 to {current}."
        )
        return context
    context["diff"] = version_diff(versions[context["diff_from"]], versions[context["diff_to"]])
    return context


@console_view
def function_page(request, name: str):
    """A function: configuration, build state, next fire times, missed and skipped slots,
    versions with a diff and rollback, and its runs newest first; pause, resume, run now."""
    function = scheduling_selectors.function_get(name=name)
    if function is None:
        raise Http404(f"No function named {name}")
    error = ""
    status = 200
    if request.method == "POST":
        try:
            flash, run_url = _function_action(request)
        except ActionError as exc:
            error, status = exc.message, 400
        else:
            messages.success(request, flash)
            return see_other(run_url or reverse("function", args=[function.name]))
        function = scheduling_selectors.function_get(name=name)

    version = function.current_version
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
        **_diff_context(function, request.GET),
    }
    target = request.htmx.target if request.htmx else None
    if target == "version-diff":
        return TemplateResponse(request, "console/function.html#version-diff", context)
    runs = selectors.function_runs_page(
        function=function,
        after=int_cursor(request.GET, "after"),
        before=int_cursor(request.GET, "before"),
        size=FUNCTION_RUNS_PAGE_SIZE,
    )
    context["runs"] = runs
    if target == "function-runs":
        return TemplateResponse(request, "console/function.html#function-runs", context)
    context.update(
        next_fire_times=scheduling_selectors.next_fire_times(function, NEXT_FIRE_TIMES_SHOWN),
        image_builds=selectors.image_builds(image_id=version.image_id) if version else [],
        installs_at_start=(
            settings.CHALK_EXECUTOR == "kubernetes"
            and not settings.CHALK_K8S_REGISTRY
            and settings.CHALK_K8S_INSTALL_AT_START
        ),
        missed=selectors.missed_and_skipped(function=function, limit=MISSED_SHOWN),
        missed_scan=selectors.MISSED_SCAN_RUNS,
        versions=selectors.version_history_page(
            function=function,
            after=int_cursor(request.GET, "versions_after"),
            before=int_cursor(request.GET, "versions_before"),
            size=VERSIONS_PAGE_SIZE,
        ),
    )
    return TemplateResponse(request, "console/function.html", context, status=status)


# --- runs ------------------------------------------------------------------------------------


@console_view
def runs_page(request):
    """All runs, newest first, by function and status, and by text in their logs."""
    error = ""
    status_code = 200
    try:
        function_name = _filter_text(request.GET, "function")
        log_text = _filter_text(request.GET, "q")
    except ActionError as exc:
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
            size=RUNS_PAGE_SIZE,
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


# --- a run -----------------------------------------------------------------------------------


def _log_filter(params) -> tuple[str, str]:
    level = params.get("level", "")
    if level not in selectors.LOG_LEVELS:
        raise ActionError(f"Unknown log level {level!r}: pick one from the list.")
    return level, _filter_text(params, "q")


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


@console_view
def run_page(request, run_id: int):
    """A run: status, timings, attempts with their errors, the log (live while the run is
    active, filtered by level and text), CPU and memory; cancel while active."""
    run = selectors.run_for_page(run_id=run_id)
    if run is None:
        raise Http404(f"No run {run_id}")
    error = ""
    status = 200
    if request.method == "POST":
        if request.POST.get("action") == "cancel":
            if run_cancel(run=run, by=_actor(request), now=timezone.now()):
                messages.success(request, f"Cancelling run {run.id}: its function is stopped.")
            else:
                messages.info(request, f"Run {run.id} had already ended: nothing to cancel.")
            return see_other(reverse("run", args=[run.id]))
        error, status = "Unknown action: use the page's buttons.", 400
    try:
        level, log_text = _log_filter(request.GET)
    except ActionError as exc:
        level, log_text, error, status = "", "", exc.message, 400
    attempts = selectors.run_attempts(run=run)
    attempt_ids = [a.id for a in attempts]
    attempt_numbers = {a.id: a.number for a in attempts}
    context = {
        "run": run,
        "attempts": attempts,
        "attempt_numbers": attempt_numbers,
        "level": level,
        "log_text": log_text,
        "levels": selectors.LOG_LEVELS,
        "error": error,
    }
    after = int_cursor(request.GET, "after")
    if request.htmx and after is not None:
        # The live tail: lines after the last one the page has. The run's status is read
        # before its lines, so the final poll of a run that ended has all of its lines.
        lines = selectors.log_after(
            attempt_ids=attempt_ids, level=level, text=log_text, after=after, limit=LOG_POLL_LINES
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
    before = int_cursor(request.GET, "before")
    if before is not None:
        lines = selectors.log_before(
            attempt_ids=attempt_ids, level=level, text=log_text, before=before, limit=LOG_TAIL_LINES
        )
        live = False  # a page of earlier lines is not the tail
        last_line = lines[-1].id if lines else before
    else:
        lines = selectors.log_tail(
            attempt_ids=attempt_ids, level=level, text=log_text, limit=LOG_TAIL_LINES
        )
        live = run.is_active
        last_line = lines[-1].id if lines else 0
    context.update(
        lines=lines,
        last_line=last_line,
        live=live,
        earlier=lines[0].id if len(lines) == LOG_TAIL_LINES else None,
        reading_earlier=before is not None,
        **_usage_context(run, attempts),
    )
    if request.htmx and request.htmx.target == "log":
        return TemplateResponse(request, "console/run.html#log", context, status=status)
    return TemplateResponse(request, "console/run.html", context, status=status)

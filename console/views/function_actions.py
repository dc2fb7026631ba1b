"""The POST actions of the functions list and a function's page. Each is a small function
calling one service; it returns the message to show and, for "run now" and backfills, the
page to go to. Bad input raises ConsoleInputError before anything is written, and a backfill
that needs a confirmation ConfirmationNeeded."""

from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime

from django.urls import reverse
from django.utils import timezone

from access.actor import Actor
from common.errors import ServiceError
from console.inputs import ConfirmationNeeded, ConsoleInputError
from runs.backfills import backfill_cancel, backfill_start
from runs.errors import ConfirmRequiredError
from runs.models import Trigger
from runs.services import run_trigger
from scheduling import services
from scheduling.models import Function

UNKNOWN_FUNCTION = "There is no function named {name!r} (it may have been deleted). Reload."
NOTHING_SELECTED = "Select one or more functions first (the boxes in the first column)."
UNKNOWN_ACTION = "Unknown action: use the page's buttons."


@dataclass(frozen=True)
class Done:
    message: str
    next_url: str | None = None


def _functions_named(names: list[str]) -> list[Function]:
    found = {f.name: f for f in Function.objects.filter(name__in=names)}
    for name in names:
        if name not in found:
            raise ConsoleInputError(UNKNOWN_FUNCTION.format(name=name), function=name)
    return [found[name] for name in names]


def _one(request) -> Function:
    (function,) = _functions_named([request.POST.get("name", "")])
    return function


def _selected(request) -> list[Function]:
    names = [n for n in request.POST.getlist("names") if n]
    if not names:
        raise ConsoleInputError(NOTHING_SELECTED)
    return _functions_named(names)


def _reason(request) -> str:
    return request.POST.get("reason", "").strip()


def pause(request, now: datetime) -> Done:
    function = services.function_pause(
        function=_one(request),
        actor=Actor.of_request(request),
        reason=_reason(request),
        now=now,
    )
    why = f": {function.paused_reason}" if function.paused_reason else ""
    return Done(f"Paused {function.name}{why}. No slots run until it is resumed.")


def resume(request, now: datetime) -> Done:
    function = services.function_resume(
        function=_one(request), actor=Actor.of_request(request), now=now
    )
    return Done(f"Resumed {function.name}.")


def pause_selected(request, now: datetime) -> Done:
    functions = services.functions_pause(
        functions=_selected(request),
        actor=Actor.of_request(request),
        reason=_reason(request),
        now=now,
    )
    names = ", ".join(f.name for f in functions)
    return Done(f"Paused {len(functions)} function(s): {names}.")


def resume_selected(request, now: datetime) -> Done:
    functions = services.functions_resume(
        functions=_selected(request), actor=Actor.of_request(request), now=now
    )
    return Done(f"Resumed {len(functions)} function(s): {', '.join(f.name for f in functions)}.")


def run_now(request, now: datetime) -> Done:
    function = _one(request)
    run = run_trigger(
        function=function, trigger=Trigger.MANUAL, actor=Actor.of_request(request), now=now
    )
    return Done(f"Started run {run.id} of {function.name}.", reverse("run", args=[run.id]))


def _utc(request, field: str) -> datetime:
    """A datetime-local field, read as UTC (the page says so); an offset, if typed, counts."""
    try:
        moment = datetime.fromisoformat(request.POST.get(field, "").strip())
    except ValueError:
        raise ConsoleInputError(
            f"Give the {field} as a date and time in UTC, e.g. 2026-12-01 00:00.",
            function=request.POST.get("name", ""),
        ) from None
    return moment if moment.tzinfo else moment.replace(tzinfo=UTC)


def backfill(request, now: datetime) -> Done:
    function = _one(request)
    parallel = request.POST.get("parallel", "1").strip()
    if not parallel.isdigit():
        raise ConsoleInputError("Runs at once is a whole number, e.g. 1.", function=function.name)
    start, end = _utc(request, "start"), _utc(request, "end")
    try:
        started = backfill_start(
            function=function,
            start=start,
            end=end,
            rerun=bool(request.POST.get("rerun")),
            max_parallel=int(parallel),
            confirm=bool(request.POST.get("confirm")),
            actor=Actor.of_request(request),
            now=now,
        )
    except ConfirmRequiredError as exc:
        first, last = start.astimezone(UTC), end.astimezone(UTC)
        raise ConfirmationNeeded(
            f"This backfill runs {exc.runs} slots of {function.name}, from {first:%Y-%m-%d %H:%M} "
            f"to {last:%Y-%m-%d %H:%M} UTC. Start it?"
        ) from None
    skipped = (
        f" {started.skipped_slots} already succeeded and are skipped."
        if started.skipped_slots
        else ""
    )
    return Done(
        f"Started backfill {started.id} of {function.name}: {started.slots_to_run} slots, "
        f"{started.max_parallel} at a time.{skipped}",
        reverse("function", args=[function.name]) + "#backfills",
    )


def cancel_backfill(request, now: datetime) -> Done:
    function = _one(request)
    wanted = request.POST.get("backfill", "")
    found = function.backfills.filter(id=int(wanted)).first() if wanted.isdigit() else None
    if found is None:
        raise ConsoleInputError(
            f"{function.name} has no backfill {wanted!r:.20}. Reload.", function=function.name
        )
    page = reverse("function", args=[function.name]) + "#backfills"
    if not backfill_cancel(backfill=found, actor=Actor.of_request(request), now=now):
        return Done(f"Backfill {found.id} had already ended ({found.status}).", page)
    return Done(f"Cancelled backfill {found.id} of {function.name}.", page)


def rollback(request, now: datetime) -> Done:
    function = _one(request)
    number = request.POST.get("version", "")
    if not number.isdigit():
        raise ConsoleInputError("Choose a version to roll back to.", function=function.name)
    result = services.function_rollback(
        function=function, number=int(number), actor=Actor.of_request(request), now=now
    )
    current = result.function.current_version.number
    if result.outcome == "unchanged":
        return Done(f"Version {number}'s content is what already runs (version {current}).")
    return Done(f"Rolled back: version {current} now has the content of version {number}.")


ACTIONS: dict[str, Callable[..., Done]] = {
    "pause": pause,
    "resume": resume,
    "pause-selected": pause_selected,
    "resume-selected": resume_selected,
    "run": run_now,
    "backfill": backfill,
    "cancel-backfill": cancel_backfill,
    "rollback": rollback,
}


def function_action(request) -> Done:
    """Runs the POSTed action. A service's refusal becomes a ConsoleInputError on the row of
    the function it concerns."""
    action = ACTIONS.get(request.POST.get("action", ""))
    if action is None:
        raise ConsoleInputError(UNKNOWN_ACTION)
    try:
        return action(request, timezone.now())
    except ServiceError as exc:
        raise ConsoleInputError(
            exc.message, function=request.POST.get("name", ""), status=exc.status
        ) from None

"""Backfills: a function run once for every slot of a past range. Every entry point (the REST
API, the console, the CLI through the API) calls these, so a backfill's rules live here.

1. backfill_start checks the request, lists the slots of the version's schedule in [start,
   end] (both inclusive), skips those whose run had succeeded unless `rerun`, asks for a
   confirmation above CHALK_BACKFILL_CONFIRM_SLOTS, records one audit event and starts the
   first slots.
2. backfill_advance starts the next slots, in slot order, while fewer than `max_parallel` of
   the backfill's runs are active, and marks it done once every slot has run. It is called
   when the backfill starts, when one of its runs ends (services._run_end sends
   runs.tasks.advance_backfill) and by the reaper for every running backfill, so a lost
   message only delays the next slot.
3. backfill_cancel stops making runs and cancels the active ones.

A backfill never touches the live schedule: its runs have trigger "backfill", so neither
Function.next_fire_at nor the one run per scheduled slot (runs_one_run_per_slot) sees them, and
the tick's overlap="skip" check never counts them (runs/scheduler.py).
"""

import datetime as dt
import itertools
from collections.abc import Iterator

from django.conf import settings
from django.db import transaction

from access.actor import Actor
from access.models import AuditAction
from access.rights import Right
from access.services import audit, authorize
from chalkcompute import schedule as schedule_engine
from runs.errors import (
    NOT_DEPLOYED,
    ConfirmRequiredError,
    InvalidParallelError,
    InvalidRangeError,
    NoScheduleError,
    NotDeployedError,
    NothingToRunError,
    TooManySlotsError,
)
from runs.models import Backfill, BackfillStatus, Run, RunStatus, Trigger
from runs.services import attempt_new, attempts_dispatch, run_cancel
from scheduling.models import Function

MAX_PARALLEL = 10

NO_SCHEDULE = (
    "{name} has no schedule, so it has no slots to backfill; run it once with “Run now”, "
    "`chalkcompute run {name}` or POST /api/v1/functions/{name}/trigger"
)
PARALLEL_RANGE = (
    "max_parallel is how many of the backfill's runs may be active at once: a whole number "
    "from 1 to {most}, not {value!r}"
)
START_AFTER_END = "start {start} is after end {end}; give a start at or before the end"
END_AFTER_NOW = (
    "end {end} is after now ({now}): a backfill runs past slots, and the schedule runs the "
    "coming ones; give an end at or before now"
)
NO_SLOTS = "{cron} has no slot from {start} to {end}; widen the range"
TOO_MANY_SLOTS = (
    "{cron} has more than {most} slots from {start} to {end}, the most one backfill runs "
    "(CHALK_BACKFILL_MAX_SLOTS); backfill a shorter range at a time"
)
NOTHING_TO_RUN = (
    "every one of the {slots} slots of {name} from {start} to {end} already succeeded; to run "
    'them again, ask for a rerun ("rerun": true, or --rerun)'
)
CONFIRM_REQUIRED = (
    "this backfill would run {runs} slots of {name} from {start} to {end}, more than the "
    "{most} (CHALK_BACKFILL_CONFIRM_SLOTS) that start without a confirmation; to go ahead, "
    'send it again with "confirm": true (or --yes)'
)


def check_max_parallel(value: object) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or not 1 <= value <= MAX_PARALLEL:
        raise InvalidParallelError(PARALLEL_RANGE.format(most=MAX_PARALLEL, value=value))
    return value


def _moment(moment: dt.datetime) -> str:
    return moment.astimezone(dt.UTC).isoformat().replace("+00:00", "Z")


def _slots(
    schedule: schedule_engine.Schedule, start: dt.datetime, end: dt.datetime
) -> Iterator[dt.datetime]:
    """The slots in [start, end], in order."""
    # Slots are whole minutes after the instant iter_after is given: just before `start`, so a
    # slot at `start` itself counts.
    after = start - dt.timedelta(microseconds=1)
    return itertools.takewhile(lambda slot: slot <= end, schedule.iter_after(after))


def _succeeded_slots(
    function_id: int, first: dt.datetime, last: dt.datetime, *, by: dt.datetime
) -> set[dt.datetime]:
    """The slots from `first` to `last` that a scheduled or backfill run of the function had
    run successfully by `by`."""
    succeeded = Run.objects.filter(
        status=RunStatus.SUCCEEDED, finished_at__lte=by, scheduled_for__range=(first, last)
    )
    # Two reads, each through a unique index that leads with what it filters on:
    # runs_one_run_per_slot (scheduled runs) and runs_one_run_per_backfill_slot.
    scheduled = succeeded.filter(function_id=function_id, trigger=Trigger.SCHEDULE)
    backfilled = succeeded.filter(backfill__function_id=function_id)
    return {
        *scheduled.values_list("scheduled_for", flat=True),
        *backfilled.values_list("scheduled_for", flat=True),
    }


def backfill_start(
    *,
    function: Function,
    start: dt.datetime,
    end: dt.datetime,
    rerun: bool = False,
    max_parallel: int = 1,
    confirm: bool = False,
    actor: Actor,
    now: dt.datetime,
) -> Backfill:
    """Runs the function's current version once for every slot of its schedule from `start`
    to `end` (aware datetimes, both inclusive):

    1. checks the request: a deployed version with a schedule, max_parallel, and
       start <= end <= now;
    2. lists the slots, at most CHALK_BACKFILL_MAX_SLOTS, and those whose run already
       succeeded, which are skipped unless `rerun`;
    3. asks for `confirm` when more than CHALK_BACKFILL_CONFIRM_SLOTS slots are to run;
    4. records the backfill and its one audit event, and starts its first slots.
    """
    authorize(actor, Right.RUN)
    version = function.current_version
    if version is None:
        raise NotDeployedError(NOT_DEPLOYED.format(name=function.name))
    if version.cron is None:
        raise NoScheduleError(NO_SCHEDULE.format(name=function.name))
    check_max_parallel(max_parallel)
    shown = {"start": _moment(start), "end": _moment(end), "name": function.name}
    shown["cron"] = version.cron + (f" ({version.timezone})" if version.timezone else "")
    if start > end:
        raise InvalidRangeError(START_AFTER_END.format(**shown))
    if end > now:
        raise InvalidRangeError(END_AFTER_NOW.format(**shown, now=_moment(now)))
    most = settings.CHALK_BACKFILL_MAX_SLOTS
    slots = list(itertools.islice(_slots(version.fire_schedule, start, end), most + 1))
    if not slots:
        raise InvalidRangeError(NO_SLOTS.format(**shown))
    if len(slots) > most:
        raise TooManySlotsError(TOO_MANY_SLOTS.format(**shown, most=most))
    skipped = 0
    if not rerun:
        succeeded = _succeeded_slots(function.id, slots[0], slots[-1], by=now)
        skipped = len(succeeded.intersection(slots))
    runs = len(slots) - skipped
    if not runs:
        raise NothingToRunError(NOTHING_TO_RUN.format(**shown, slots=len(slots)))
    if runs > settings.CHALK_BACKFILL_CONFIRM_SLOTS and not confirm:
        raise ConfirmRequiredError(
            CONFIRM_REQUIRED.format(**shown, runs=runs, most=settings.CHALK_BACKFILL_CONFIRM_SLOTS),
            runs=runs,
        )
    with transaction.atomic():
        backfill = Backfill.objects.create(
            function=function,
            version=version,
            start=start,
            end=end,
            rerun=rerun,
            max_parallel=max_parallel,
            slots=len(slots),
            skipped_slots=skipped,
            next_slot=slots[0],
            created_by=actor.name,
            created_by_user=actor.user,
            created_by_token=actor.token,
            created_at=now,
        )
        audit(
            actor=actor,
            action=AuditAction.BACKFILL,
            now=now,
            function=function.name,
            target=f"backfill {backfill.id}",
            detail={
                "version": version.number, "start": shown["start"], "end": shown["end"],
                "slots": len(slots), "skipped_slots": skipped, "rerun": rerun,
                "max_parallel": max_parallel,
            },
        )  # fmt: skip
        backfill_advance(backfill_id=backfill.id, now=now)
    backfill.refresh_from_db()
    return backfill


def backfill_advance(*, backfill_id: int, now: dt.datetime) -> int:
    """Starts the backfill's next slots, in slot order, while fewer than `max_parallel` of its
    runs are active, and marks it done once every slot has run; returns how many runs it
    started. The slots skipped are those that had succeeded when it started (`skipped_slots`),
    so every advance decides as the start did.

    Safe to call any number of times, from anywhere at once: callers (runs ending together,
    the reaper) take turns on the backfill's row lock, and each finds the room the one before
    it filled. A cancelled or done backfill is left alone."""
    with transaction.atomic():
        backfill = (
            Backfill.objects.select_for_update(of=("self",))
            .select_related("version")
            .filter(id=backfill_id, status=BackfillStatus.RUNNING)
            .first()
        )
        if backfill is None:
            return 0
        active = backfill.runs.active().count()
        schedule = backfill.version.fire_schedule
        starts: list[tuple[int, dt.datetime]] = []
        while active + len(starts) < backfill.max_parallel and backfill.next_slot is not None:
            slot = backfill.next_slot
            following = schedule.next_after(slot)
            backfill.next_slot = following if following <= backfill.end else None
            if not backfill.rerun and _succeeded_slots(
                backfill.function_id, slot, slot, by=backfill.created_at
            ):
                continue
            run = Run.objects.create(
                function_id=backfill.function_id,
                version_id=backfill.version_id,
                trigger=Trigger.BACKFILL,
                triggered_by=backfill.created_by,
                triggered_by_user_id=backfill.created_by_user_id,
                triggered_by_token_id=backfill.created_by_token_id,
                backfill=backfill,
                scheduled_for=slot,
                created_at=now,
            )
            attempt = attempt_new(run=run, number=1, now=now, not_before=now)
            attempt.save()
            starts.append((attempt.id, now))
        if backfill.next_slot is None and active == 0 and not starts:
            backfill.status = BackfillStatus.DONE
            backfill.finished_at = now
        backfill.save(update_fields=["next_slot", "status", "finished_at"])
        attempts_dispatch(starts)
    return len(starts)


def backfills_advance(*, now: dt.datetime) -> int:
    """The reaper's pass over every running backfill, for a run's end that was not heard (its
    message lost, or its worker killed before sending it); returns how many runs it started."""
    running = Backfill.objects.filter(status=BackfillStatus.RUNNING).values_list("id", flat=True)
    return sum(backfill_advance(backfill_id=backfill_id, now=now) for backfill_id in running)


def backfill_cancel(*, backfill: Backfill, actor: Actor, now: dt.datetime) -> bool:
    """Stops the backfill: it starts no more runs, and its active runs are cancelled as a
    cancel of each would (services.run_cancel). Returns False when it had already ended."""
    authorize(actor, Right.RUN)
    with transaction.atomic():
        backfill = (
            Backfill.objects.select_for_update(of=("self",))
            .select_related("function")
            .get(id=backfill.id)
        )
        if backfill.status != BackfillStatus.RUNNING:
            return False
        backfill.status = BackfillStatus.CANCELLED
        backfill.finished_at = now
        backfill.save(update_fields=["status", "finished_at"])
        active = backfill.runs.active().order_by("scheduled_for")
        cancelled = [run.id for run in active if run_cancel(run=run, actor=actor, now=now)]
        audit(
            actor=actor,
            action=AuditAction.CANCEL,
            now=now,
            function=backfill.function.name,
            target=f"backfill {backfill.id}",
            detail={"runs_cancelled": cancelled},
        )
    return True

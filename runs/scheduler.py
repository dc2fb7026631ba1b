"""The tick: turns due slots into runs, exactly once per slot.

Beat sends `runs.tasks.tick` every second. Each tick:
1. claims the functions whose next slot is due, or due within LOOKAHEAD so that the run
   reaches a worker before its slot and starts on it; rows another tick holds are skipped
   (`FOR UPDATE SKIP LOCKED`), so two beats or a slow tick never block each other;
2. after downtime, takes the latest missed slot only, counts the others, and runs it if it is
   within the catch-up window (otherwise records it as skipped, with the count);
3. records the slot as skipped when the previous run is still active and overlap is "skip";
4. creates the runs and their first attempts in bulk, advances `next_fire_at` past the slot,
   and after commit sends each attempt to a worker with the slot as its start time.
The unique (function, scheduled_for) constraint is the last guard: an insert for a slot that
already has a run is dropped, never doubled.
"""

import datetime as dt
from dataclasses import dataclass

from django.conf import settings
from django.db import connection, transaction

from chalkcompute import schedule as schedule_engine
from runs.models import ACTIVE_RUN_STATUSES, Attempt, Run, RunStatus, Trigger
from runs.services import attempt_new, attempts_dispatch
from scheduling.models import Function

LOOKAHEAD = dt.timedelta(seconds=3)
MAX_CATCH_UP_SCAN = 1_000_000  # slots counted after downtime before giving up counting


@dataclass(frozen=True)
class TickResult:
    runs: int
    skipped: int


def _latest_slot(schedule, first_due: dt.datetime, now: dt.datetime) -> tuple[dt.datetime, int]:
    """The latest slot at or before `now` starting from `first_due`, and how many it passed."""
    slot, passed = first_due, 0
    while passed < MAX_CATCH_UP_SCAN:
        following = schedule.next_after(slot)
        if following > now:
            break
        slot, passed = following, passed + 1
    return slot, passed


def tick(*, now: dt.datetime, batch_size: int = 1000) -> TickResult:
    """Handles every due function, a batch per transaction so row locks are held briefly."""
    runs = skipped = 0
    waiting: set[int] = set()
    while True:
        batch = _tick_batch(now=now, batch_size=batch_size, waiting=waiting)
        runs += batch.runs
        skipped += batch.skipped
        if batch.claimed < batch_size:
            return TickResult(runs=runs, skipped=skipped)


@dataclass(frozen=True)
class _Batch:
    runs: int
    skipped: int
    claimed: int


def _tick_batch(*, now: dt.datetime, batch_size: int, waiting: set[int]) -> _Batch:
    """One batch of the tick. `waiting` collects busy functions whose slot is still ahead;
    later batches of this tick pass over them."""
    catch_up = dt.timedelta(seconds=settings.CHALK_CATCH_UP_SECONDS)
    with transaction.atomic():
        due = list(
            Function.objects.select_for_update(skip_locked=True, of=("self",))
            .select_related("current_version")
            # Only what the tick reads: a version's source can be a megabyte.
            .only("next_fire_at", "current_version__cron", "current_version__overlap")
            .filter(paused=False, next_fire_at__lte=now + LOOKAHEAD)
            .exclude(id__in=waiting)
            .order_by("next_fire_at")[:batch_size]
        )
        if not due:
            return _Batch(runs=0, skipped=0, claimed=0)
        busy = set(
            Run.objects.filter(function__in=due, status__in=ACTIVE_RUN_STATUSES)
            .values_list("function_id", flat=True)
            .distinct()
        )
        runs = []
        for function in due:
            version = function.current_version
            if function.next_fire_at > now and function.id in busy and version.overlap == "skip":
                waiting.add(function.id)  # the previous run may end before the slot: wait
                continue
            schedule = schedule_engine.parse(version.cron)
            slot, missed = function.next_fire_at, 0
            if slot < now:
                slot, missed = _latest_slot(schedule, slot, now)
            run = Run(
                function=function,
                version=version,
                trigger=Trigger.SCHEDULE,
                scheduled_for=slot,
                missed_slots=missed,
                created_at=now,
            )
            if now - slot > catch_up:
                run.status = RunStatus.SKIPPED
                run.status_reason = (
                    f"the platform was down: this slot is {_ago(now - slot)} old, past the "
                    f"catch-up window of {_ago(catch_up)}"
                    + (f"; {missed} earlier slots were missed too" if missed else "")
                )
            elif function.id in busy and version.overlap == "skip":
                run.status = RunStatus.SKIPPED
                run.status_reason = 'the previous run was still active (overlap="skip")'
            elif missed:
                run.status_reason = (
                    f"ran the latest slot after downtime; {missed} earlier slots were missed"
                )
            if run.status == RunStatus.SKIPPED:
                run.finished_at = now
            function.next_fire_at = schedule.next_after(slot)
            runs.append(run)
        _save_next_fire_at([f for f in due if f.id not in waiting])
        # The unique (function, scheduled_for) constraint makes a second run for a slot
        # impossible; leaving out slots that already have one keeps the insert plain, so the
        # database returns the new ids.
        taken = set(
            Run.objects.filter(
                trigger=Trigger.SCHEDULE,
                function_id__in=[r.function_id for r in runs],
                scheduled_for__in={r.scheduled_for for r in runs},
            ).values_list("function_id", "scheduled_for")
        )
        runs = [r for r in runs if (r.function_id, r.scheduled_for) not in taken]
        Run.objects.bulk_create(runs)
        created = [run for run in runs if run.status == RunStatus.QUEUED]
        attempts = [
            attempt_new(run=run, number=1, now=now, not_before=run.scheduled_for) for run in created
        ]
        Attempt.objects.bulk_create(attempts)
        attempts_dispatch(attempts)
    skipped = sum(r.status == RunStatus.SKIPPED for r in runs)
    return _Batch(runs=len(created), skipped=skipped, claimed=len(due))


def _save_next_fire_at(functions: list[Function]) -> None:
    if not functions:
        return
    if connection.vendor != "postgresql":
        Function.objects.bulk_update(functions, ["next_fire_at"])
        return
    # One UPDATE … FROM (VALUES …): bulk_update's CASE per row is quadratic in the batch.
    table = Function._meta.db_table
    rows = ", ".join(["(%s, %s::timestamptz)"] * len(functions))
    params = [value for f in functions for value in (f.id, f.next_fire_at)]
    with connection.cursor() as cursor:
        cursor.execute(
            f"UPDATE {table} AS f SET next_fire_at = v.next_fire_at "
            f"FROM (VALUES {rows}) AS v(id, next_fire_at) WHERE f.id = v.id",
            params,
        )


def _ago(delta: dt.timedelta) -> str:
    minutes = int(delta.total_seconds() // 60)
    if minutes < 120:
        return f"{minutes} minutes"
    return f"{minutes // 60} hours"

"""The tick: turns due slots into runs, exactly once per slot.

Beat sends `runs.tasks.tick` every second. Each tick:
1. claims the functions whose next slot is due, or due within the lookahead so that the run
   reaches a worker before its slot and starts on it: 5 s for a small slot, more for a large
   one (see claim_horizon); rows another tick holds are skipped (`FOR UPDATE SKIP LOCKED`),
   so two beats or a slow tick never block each other;
2. after downtime, takes the latest missed slot only, counts the others, and runs it if it is
   within the catch-up window (otherwise records it as skipped, with the count);
3. records the slot as skipped when the previous run is still active and overlap is "skip"
   (a backfill's runs do not count: runs/backfills.py);
4. creates the runs and their first attempts in bulk, advances `next_fire_at` past the slot,
   and after commit sends each attempt to a worker with the slot as its start time.
The unique (function, scheduled_for) constraint is the last guard: an insert for a slot that
already has a run is dropped, never doubled.
"""

import datetime as dt
from collections import Counter
from dataclasses import dataclass

from django.conf import settings
from django.db import connection, transaction
from django.db.models import Exists, OuterRef, Q

from chalkcompute import schedule as schedule_engine
from chalkcompute.words import spelled_duration
from runs import counts
from runs.models import OVERLAP_SKIP_REASON, Attempt, Run, RunStatus, Trigger
from runs.services import attempt_new, attempts_dispatch, prepare_lead
from scheduling.models import Function

# Runs are created at least this far ahead of their slot, so a small slot's are at a worker
# before it; a large slot's earlier (claim_horizon). A pause in between still wins (see
# attempt_claim).
LOOKAHEAD = dt.timedelta(seconds=5)
# Slots are whole minutes, so one schedule's slots are at least a minute apart. The tick never
# looks further ahead: a function's next slot is claimed only once its previous slot has come,
# and no function ever has two runs waiting for their slots.
MAX_LOOKAHEAD = dt.timedelta(minutes=1)
# What one run costs the tick (claim, run, first attempt, next slot, commit), measured at
# 100,000 functions on a 2-core machine: 120 µs a run when it is idle, 190 to 450 µs when it
# is loaded; taken high.
TICK_SECONDS_PER_RUN = 0.0005
TICK_INTERVAL = dt.timedelta(seconds=1)  # beat sends a tick every second
MAX_CATCH_UP_SCAN = 1_000_000  # slots counted after downtime before giving up counting


@dataclass(frozen=True)
class TickResult:
    runs: int
    skipped: int
    lookahead: dt.timedelta = LOOKAHEAD  # how far ahead of `now` this tick claimed


def claim_horizon(now: dt.datetime) -> dt.datetime | None:
    """The latest next_fire_at this tick claims, or None when nothing is due within reach.

    A slot's runs must be committed before workers take them, `prepare_lead(count)` before the
    slot, and the tick commits them one batch after another. So the slot is claimed once
        slot - now <= 1 s (the next tick) + runs up to it x TICK_SECONDS_PER_RUN
                      + prepare_lead(its runs),
    never less than LOOKAHEAD (a small slot, as before) and never more than
    CHALK_TICK_MAX_LOOKAHEAD_SECONDS, CHALK_MAX_PREPARE_SECONDS or a minute. A slot of 100,000
    functions is then claimed a minute ahead, and its runs are ready before it.

    Counting is cheap: it reads the next_fire_at of at most the few hundred next functions
    (an index scan), enough to bring the lookahead to its bound; more could not move it."""
    bound = min(
        dt.timedelta(seconds=settings.CHALK_TICK_MAX_LOOKAHEAD_SECONDS),
        dt.timedelta(seconds=settings.CHALK_MAX_PREPARE_SECONDS),
        MAX_LOOKAHEAD,
    )
    if bound <= LOOKAHEAD:
        return now + LOOKAHEAD
    limit = _runs_reaching(bound)
    upcoming = list(
        Function.objects.due(now + bound)
        .order_by("next_fire_at")
        .values_list("next_fire_at", flat=True)[:limit]
    )
    if not upcoming:
        return None
    horizon = now + LOOKAHEAD
    before = 0
    per_slot = sorted(Counter(upcoming).items())
    for index, (slot, count) in enumerate(per_slot):
        before += count
        # The last slot read may hold more than was read: it is as large as counting goes.
        cut = len(upcoming) == limit and index == len(per_slot) - 1
        lead = bound if cut else _lead(before=before, count=count, bound=bound)
        if slot - now <= lead:
            horizon = max(horizon, slot)
    return horizon if upcoming[0] <= horizon else None


def _lead(*, before: int, count: int, bound: dt.timedelta) -> dt.timedelta:
    """How far ahead a slot of `count` runs is claimed, `before` runs (its own included) being
    committed first."""
    need = TICK_INTERVAL + dt.timedelta(seconds=before * TICK_SECONDS_PER_RUN) + prepare_lead(count)
    return max(LOOKAHEAD, min(bound, need))


def _runs_reaching(bound: dt.timedelta) -> int:
    """A number of runs in one slot whose lead is `bound`: counting further changes nothing."""
    count = 1
    while _lead(before=count, count=count, bound=bound) < bound and count < 1 << 20:
        count *= 2
    return count


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
    """Handles every function due up to claim_horizon, a batch per transaction so row locks
    are held briefly."""
    horizon = claim_horizon(now)
    if horizon is None:
        return TickResult(runs=0, skipped=0)
    runs = skipped = 0
    waiting: set[int] = set()
    while True:
        batch = _tick_batch(now=now, horizon=horizon, batch_size=batch_size, waiting=waiting)
        runs += batch.runs
        skipped += batch.skipped
        if batch.claimed < batch_size:
            return TickResult(runs=runs, skipped=skipped, lookahead=horizon - now)


@dataclass(frozen=True)
class _Batch:
    runs: int
    skipped: int
    claimed: int


def _tick_batch(
    *, now: dt.datetime, horizon: dt.datetime, batch_size: int, waiting: set[int]
) -> _Batch:
    """One batch of the tick. `waiting` collects busy functions whose slot is still ahead;
    later batches of this tick pass over them."""
    catch_up = dt.timedelta(seconds=settings.CHALK_CATCH_UP_SECONDS)
    # The active runs that make a slot wait or skip (overlap="skip"): all but a backfill's,
    # which are past slots run beside the schedule and never cost a live slot its run.
    active = Run.objects.active().exclude(trigger=Trigger.BACKFILL)
    # A function whose previous run is still active waits for its slot: the claim passes over
    # it in SQL, not locking and releasing it in a batch every second of a minute's lookahead
    # (0.13 s a tick at 100,000 such functions; 40 s a tick when each was claimed). `waiting`
    # covers a run that became active since.
    busy_ahead = Exists(active.filter(function_id=OuterRef("id")))
    with transaction.atomic():
        # Plain tuples of just what the tick reads: model instances were a third of its time.
        due = list(
            Function.objects.select_for_update(skip_locked=True, of=("self",))
            .due(horizon)
            .exclude(Q(next_fire_at__gt=now, current_version__overlap="skip") & busy_ahead)
            .exclude(id__in=waiting)
            .order_by("next_fire_at")
            .values_list(
                "id", "next_fire_at", "current_version_id", "current_version__cron",
                "current_version__timezone", "current_version__overlap",
            )[:batch_size]
        )  # fmt: skip
        if not due:
            return _Batch(runs=0, skipped=0, claimed=0)
        busy = set(
            active.filter(function_id__in=[d[0] for d in due])
            .values_list("function_id", flat=True)
            .distinct()
        )
        runs: list[Run] = []
        next_fire: list[tuple[int, dt.datetime]] = []
        for function_id, first_due, version_id, cron, zone, overlap in due:
            skip_busy = function_id in busy and overlap == "skip"
            if first_due > now and skip_busy:
                waiting.add(function_id)  # the previous run may end before the slot: wait
                continue
            schedule = schedule_engine.parse(cron, zone)
            slot, missed = first_due, 0
            if slot < now:
                slot, missed = _latest_slot(schedule, slot, now)
            run = Run(
                function_id=function_id,
                version_id=version_id,
                trigger=Trigger.SCHEDULE,
                scheduled_for=slot,
                missed_slots=missed,
                created_at=now,
            )
            if now - slot > catch_up:
                run.status = RunStatus.SKIPPED
                run.status_reason = (
                    f"the platform was down: this slot is {spelled_duration(now - slot)} old, "
                    f"past the catch-up window of {spelled_duration(catch_up)}"
                    + (f"; {missed} earlier slots were missed too" if missed else "")
                )
            elif skip_busy:
                run.status = RunStatus.SKIPPED
                run.status_reason = OVERLAP_SKIP_REASON
            elif missed:
                run.status_reason = (
                    f"ran the latest slot after downtime; {missed} earlier slots were missed"
                )
            if run.status == RunStatus.SKIPPED:
                run.finished_at = now
            next_fire.append((function_id, schedule.next_after(slot)))
            runs.append(run)
        _save_next_fire_at(next_fire)
        starts = _insert_runs(runs, now)
        attempts_dispatch(starts)
    skipped = sum(r.status == RunStatus.SKIPPED for r in runs)
    return _Batch(runs=len(starts), skipped=skipped, claimed=len(due))


def _insert_runs(runs: list[Run], now: dt.datetime) -> list[tuple[int, dt.datetime]]:
    """Inserts the runs, and a first attempt for each queued one; returns (attempt id, slot)
    of the new attempts. A run for a slot that already has one is dropped by the unique
    (function, scheduled_for) constraint, never doubled."""
    if connection.vendor == "postgresql":
        return _insert_runs_postgresql(runs, now)
    taken = set(
        Run.objects.filter(
            trigger=Trigger.SCHEDULE,
            function_id__in=[r.function_id for r in runs],
            scheduled_for__in={r.scheduled_for for r in runs},
        ).values_list("function_id", "scheduled_for")
    )
    runs = [r for r in runs if (r.function_id, r.scheduled_for) not in taken]
    Run.objects.bulk_create(runs)
    counts.runs_finished((r.function_id, r.status) for r in runs if r.status == RunStatus.SKIPPED)
    attempts = Attempt.objects.bulk_create(
        attempt_new(run=run, number=1, now=now, not_before=run.scheduled_for)
        for run in runs
        if run.status == RunStatus.QUEUED
    )
    return [(attempt.id, attempt.not_before) for attempt in attempts]


# One statement for a whole batch: the ORM's per-object work was most of a 10,000-function
# tick. Attempt's other columns have database defaults (db_default).
_INSERT_RUNS = """
WITH new_runs AS (
    INSERT INTO runs_run (function_id, version_id, trigger, triggered_by, scheduled_for, status,
                          status_reason, missed_slots, created_at, finished_at)
    SELECT f, v, 'schedule', '', slot, status, reason, missed, %(now)s, finished
    FROM unnest(%(functions)s::bigint[], %(versions)s::bigint[], %(slots)s::timestamptz[],
                %(statuses)s::text[], %(reasons)s::text[], %(missed)s::int[],
                %(finished)s::timestamptz[]) AS t(f, v, slot, status, reason, missed, finished)
    ON CONFLICT (function_id, scheduled_for) WHERE trigger = 'schedule' DO NOTHING
    RETURNING id, function_id, scheduled_for, status
), new_attempts AS (
    INSERT INTO runs_attempt (run_id, number, status, not_before, dispatched_at, created_at)
    SELECT id, 1, 'queued', scheduled_for, %(now)s, %(now)s FROM new_runs WHERE status = 'queued'
    RETURNING id, not_before
)
SELECT id, not_before, NULL FROM new_attempts
UNION ALL SELECT NULL, NULL, function_id FROM new_runs WHERE status = 'skipped'
"""


def _insert_runs_postgresql(runs: list[Run], now: dt.datetime) -> list[tuple[int, dt.datetime]]:
    if not runs:
        return []
    with connection.cursor() as cursor:
        cursor.execute(
            _INSERT_RUNS,
            {
                "now": now,
                "functions": [r.function_id for r in runs],
                "versions": [r.version_id for r in runs],
                "slots": [r.scheduled_for for r in runs],
                "statuses": [r.status for r in runs],
                "reasons": [r.status_reason for r in runs],
                "missed": [r.missed_slots for r in runs],
                "finished": [r.finished_at for r in runs],
            },
        )
        rows = cursor.fetchall()
    # The skipped runs the insert kept (a slot that already had its run is dropped) have ended.
    counts.runs_finished(
        (function_id, RunStatus.SKIPPED) for _, _, function_id in rows if function_id
    )
    return [(attempt_id, not_before) for attempt_id, not_before, _ in rows if attempt_id]


def _save_next_fire_at(next_fire: list[tuple[int, dt.datetime]]) -> None:
    if not next_fire:
        return
    if connection.vendor != "postgresql":
        Function.objects.bulk_update(
            [Function(id=function_id, next_fire_at=at) for function_id, at in next_fire],
            ["next_fire_at"],
        )
        return
    # One UPDATE … FROM unnest(…): bulk_update's CASE per row is quadratic in the batch.
    with connection.cursor() as cursor:
        cursor.execute(
            f"UPDATE {Function._meta.db_table} AS f SET next_fire_at = v.at "
            "FROM unnest(%s::bigint[], %s::timestamptz[]) AS v(id, at) WHERE f.id = v.id",
            [[function_id for function_id, _ in next_fire], [at for _, at in next_fire]],
        )

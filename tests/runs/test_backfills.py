"""Backfills with a pinned clock: every slot of a past range once, in slot order, at most
max_parallel at a time, slots that already succeeded skipped unless rerun, cancel, the
confirmation threshold, and a live schedule that carries on exactly as before.

A backfill run's end sends runs.tasks.advance_backfill after its commit (the real-worker test
in test_backfill_workers.py shows it driving a whole backfill); here, where nothing commits,
each test advances the backfill as that task, or the reaper, would."""

import datetime as dt
import threading

import pytest
from django.db import connections

from access.models import AuditEvent
from access.services import AccessDenied
from runs import backfills
from runs.backfills import backfill_advance, backfill_cancel, backfill_start
from runs.errors import (
    ConfirmRequiredError,
    InvalidParallelError,
    InvalidRangeError,
    NoScheduleError,
    NothingToRunError,
    TooManySlotsError,
)
from runs.models import Attempt, Backfill, Run, RunStatus
from runs.scheduler import tick
from runs.services import attempt_begin, attempt_claim, attempt_finish, runs_prune
from runs.tasks import reap
from scheduling.models import Function
from tests.personas import acting
from tests.runs.support import deploy

pytestmark = pytest.mark.django_db

NOW = dt.datetime(2026, 3, 2, 0, 10, 30, tzinfo=dt.UTC)


def hour(n: int) -> dt.datetime:
    """The n-th hourly slot of 2026-03-01 (24 is the next midnight)."""
    return dt.datetime(2026, 3, 1, tzinfo=dt.UTC) + dt.timedelta(hours=n)


@pytest.fixture
def hourly() -> Function:
    return deploy("hourly-rates", "pass", schedule="0 * * * *", now=NOW)


def start(function: Function, first: int = 0, last: int = 3, **options) -> Backfill:
    return backfill_start(
        function=function, start=hour(first), end=hour(last), actor=acting("alice"),
        now=NOW, **options,
    )  # fmt: skip


def end(run: Run, status: str = "succeeded", at: dt.datetime = NOW) -> None:
    """Takes the run's first attempt through a worker's claim and a runner's report."""
    attempt, _ = attempt_claim(
        attempt_id=run.attempts.get().id, executor="local", executor_ref="test", now=at
    )
    attempt_begin(attempt=attempt, now=at)
    attempt_finish(attempt=attempt, status=status, now=at)


def slots_and_statuses(backfill: Backfill) -> list[tuple[dt.datetime, str]]:
    return list(backfill.runs.order_by("scheduled_for").values_list("scheduled_for", "status"))


def test_it_runs_one_slot_at_a_time_in_slot_order(hourly):
    backfill = start(hourly, 0, 3)

    assert (backfill.slots, backfill.skipped_slots, backfill.status) == (4, 0, "running")
    assert slots_and_statuses(backfill) == [(hour(0), "queued")]
    for n in range(1, 4):
        end(backfill.runs.get(scheduled_for=hour(n - 1)))
        assert backfill_advance(backfill_id=backfill.id, now=NOW) == 1
        assert slots_and_statuses(backfill)[-1] == (hour(n), "queued")

    end(backfill.runs.get(scheduled_for=hour(3)))
    assert backfill_advance(backfill_id=backfill.id, now=NOW) == 0
    backfill.refresh_from_db()
    assert (backfill.status, backfill.finished_at, backfill.next_slot) == ("done", NOW, None)
    assert [status for _, status in slots_and_statuses(backfill)] == ["succeeded"] * 4


def test_it_makes_each_run_a_backfill_run_of_its_slot(hourly):
    backfill = start(hourly, 5, 5)

    run = Run.objects.get()
    assert (run.trigger, run.scheduled_for, run.backfill_id, run.triggered_by) == (
        "backfill", hour(5), backfill.id, "alice",
    )  # fmt: skip
    assert run.version_id == hourly.current_version_id
    attempt = run.attempts.get()
    assert (attempt.status, attempt.not_before) == ("queued", NOW)  # at once, not at its slot


def test_it_keeps_the_version_it_began_with_through_a_deploy(hourly):
    backfill = start(hourly, 0, 1)
    first_version = hourly.current_version_id
    deploy("hourly-rates", "print('v2')", schedule="0 * * * *", now=NOW)

    end(backfill.runs.get())
    backfill_advance(backfill_id=backfill.id, now=NOW)

    assert set(backfill.runs.values_list("version_id", flat=True)) == {first_version}


def test_it_keeps_at_most_max_parallel_runs_active(hourly):
    backfill = start(hourly, 0, 4, max_parallel=2)
    assert slots_and_statuses(backfill) == [(hour(0), "queued"), (hour(1), "queued")]
    assert backfill_advance(backfill_id=backfill.id, now=NOW) == 0  # no room

    end(backfill.runs.get(scheduled_for=hour(1)), status="failed")
    assert backfill_advance(backfill_id=backfill.id, now=NOW) == 1

    assert slots_and_statuses(backfill) == [
        (hour(0), "queued"), (hour(1), "failed"), (hour(2), "queued"),
    ]  # fmt: skip


def test_it_skips_slots_that_already_succeeded():
    hourly = deploy("hourly-rates", "pass", schedule="0 * * * *", now=hour(0))
    for n, status in ((1, "succeeded"), (2, "failed")):
        tick(now=hour(n))  # the live schedule's runs of 01:00 and 02:00
        end(Run.objects.get(scheduled_for=hour(n)), status=status, at=hour(n))

    backfill = start(hourly, 0, 3)
    assert (backfill.slots, backfill.skipped_slots) == (4, 1)
    for _ in range(3):
        end(backfill.runs.filter(status="queued").get())
        backfill_advance(backfill_id=backfill.id, now=NOW)

    assert [slot for slot, _ in slots_and_statuses(backfill)] == [hour(0), hour(2), hour(3)]
    assert Backfill.objects.get().status == "done"


def test_it_skips_slots_a_backfill_ran_successfully(hourly):
    first = start(hourly, 0, 0)
    end(first.runs.get())

    again = start(hourly, 0, 1)

    assert again.skipped_slots == 1
    assert slots_and_statuses(again) == [(hour(1), "queued")]


def test_it_runs_a_slot_that_succeeded_only_after_it_started(hourly):
    first = start(hourly, 0, 1)
    overlapping = start(hourly, 1, 1)
    later = NOW + dt.timedelta(minutes=1)
    end(overlapping.runs.get(), at=later)

    end(first.runs.get(scheduled_for=hour(0)), at=later)
    backfill_advance(backfill_id=first.id, now=later)

    assert slots_and_statuses(first) == [(hour(0), "succeeded"), (hour(1), "queued")]


def test_it_runs_succeeded_slots_again_on_rerun(hourly):
    first = start(hourly, 0, 0)
    end(first.runs.get())

    again = start(hourly, 0, 0, rerun=True)

    assert again.skipped_slots == 0
    assert slots_and_statuses(again) == [(hour(0), "queued")]


def test_it_refuses_a_range_whose_slots_all_succeeded(hourly):
    end(start(hourly, 0, 1, max_parallel=2).runs.get(scheduled_for=hour(0)))
    end(Run.objects.get(scheduled_for=hour(1)))

    with pytest.raises(NothingToRunError) as refused:
        start(hourly, 0, 1)

    assert refused.value.message == (
        "every one of the 2 slots of hourly-rates from 2026-03-01T00:00:00Z to "
        "2026-03-01T01:00:00Z already succeeded; to run them again, ask for a rerun "
        '("rerun": true, or --rerun)'
    )
    assert refused.value.status == 409


def test_it_cancels_its_active_runs_and_starts_no_more(hourly):
    backfill = start(hourly, 0, 5, max_parallel=2)
    running = backfill.runs.get(scheduled_for=hour(1))
    attempt, _ = attempt_claim(
        attempt_id=running.attempts.get().id, executor="local", executor_ref="test", now=NOW
    )
    attempt_begin(attempt=attempt, now=NOW)

    assert backfill_cancel(backfill=backfill, actor=acting("bob"), now=NOW) is True

    backfill.refresh_from_db()
    assert (backfill.status, backfill.finished_at) == ("cancelled", NOW)
    # The queued run ends at once; the running one when its runner hears of it.
    assert slots_and_statuses(backfill) == [(hour(0), "cancelled"), (hour(1), "running")]
    assert Run.objects.get(id=running.id).cancel_requested_at == NOW
    attempt_finish(attempt=attempt, status="cancelled", now=NOW)
    assert backfill_advance(backfill_id=backfill.id, now=NOW) == 0
    assert backfill.runs.count() == 2
    assert backfill_cancel(backfill=backfill, actor=acting("bob"), now=NOW) is False


def test_it_records_the_backfill_as_one_audit_event_and_its_cancel_as_another(hourly):
    backfill = start(hourly, 0, 3, max_parallel=3)
    backfill_cancel(backfill=backfill, actor=acting("bob"), now=NOW)

    started, cancelled = AuditEvent.objects.filter(target=f"backfill {backfill.id}").order_by("id")
    assert (started.action, started.actor, started.function) == (
        "backfill", "alice", "hourly-rates",
    )  # fmt: skip
    assert started.detail == {
        "version": 1, "start": "2026-03-01T00:00:00Z", "end": "2026-03-01T03:00:00Z",
        "slots": 4, "skipped_slots": 0, "rerun": False, "max_parallel": 3,
    }  # fmt: skip
    assert (cancelled.action, cancelled.actor) == ("cancel", "bob")
    assert cancelled.detail == {
        "runs_cancelled": list(backfill.runs.order_by("scheduled_for").values_list("id", flat=True))
    }


def test_it_asks_for_a_confirmation_above_the_threshold(hourly, settings):
    settings.CHALK_BACKFILL_CONFIRM_SLOTS = 3

    with pytest.raises(ConfirmRequiredError) as refused:
        start(hourly, 0, 3)

    assert refused.value.runs == 4
    assert refused.value.message == (
        "this backfill would run 4 slots of hourly-rates from 2026-03-01T00:00:00Z to "
        "2026-03-01T03:00:00Z, more than the 3 (CHALK_BACKFILL_CONFIRM_SLOTS) that start "
        'without a confirmation; to go ahead, send it again with "confirm": true (or --yes)'
    )
    assert not Backfill.objects.exists() and not Run.objects.exists()
    assert not AuditEvent.objects.filter(action="backfill").exists()
    assert start(hourly, 0, 2).slots == 3  # at the threshold: no question
    assert start(hourly, 0, 3, confirm=True, rerun=True).slots == 4


def test_it_counts_only_the_slots_to_run_against_the_threshold(hourly, settings):
    settings.CHALK_BACKFILL_CONFIRM_SLOTS = 3
    end(start(hourly, 0, 0).runs.get())

    assert start(hourly, 0, 3).skipped_slots == 1  # 3 to run: no question


def test_it_refuses_a_range_of_more_slots_than_the_most(hourly, settings):
    settings.CHALK_BACKFILL_MAX_SLOTS = 5

    with pytest.raises(TooManySlotsError) as refused:
        start(hourly, 0, 5, confirm=True)

    assert refused.value.message == (
        "0 * * * * has more than 5 slots from 2026-03-01T00:00:00Z to 2026-03-01T05:00:00Z, "
        "the most one backfill runs (CHALK_BACKFILL_MAX_SLOTS); backfill a shorter range at a "
        "time"
    )
    assert start(hourly, 0, 4).slots == 5


@pytest.mark.parametrize(
    ("first", "last", "error", "message"),
    [
        (hour(3), hour(2), InvalidRangeError,
         "start 2026-03-01T03:00:00Z is after end 2026-03-01T02:00:00Z; give a start at or "
         "before the end"),
        (hour(24), NOW + dt.timedelta(minutes=1), InvalidRangeError,
         "end 2026-03-02T00:11:30Z is after now (2026-03-02T00:10:30Z): a backfill runs past "
         "slots, and the schedule runs the coming ones; give an end at or before now"),
        (hour(1) + dt.timedelta(minutes=1), hour(1) + dt.timedelta(minutes=59),
         InvalidRangeError,
         "0 * * * * has no slot from 2026-03-01T01:01:00Z to 2026-03-01T01:59:00Z; widen the "
         "range"),
    ],
)  # fmt: skip
def test_it_refuses_a_range_it_cannot_backfill(hourly, first, last, error, message):
    with pytest.raises(error) as refused:
        backfill_start(function=hourly, start=first, end=last, actor=acting("alice"), now=NOW)

    assert refused.value.message == message
    assert not Backfill.objects.exists() and not Run.objects.exists()


def test_it_counts_both_ends_of_the_range_and_no_slot_outside_it(hourly):
    backfill = backfill_start(
        function=hourly,
        start=hour(1) - dt.timedelta(seconds=1),
        end=hour(3) + dt.timedelta(seconds=1),
        actor=acting("alice"),
        now=NOW,
    )
    assert (backfill.slots, backfill.next_slot) == (3, hour(2))  # 01:00 runs; 02:00 is next

    exact = start(hourly, 1, 3, rerun=True)
    assert exact.slots == 3


def test_it_refuses_a_function_without_a_schedule():
    on_demand = deploy("by-hand", "pass", now=NOW)

    with pytest.raises(NoScheduleError) as refused:
        start(on_demand)

    assert refused.value.message == (
        "by-hand has no schedule, so it has no slots to backfill; run it once with “Run now”, "
        "`chalkcompute run by-hand` or POST /api/v1/functions/by-hand/trigger"
    )


@pytest.mark.parametrize("parallel", [0, 11, True, "2"])
def test_it_refuses_max_parallel_out_of_range(hourly, parallel):
    with pytest.raises(InvalidParallelError) as refused:
        start(hourly, max_parallel=parallel)

    assert refused.value.message == (
        "max_parallel is how many of the backfill's runs may be active at once: a whole "
        f"number from 1 to {backfills.MAX_PARALLEL}, not {parallel!r}"
    )


def test_it_needs_the_run_right(hourly):
    with pytest.raises(AccessDenied) as refused:
        backfill_start(
            function=hourly, start=hour(0), end=hour(1), actor=acting("vic", "viewer"), now=NOW
        )

    assert refused.value.message.startswith("This needs the operator role, which may pause, ")
    assert not Backfill.objects.exists()


def test_the_reaper_advances_a_backfill_whose_run_ended_unheard(hourly):
    backfill = start(hourly, 0, 1)
    end(backfill.runs.get())  # its advance_backfill message never came

    done = reap()

    assert done["backfill_runs"] == 1
    assert slots_and_statuses(backfill) == [(hour(0), "succeeded"), (hour(1), "queued")]


def test_a_finished_backfill_is_pruned_with_its_runs(hourly):
    finished = start(hourly, 0, 0)
    end(finished.runs.get())
    backfill_advance(backfill_id=finished.id, now=NOW)
    running = start(hourly, 1, 2)

    runs_prune(before=NOW + dt.timedelta(seconds=1))

    assert list(Backfill.objects.values_list("id", flat=True)) == [running.id]
    assert list(Run.objects.values_list("backfill_id", flat=True)) == [running.id]


# --- the live schedule ---------------------------------------------------------------------


def minute(m: int, s: int = 0) -> dt.datetime:
    return dt.datetime(2026, 3, 2, 0, m, s, tzinfo=dt.UTC)


def test_it_never_touches_the_live_schedule():
    every_minute = deploy("every-minute", "pass", schedule="* * * * *", now=minute(10, 30))
    assert every_minute.next_fire_at == minute(11)

    backfill_start(
        function=every_minute, start=minute(0), end=minute(10), max_parallel=3,
        actor=acting("alice"), now=minute(10, 30),
    )  # fmt: skip

    every_minute.refresh_from_db()
    assert every_minute.next_fire_at == minute(11)
    assert not Run.objects.filter(trigger="schedule").exists()


def test_a_live_slot_runs_beside_an_active_backfill_of_an_overlap_skip_function():
    every_minute = deploy(
        "every-minute", "pass", schedule="* * * * *", overlap="skip", now=minute(10, 30)
    )
    backfill = backfill_start(
        function=every_minute, start=minute(0), end=minute(10), max_parallel=2,
        actor=acting("alice"), now=minute(10, 30),
    )  # fmt: skip
    assert backfill.runs.filter(status="queued").count() == 2

    assert tick(now=minute(10, 55)).runs == 1  # claimed ahead, as when nothing is active
    assert tick(now=minute(11)).runs == 0  # and never a second time

    live = Run.objects.get(trigger="schedule")
    assert (live.scheduled_for, live.status, live.status_reason) == (minute(11), "queued", "")
    assert Attempt.objects.filter(run=live).count() == 1
    every_minute.refresh_from_db()
    assert every_minute.next_fire_at == minute(12)


def test_a_live_run_still_makes_the_next_slot_of_an_overlap_skip_function_skip():
    every_minute = deploy("every-minute", "pass", schedule="* * * * *", now=minute(10, 30))
    backfill_start(
        function=every_minute, start=minute(0), end=minute(10), actor=acting("alice"),
        now=minute(10, 30),
    )  # fmt: skip
    tick(now=minute(11))

    tick(now=minute(12))

    assert list(
        Run.objects.filter(trigger="schedule").order_by("scheduled_for").values_list("status")
    ) == [(RunStatus.QUEUED,), (RunStatus.SKIPPED,)]


@pytest.mark.postgres
@pytest.mark.django_db(transaction=True)
def test_advances_at_the_same_moment_start_one_run_between_them(hourly):
    backfill = start(hourly, 0, 5)
    end(backfill.runs.get())
    barrier = threading.Barrier(4)
    started: list[int] = []

    def advance() -> None:
        barrier.wait()
        try:
            started.append(backfill_advance(backfill_id=backfill.id, now=NOW))
        finally:
            connections.close_all()

    threads = [threading.Thread(target=advance) for _ in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=30)

    assert sorted(started) == [0, 0, 0, 1]
    assert slots_and_statuses(backfill) == [(hour(0), "succeeded"), (hour(1), "queued")]


def test_a_zoned_schedule_is_backfilled_at_its_wall_clock_across_a_change_of_clocks():
    now = dt.datetime(2026, 4, 1, tzinfo=dt.UTC)
    daily = deploy("berlin-rollup", "pass", schedule="0 9 * * *", zone="Europe/Berlin", now=now)

    backfill = backfill_start(
        function=daily, start=dt.datetime(2026, 3, 28, tzinfo=dt.UTC),
        end=dt.datetime(2026, 3, 30, 12, tzinfo=dt.UTC), actor=acting("alice"), now=now,
        max_parallel=3,
    )  # fmt: skip

    # 09:00 in Berlin is 08:00 UTC on CET, 07:00 UTC from 29 March on CEST.
    assert list(
        backfill.runs.order_by("scheduled_for").values_list("scheduled_for", flat=True)
    ) == [
        dt.datetime(2026, 3, 28, 8, tzinfo=dt.UTC),
        dt.datetime(2026, 3, 29, 7, tzinfo=dt.UTC),
        dt.datetime(2026, 3, 30, 7, tzinfo=dt.UTC),
    ]


def test_a_range_without_slots_names_the_schedules_zone():
    now = dt.datetime(2026, 4, 1, tzinfo=dt.UTC)
    daily = deploy("berlin-rollup", "pass", schedule="0 9 * * *", zone="Europe/Berlin", now=now)

    with pytest.raises(InvalidRangeError, match=r"^0 9 \* \* \* \(Europe/Berlin\) has no slot"):
        backfill_start(
            function=daily, start=dt.datetime(2026, 3, 28, 9, tzinfo=dt.UTC),
            end=dt.datetime(2026, 3, 28, 10, tzinfo=dt.UTC), actor=acting("alice"), now=now,
        )  # fmt: skip

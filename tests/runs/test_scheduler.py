"""The tick, with a pinned clock: exactly one run per slot, downtime catch-up, overlap."""

import datetime as dt
import threading

import pytest
from django.db import connection, transaction

from runs.models import Attempt, Run, RunStatus
from runs.scheduler import tick
from scheduling.models import Function
from scheduling.services import function_pause, function_resume
from tests.personas import PLATFORM, acting
from tests.runs.conftest import deploy

T0 = dt.datetime(2026, 3, 1, 12, 0, 30, tzinfo=dt.UTC)  # 30 s into a minute


def at(minute: int, second: int = 0) -> dt.datetime:
    return dt.datetime(2026, 3, 1, 12, minute, second, tzinfo=dt.UTC)


pytestmark = pytest.mark.django_db


def test_it_creates_one_run_and_attempt_for_a_due_slot_and_advances_the_next_slot():
    function = deploy("every-minute", "pass", schedule="* * * * *", now=T0)
    assert function.next_fire_at == at(1)

    result = tick(now=at(1, 0))

    run = Run.objects.get()
    assert (run.function_id, run.scheduled_for, run.status, run.trigger) == (
        function.id, at(1), RunStatus.QUEUED, "schedule",
    )  # fmt: skip
    assert run.version_id == function.current_version_id
    attempt = Attempt.objects.get()
    assert (attempt.run_id, attempt.number, attempt.status, attempt.not_before) == (
        run.id,
        1,
        "queued",
        at(1),
    )
    function.refresh_from_db()
    assert function.next_fire_at == at(2)
    assert result.runs == 1


def test_it_never_creates_a_second_run_for_a_slot():
    deploy("every-minute", "pass", schedule="* * * * *", now=T0)
    tick(now=at(1))
    tick(now=at(1))
    # Even if next_fire_at were put back on a slot that already ran, the slot runs once.
    Function.objects.update(next_fire_at=at(1))
    tick(now=at(1, 5))
    assert list(Run.objects.values_list("scheduled_for", flat=True)) == [at(1)]
    assert Attempt.objects.count() == 1


def test_it_leaves_a_slot_alone_until_it_is_within_the_lookahead():
    deploy("every-minute", "pass", schedule="* * * * *", now=T0)
    assert tick(now=at(0, 54)).runs == 0
    assert tick(now=at(0, 55)).runs == 1  # five seconds ahead, so the run starts on its slot
    assert Run.objects.get().scheduled_for == at(1)


def test_it_runs_only_the_latest_missed_slot_after_downtime_and_counts_the_others():
    function = deploy("every-five", "pass", schedule="*/5 * * * *", now=T0)
    assert function.next_fire_at == at(5)

    tick(now=at(21, 10))  # down over 12:05, 12:10, 12:15 and 12:20

    run = Run.objects.get()
    assert (run.scheduled_for, run.status, run.missed_slots) == (at(20), RunStatus.QUEUED, 3)
    assert run.status_reason == "ran the latest slot after downtime; 3 earlier slots were missed"
    function.refresh_from_db()
    assert function.next_fire_at == at(25)


def test_it_records_a_slot_older_than_the_catch_up_window_as_skipped(settings):
    settings.CHALK_CATCH_UP_SECONDS = 600
    function = deploy("hourly", "pass", schedule="0 * * * *", now=T0)
    later = dt.datetime(2026, 3, 1, 15, 30, tzinfo=dt.UTC)

    tick(now=later)

    run = Run.objects.get()
    assert (run.scheduled_for, run.status, run.missed_slots) == (
        dt.datetime(2026, 3, 1, 15, 0, tzinfo=dt.UTC), RunStatus.SKIPPED, 2,
    )  # fmt: skip
    assert run.status_reason == (
        "the platform was down: this slot is 30 minutes old, past the catch-up window of "
        "10 minutes; 2 earlier slots were missed too"
    )
    assert not Attempt.objects.exists()
    function.refresh_from_db()
    assert function.next_fire_at == dt.datetime(2026, 3, 1, 16, 0, tzinfo=dt.UTC)


def test_it_skips_a_slot_while_the_previous_run_is_active():
    deploy("slow", "pass", schedule="* * * * *", now=T0)
    tick(now=at(1))

    tick(now=at(2))

    first, second = Run.objects.order_by("scheduled_for")
    assert first.status == RunStatus.QUEUED
    assert (second.scheduled_for, second.status) == (at(2), RunStatus.SKIPPED)
    assert second.status_reason == 'the previous run was still active (overlap="skip")'
    assert second.finished_at == at(2)


def test_it_runs_slots_side_by_side_when_overlap_is_allowed():
    deploy("parallel", "pass", schedule="* * * * *", overlap="allow", now=T0)
    tick(now=at(1))
    tick(now=at(2))
    assert list(Run.objects.order_by("scheduled_for").values_list("status", flat=True)) == [
        "queued",
        "queued",
    ]


def test_it_does_not_run_a_paused_function_and_runs_again_after_resume():
    function = deploy("pausable", "pass", schedule="* * * * *", now=T0)
    function_pause(function=function, actor=acting("alice"), reason="vendor outage", now=T0)

    tick(now=at(1))
    tick(now=at(2))
    assert not Run.objects.exists()

    function_resume(actor=PLATFORM, function=Function.objects.get(), now=at(2, 30))
    tick(now=at(3))
    assert list(Run.objects.values_list("scheduled_for", flat=True)) == [at(3)]


def test_it_takes_a_changed_schedule_at_once():
    deploy("retimed", "pass", schedule="0 * * * *", now=T0)
    deploy("retimed", "pass", schedule="*/2 * * * *", now=T0)
    tick(now=at(2))
    assert list(Run.objects.values_list("scheduled_for", flat=True)) == [at(2)]


def test_it_ignores_on_demand_functions():
    deploy("by-hand", "pass", now=T0)
    assert tick(now=at(59)).runs == 0


@pytest.mark.django_db(transaction=True)
def test_it_skips_functions_another_tick_has_locked():
    if connection.vendor != "postgresql":
        pytest.skip("SKIP LOCKED needs PostgreSQL; SQLite serialises writers instead")
    deploy("held", "pass", schedule="* * * * *", now=T0)
    deploy("free", "pass", schedule="* * * * *", now=T0)
    held_id = Function.objects.get(name="held").id
    locked, release = threading.Event(), threading.Event()

    def hold_row():
        with transaction.atomic():
            Function.objects.select_for_update().get(id=held_id)
            locked.set()
            release.wait(10)
        connection.close()

    holder = threading.Thread(target=hold_row)
    holder.start()
    locked.wait(10)
    try:
        result = tick(now=at(1))
    finally:
        release.set()
        holder.join()
    assert result.runs == 1
    assert list(Run.objects.values_list("function__name", flat=True)) == ["free"]


def test_it_waits_for_the_slot_before_skipping_a_busy_function():
    deploy("almost-done", "pass", schedule="* * * * *", now=T0)
    tick(now=at(1))
    first = Run.objects.get()

    tick(now=at(1, 56))  # within the lookahead, but the first run may end before 12:02
    assert Run.objects.count() == 1

    Run.objects.filter(id=first.id).update(status=RunStatus.SUCCEEDED)
    tick(now=at(2))
    assert list(Run.objects.order_by("id").values_list("status", flat=True)) == [
        "succeeded",
        "queued",
    ]


def test_it_handles_more_due_functions_than_one_batch_in_one_tick():
    for index in range(5):
        deploy(f"batch-{index}", "pass", schedule="* * * * *", now=T0)
    result = tick(now=at(1), batch_size=2)
    assert (result.runs, Run.objects.count()) == (5, 5)

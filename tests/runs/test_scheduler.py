"""The tick, with a pinned clock: exactly one run per slot, downtime catch-up, overlap."""

import datetime as dt
import threading

import pytest
from django.db import connection, transaction
from django.test.utils import CaptureQueriesContext

from runs.models import Attempt, Run, RunStatus
from runs.scheduler import tick
from runs.services import attempt_claim, prepared_attempt_skip
from scheduling.models import Function
from scheduling.services import function_pause, function_resume
from tests.personas import PLATFORM, acting
from tests.runs.support import deploy

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


@pytest.mark.postgres
@pytest.mark.django_db(transaction=True)
def test_it_skips_functions_another_tick_has_locked():
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


# The lookahead grows with a slot's size. On the local executor a slot of N runs is prepared
# 1 s + N x CHALK_LOCAL_PREPARE_SECONDS ahead (services.prepare_lead); the tick claims it one
# tick (1 s) plus its commit (N x 0.5 ms) earlier still, and never less than 5 s ahead.


def at_ms(minute: int, second: int, ms: int) -> dt.datetime:
    return at(minute, second) + dt.timedelta(milliseconds=ms)


def deploy_many(count: int, prefix: str, schedule: str, overlap: str = "skip") -> list[Function]:
    return [
        deploy(f"{prefix}-{index}", "pass", schedule=schedule, overlap=overlap, now=T0)
        for index in range(count)
    ]


def runs_waiting_for_their_slot(now: dt.datetime) -> dict[int, int]:
    """Per function, how many of its runs were created ahead and wait for their slot."""
    waiting: dict[int, int] = {}
    for function_id in Run.objects.filter(scheduled_for__gt=now).values_list(
        "function_id", flat=True
    ):
        waiting[function_id] = waiting.get(function_id, 0) + 1
    return waiting


def test_a_large_slot_is_claimed_earlier_than_a_small_one(settings):
    settings.CHALK_LOCAL_PREPARE_SECONDS = 2.0
    deploy_many(1, "small", "* * * * *")  # one run at 12:01: prepared 3 s ahead, so 5 s
    assert tick(now=at(0, 40)).runs == 0  # 20 s before 12:01
    assert tick(now=at(0, 54)).runs == 0
    Run.objects.all().delete()

    deploy_many(10, "large", "* * * * *")  # now 11 runs: 1 + 11 x 2 s + 1 s + 5.5 ms = 24.0055 s
    result = tick(now=at(0, 35))  # 25 s before 12:01
    assert (result.runs, Run.objects.count()) == (0, 0)
    result = tick(now=at(0, 36))  # 24 s before
    assert (result.runs, Run.objects.filter(scheduled_for=at(1)).count()) == (11, 11)
    assert result.lookahead == dt.timedelta(seconds=24)
    assert set(Attempt.objects.values_list("not_before", flat=True)) == {at(1)}
    assert set(Function.objects.values_list("next_fire_at", flat=True)) == {at(2)}


@pytest.mark.parametrize(
    ("max_lookahead", "max_prepare", "cap"),
    [
        (60, 120, 60),  # the defaults: a minute
        (120, 600, 60),  # never more than a minute, whatever the settings say
        (60, 30, 30),  # CHALK_MAX_PREPARE_SECONDS bounds it too
        (20, 120, 20),
        (5, 120, 5),  # the fixed five seconds
    ],
)
def test_the_lookahead_is_capped(settings, max_lookahead, max_prepare, cap):
    settings.CHALK_LOCAL_PREPARE_SECONDS = 100.0  # 10 runs want 1,000 s
    settings.CHALK_TICK_MAX_LOOKAHEAD_SECONDS = max_lookahead
    settings.CHALK_MAX_PREPARE_SECONDS = max_prepare
    deploy_many(10, "big", "*/5 * * * *")  # the next slot is 12:05
    slot = at(5)

    assert tick(now=slot - dt.timedelta(seconds=cap + 1)).runs == 0
    assert Run.objects.count() == 0
    result = tick(now=slot - dt.timedelta(seconds=cap))
    assert (result.runs, result.lookahead) == (10, dt.timedelta(seconds=cap))
    assert set(Run.objects.values_list("scheduled_for", flat=True)) == {slot}


def test_a_function_never_has_two_runs_waiting_for_their_slots(settings):
    settings.CHALK_LOCAL_PREPARE_SECONDS = 100.0  # every slot wants 1,000 s and more
    settings.CHALK_MAX_PREPARE_SECONDS = settings.CHALK_TICK_MAX_LOOKAHEAD_SECONDS = 600
    functions = deploy_many(10, "often", "* * * * *", overlap="allow")

    moments = [at(0, 30), at(0, 59), at(1), at_ms(1, 0, 500), at(1, 30), at(1, 59), at(2), at(2, 1)]
    for now in moments:
        tick(now=now)
        tick(now=now)  # a second beat, or a tick sent twice, changes nothing
        assert set(runs_waiting_for_their_slot(now).values()) <= {1}, now

    # 12:01 was claimed 30 s ahead, 12:02 and 12:03 a minute ahead, once each: 12:02 only
    # when 12:01 had come, 12:03 only when 12:02 had.
    slots = Run.objects.values_list("scheduled_for", flat=True)
    assert sorted(set(slots)) == [at(1), at(2), at(3)]
    assert len(slots) == 3 * len(functions)
    assert Run.objects.filter(scheduled_for=at(2), created_at__lt=at(1)).count() == 0
    assert Run.objects.filter(scheduled_for=at(3), created_at__lt=at(2)).count() == 0


def test_a_run_created_a_minute_ahead_is_still_created_once(settings):
    settings.CHALK_LOCAL_PREPARE_SECONDS = 100.0
    deploy_many(3, "early", "*/5 * * * *")
    tick(now=at(4))  # 12:05 claimed a minute ahead
    assert Run.objects.count() == 3

    # A redeploy with a new schedule puts next_fire_at back on 12:05, whose run already
    # exists: still one run each.
    deploy("early-0", "print('v2')", schedule="5 * * * *", now=at(4, 10))
    assert Function.objects.get(name="early-0").next_fire_at == at(5)
    tick(now=at(4, 11))  # its 12:05 run is active: the function waits for the slot
    tick(now=at(4, 50))
    tick(now=at(5))  # on the slot the tick's run for 12:05 conflicts with the one made ahead
    assert Run.objects.filter(scheduled_for=at(5)).count() == 3
    assert set(Run.objects.values_list("status", flat=True)) == {"queued"}
    assert Attempt.objects.count() == 3
    assert Function.objects.get(name="early-0").next_fire_at == at(5) + dt.timedelta(hours=1)


def test_a_pause_or_a_deploy_before_the_slot_still_wins_over_a_run_created_early(settings):
    settings.CHALK_LOCAL_PREPARE_SECONDS = 100.0
    paused, redeployed, taken_ahead, untouched = deploy_many(4, "ahead", "*/5 * * * *")
    assert tick(now=at(4)).runs == 4  # a minute before 12:05
    attempt = {a.run.function_id: a for a in Attempt.objects.select_related("run")}

    # A worker takes one attempt ahead (its runner then waits for the slot), the others wait.
    claimed, _ = attempt_claim(
        attempt_id=attempt[taken_ahead.id].id, executor="local", executor_ref="t", now=at(4, 1)
    )
    assert claimed is not None
    function_pause(function=paused, actor=acting("alice"), reason="vendor outage", now=at(4, 5))
    function_pause(function=taken_ahead, actor=acting("alice"), reason="maintenance", now=at(4, 5))
    deploy("ahead-1", "pass", schedule="*/10 * * * *", now=at(4, 6))  # 12:05 is not in it

    assert attempt_claim(
        attempt_id=attempt[paused.id].id, executor="local", executor_ref="t", now=at(4, 59)
    ) is None  # fmt: skip
    assert attempt_claim(
        attempt_id=attempt[redeployed.id].id, executor="local", executor_ref="t", now=at(4, 59)
    ) is None  # fmt: skip
    assert prepared_attempt_skip(attempt=claimed, now=at(4, 30)) == (
        "the function was paused before this slot (maintenance)"
    )
    assert attempt_claim(
        attempt_id=attempt[untouched.id].id, executor="local", executor_ref="t", now=at(4, 59)
    ) is not None  # fmt: skip

    reasons = dict(Run.objects.values_list("function__name", "status_reason"))
    statuses = dict(Run.objects.values_list("function__name", "status"))
    assert statuses == {
        "ahead-0": "skipped", "ahead-1": "skipped", "ahead-2": "skipped", "ahead-3": "starting",
    }  # fmt: skip
    assert reasons["ahead-0"] == "the function was paused before this slot (vendor outage)"
    assert reasons["ahead-1"] == (
        "version 2 was deployed before this slot, and its schedule (*/10 * * * *) does not "
        "include it"
    )


def test_a_busy_function_waits_for_its_slot_under_the_longer_lookahead(settings):
    settings.CHALK_LOCAL_PREPARE_SECONDS = 100.0
    slow, quick = deploy_many(2, "busy", "* * * * *")
    tick(now=at(1))
    first = {run.function_id: run for run in Run.objects.all()}

    for second in (0, 1, 20, 40):  # 12:02 is within the lookahead, but 12:01's runs are active
        tick(now=at(1, second))
    assert Run.objects.filter(scheduled_for=at(2)).count() == 0

    Run.objects.filter(id=first[quick.id].id).update(status=RunStatus.SUCCEEDED)
    tick(now=at(1, 41))  # quick's 12:01 run ended: its 12:02 run is created ahead, queued
    run = Run.objects.get(scheduled_for=at(2))
    assert (run.function_id, run.status, run.created_at) == (quick.id, "queued", at(1, 41))

    tick(now=at(2))  # slow's 12:01 run is still active on its slot: 12:02 is skipped
    skipped = Run.objects.get(scheduled_for=at(2), function=slow)
    assert (skipped.status, skipped.status_reason) == (
        "skipped", 'the previous run was still active (overlap="skip")',
    )  # fmt: skip


def test_an_idle_tick_makes_one_query(django_assert_num_queries):
    deploy_many(3, "idle", "*/5 * * * *")  # 12:05, beyond reach at 12:00:30
    with django_assert_num_queries(1):
        assert tick(now=T0).runs == 0
    with django_assert_num_queries(1):
        assert tick(now=at(4, 54)).runs == 0  # three small runs are claimed 5 s ahead
    assert tick(now=at(4, 55)).runs == 3


def test_the_catch_up_after_downtime_is_unchanged_under_the_longer_lookahead(settings):
    settings.CHALK_LOCAL_PREPARE_SECONDS = 100.0
    function = deploy("every-five-too", "pass", schedule="*/5 * * * *", now=T0)
    deploy_many(3, "neighbour", "*/5 * * * *")

    tick(now=at(21, 10))  # down over 12:05..12:20; 12:25 is 3 m 50 s away

    assert set(Run.objects.values_list("scheduled_for", "status", "missed_slots")) == {
        (at(20), RunStatus.QUEUED, 3)
    }
    function.refresh_from_db()
    assert function.next_fire_at == at(25)


def test_busy_functions_are_passed_over_by_the_claim(settings):
    settings.CHALK_LOCAL_PREPARE_SECONDS = 100.0
    deploy_many(5, "long", "* * * * *")
    tick(now=at(1))  # five runs, all still active a whole lookahead later

    with CaptureQueriesContext(connection) as queries:
        assert tick(now=at(1, 30), batch_size=2).runs == 0
    # One claim that finds nothing: no batch of busy functions is locked, read and let go,
    # one batch after another, however many there are.
    # The claim reads the due functions' ids (and locks them: FOR UPDATE on PostgreSQL;
    # SQLite has no row locks).
    claims = [q for q in queries if q["sql"].startswith('SELECT "scheduling_function"."id"')]
    assert len(claims) == 1, [q["sql"] for q in queries]
    assert connection.vendor != "postgresql" or "FOR UPDATE" in claims[0]["sql"]
    assert Run.objects.filter(scheduled_for=at(2)).count() == 0

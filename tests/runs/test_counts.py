"""Counts of finished runs (runs/counts.py): every way a run ends adds it once, in the
transaction that ends it, and pruning runs never lowers a count."""

import datetime as dt

import pytest
from django.core.management import call_command

from runs import counts
from runs.models import Attempt, FinishedRuns, Run
from runs.scheduler import tick
from runs.services import attempt_claim, attempt_finish, run_cancel, runs_prune
from scheduling.models import Function
from scheduling.services import function_pause
from tests.personas import acting
from tests.runs.support import deploy

T0 = dt.datetime(2026, 3, 1, 12, 0, 30, tzinfo=dt.UTC)

pytestmark = pytest.mark.django_db


def at(minute: int, second: int = 0) -> dt.datetime:
    return dt.datetime(2026, 3, 1, 12, minute, second, tzinfo=dt.UTC)


def claim(attempt: Attempt, now: dt.datetime):
    return attempt_claim(attempt_id=attempt.id, executor="local", executor_ref="t", now=now)


def test_it_counts_runs_as_they_end_by_status():
    deploy("every-minute", "pass", schedule="* * * * *", now=T0)
    tick(now=at(1))
    tick(now=at(2))  # the 12:01 run is still active: 12:02 is skipped by the tick
    assert counts.finished_totals() == {"skipped": 1}

    attempt, _ = claim(Attempt.objects.get(), at(1))
    attempt_finish(attempt=attempt, status="failed", reason="exit 1", now=at(1, 10))
    tick(now=at(3))
    run_cancel(run=Run.objects.get(scheduled_for=at(3)), actor=acting("alice"), now=at(3, 1))

    assert counts.finished_totals() == {"skipped": 1, "failed": 1, "cancelled": 1}


def test_a_slot_skipped_at_its_claim_is_counted_once():
    function = deploy("every-minute", "pass", schedule="* * * * *", now=T0)
    tick(now=at(0, 55))  # made ahead of 12:01
    function_pause(function=function, actor=acting("alice"), reason="outage", now=at(0, 56))

    assert claim(Attempt.objects.get(), at(0, 57)) is None
    assert Run.objects.get().status == "skipped"
    assert counts.finished_totals() == {"skipped": 1}


def test_a_slot_the_tick_had_already_made_is_not_counted_again(settings):
    settings.CHALK_CATCH_UP_SECONDS = 600
    deploy("hourly", "pass", schedule="0 * * * *", now=T0)
    later = dt.datetime(2026, 3, 1, 15, 30, tzinfo=dt.UTC)
    tick(now=later)  # the 15:00 slot is past the catch-up window: made skipped
    Function.objects.update(next_fire_at=later.replace(minute=0))  # the insert drops it
    tick(now=later)

    assert Run.objects.count() == 1
    assert counts.finished_totals() == {"skipped": 1}


def test_pruning_runs_leaves_the_counts_alone():
    deploy("every-minute", "pass", schedule="* * * * *", now=T0)
    tick(now=at(1))
    tick(now=at(2))
    runs_prune(before=at(10))

    assert not Run.objects.filter(status="skipped").exists()
    assert counts.finished_totals() == {"skipped": 1}


def test_runs_of_many_functions_spread_over_the_shards():
    for n in range(3):
        deploy(f"busy-{n}", "pass", schedule="* * * * *", now=T0)
    tick(now=at(1))
    tick(now=at(2))

    assert counts.finished_totals() == {"skipped": 3}
    assert FinishedRuns.objects.count() == 3  # three functions: three shards of "skipped"


@pytest.fixture
def runs_before_the_counters(transactional_db):
    """Runs ended before the upgrade: made now, then the counters' migration undone."""
    deploy("every-minute", "pass", schedule="* * * * *", now=T0)
    tick(now=at(1))
    tick(now=at(2))
    attempt, _ = claim(Attempt.objects.get(), at(1))
    attempt_finish(attempt=attempt, status="succeeded", now=at(1, 10))
    call_command("migrate", "runs", "0010", verbosity=0)
    yield
    call_command("migrate", verbosity=0)


def test_the_upgrade_counts_the_runs_already_ended(runs_before_the_counters):
    call_command("migrate", "runs", verbosity=0)

    assert counts.finished_totals() == {"skipped": 1, "succeeded": 1}

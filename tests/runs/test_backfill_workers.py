"""A backfill end to end on real celery workers, without beat: each run's end is what starts
the next slot (runs.tasks.advance_backfill on a control worker), and the live schedule is left
as it was."""

import datetime as dt

import pytest
from django.utils import timezone

from runs.backfills import backfill_start
from runs.models import Backfill, LogLine, Run
from tests.personas import acting
from tests.runs.support import deploy, wait_for

pytestmark = pytest.mark.slow

SLOTS = 24


def test_it_runs_24_hourly_slots_one_after_another_in_slot_order(platform):
    platform.start_workers()
    body = 'print("refreshed slot", chalkcompute.current_run().slot.isoformat())'
    function = deploy("hourly-rates", body, schedule="0 * * * *", overlap="skip")
    next_fire_at = function.next_fire_at
    now = timezone.now()
    first = (now - dt.timedelta(days=1)).replace(minute=0, second=0, microsecond=0)
    slots = [first + dt.timedelta(hours=n) for n in range(SLOTS)]

    backfill = backfill_start(
        function=function, start=slots[0], end=slots[-1], actor=acting("alice"), now=now
    )

    def done():
        return Backfill.objects.filter(id=backfill.id, status="done").exists()

    def progress():
        return f"backfill {backfill.id} to end: {list(backfill.runs.values_list('status'))}"

    wait_for(done, timeout=300, interval=1, message=progress)
    runs = list(Run.objects.filter(backfill=backfill).order_by("started_at"))
    assert [run.scheduled_for for run in runs] == slots
    assert {(run.trigger, run.status) for run in runs} == {("backfill", "succeeded")}
    for earlier, later in zip(runs, runs[1:], strict=False):
        assert later.started_at >= earlier.finished_at  # one at a time
    # Each run's function saw its own slot as current_run().slot, not the time it ran.
    said = LogLine.objects.filter(attempt__run__backfill=backfill).order_by(
        "attempt__run__started_at"
    )
    assert list(said.values_list("text", flat=True)) == [
        f"refreshed slot {slot.isoformat()}" for slot in slots
    ]
    function.refresh_from_db()
    assert function.next_fire_at == next_fire_at
    assert not Run.objects.filter(trigger="schedule").exists()

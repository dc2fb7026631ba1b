"""The tick fires zoned schedules by Debian cron's rules when the clocks change, with a pinned
clock: a fixed-time slot in a skipped hour runs once, right after the jump; one in a repeated
hour runs once; a wildcard schedule follows the wall clock."""

import datetime as dt

import pytest

from runs.models import LogLine, Run
from runs.scheduler import tick
from scheduling.models import Function
from scheduling.services import function_pause
from tests.personas import PLATFORM
from tests.runs.support import deploy, wait_for_run

UTC = dt.UTC
pytestmark = pytest.mark.django_db


def utc(*args: int) -> dt.datetime:
    return dt.datetime(*args, tzinfo=UTC)


def tick_every_minute(start: dt.datetime, end: dt.datetime) -> None:
    now = start
    while now < end:
        tick(now=now)
        now += dt.timedelta(minutes=1)


def slots(name: str) -> list[dt.datetime]:
    runs = Run.objects.filter(function__name=name).order_by("scheduled_for")
    return list(runs.values_list("scheduled_for", flat=True))


def test_new_york_at_0230_runs_once_on_both_days_the_clocks_change():
    deploy("nightly", "pass", schedule="30 2 * * *", zone="America/New_York",
           now=utc(2027, 3, 13, 12, 0))  # fmt: skip
    # 14 March 2027: 02:00 EST jumps to 03:00 EDT (07:00 UTC), so 02:30 does not exist.
    tick_every_minute(utc(2027, 3, 14, 4, 0), utc(2027, 3, 14, 12, 0))
    assert slots("nightly") == [utc(2027, 3, 14, 7, 0)]

    deploy("nightly-fall", "pass", schedule="30 1 * * *", zone="America/New_York",
           now=utc(2027, 11, 6, 12, 0))  # fmt: skip
    nightly = Function.objects.get(name="nightly")
    function_pause(function=nightly, actor=PLATFORM, reason="done", now=utc(2027, 11, 6, 12, 0))
    # 7 November 2027: 01:00-01:59 happens twice (EDT, then EST); 01:30 runs at the first.
    tick_every_minute(utc(2027, 11, 7, 4, 0), utc(2027, 11, 7, 8, 0))
    assert slots("nightly-fall") == [utc(2027, 11, 7, 5, 30)]


def test_a_wildcard_schedule_follows_the_wall_clock_through_the_repeated_hour():
    deploy("quarterly", "pass", schedule="*/30 1 * * *", zone="America/New_York",
           now=utc(2027, 11, 6, 12, 0))  # fmt: skip

    tick_every_minute(utc(2027, 11, 7, 4, 0), utc(2027, 11, 7, 8, 0))

    # 01:00 and 01:30 EDT, then 01:00 and 01:30 EST.
    assert slots("quarterly") == [
        utc(2027, 11, 7, 5, 0), utc(2027, 11, 7, 5, 30),
        utc(2027, 11, 7, 6, 0), utc(2027, 11, 7, 6, 30),
    ]  # fmt: skip


def test_zones_with_half_and_quarter_hour_offsets():
    deploy("kolkata", "pass", schedule="0 9 * * *", zone="Asia/Kolkata",
           now=utc(2027, 1, 1, 0, 0))  # fmt: skip
    deploy("kathmandu", "pass", schedule="0 9 * * *", zone="Asia/Kathmandu",
           now=utc(2027, 1, 1, 0, 0))  # fmt: skip

    tick_every_minute(utc(2027, 1, 1, 3, 0), utc(2027, 1, 1, 3, 40))

    assert slots("kolkata") == [utc(2027, 1, 1, 3, 30)]  # UTC+05:30
    assert slots("kathmandu") == [utc(2027, 1, 1, 3, 15)]  # UTC+05:45


@pytest.mark.slow
def test_on_real_workers_0230_in_new_york_runs_once_on_each_day_the_clocks_change(platform):
    """The ticks run with a pinned clock over 8 March and 1 November 2026, the days New York's
    clocks change; real workers run what they make, and each function says its slot."""
    platform.start_workers()
    body = 'print("slot", chalkcompute.current_run().slot.isoformat())'
    deploy("spring", body, schedule="30 2 * * *", zone="America/New_York",
           now=utc(2026, 3, 7, 12, 0))  # fmt: skip
    tick_every_minute(utc(2026, 3, 8, 4, 0), utc(2026, 3, 8, 12, 0))
    spring = wait_for_run(Run.objects.get(function__name="spring").id)
    function_pause(function=spring.function, actor=PLATFORM, reason="done",
                   now=utc(2026, 10, 31, 12, 0))  # fmt: skip

    deploy("fall", body, schedule="30 2 * * *", zone="America/New_York",
           now=utc(2026, 10, 31, 12, 0))  # fmt: skip
    tick_every_minute(utc(2026, 11, 1, 4, 0), utc(2026, 11, 1, 12, 0))
    fall = wait_for_run(Run.objects.get(function__name="fall").id)

    # 02:30 did not exist on 8 March (02:00 EST became 03:00 EDT): it ran once, at 03:00 EDT.
    # On 1 November 01:00-01:59 repeated, and 02:30 EST came once.
    for run, slot in ((spring, utc(2026, 3, 8, 7, 0)), (fall, utc(2026, 11, 1, 7, 30))):
        assert (run.status, run.scheduled_for) == ("succeeded", slot)
        said = LogLine.objects.filter(attempt__run=run, stream="stdout")
        assert list(said.values_list("text", flat=True)) == [f"slot {slot.isoformat()}"]
    assert Run.objects.count() == 2

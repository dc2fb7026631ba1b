"""manage.py after_restore, on a database as a dump leaves it: runs in flight at the backup are
ended as lost and never run again, functions move past the slots missed since the backup, and
nothing runs while beat or a worker is alive."""

import datetime as dt
from io import StringIO

import pytest
import time_machine
from django.core.management import call_command
from django.core.management.base import CommandError

from access.models import AuditEvent
from runs import heartbeats
from runs.models import Attempt, Run, RunStatus
from runs.scheduler import tick
from runs.services import RESTORED, attempt_begin, attempt_claim, attempt_finish, run_trigger
from scheduling.models import Function
from scheduling.services import function_pause
from tests.personas import PLATFORM
from tests.runs.support import deploy

pytestmark = pytest.mark.django_db


def at(minute: int, second: int = 0) -> dt.datetime:
    return dt.datetime(2026, 3, 1, 12, minute, second, tzinfo=dt.UTC)


BACKUP, RESTORE = at(1, 30), at(10, 20)


def start(attempt: Attempt, now: dt.datetime) -> Attempt:
    attempt, _ = attempt_claim(attempt_id=attempt.id, executor="local", executor_ref="w", now=now)
    attempt_begin(attempt=attempt, now=now)
    return attempt


@pytest.fixture
def dump():
    """The database as the backup at 12:01:30 caught it: a scheduled run retrying, a manual
    run running and one queued, each function's next slot now long past, and one paused."""
    minute = deploy("every-minute", "pass", schedule="* * * * *", retries=1, now=at(0, 30))
    five = deploy("every-five", "pass", schedule="*/5 * * * *", now=at(0, 30))
    paused = deploy("paused-one", "pass", schedule="* * * * *", now=at(0, 30))
    function_pause(function=paused, actor=PLATFORM, reason="held", now=at(0, 40))
    tick(now=at(1))
    first = start(Attempt.objects.get(run__function=minute), at(1))
    attempt_finish(attempt=first, status="failed", reason="boom", now=at(1, 10))
    running = run_trigger(function=five, trigger="manual", actor=PLATFORM, now=at(1, 20))
    start(running.attempts.get(), at(1, 20))
    run_trigger(function=five, trigger="manual", actor=PLATFORM, now=at(1, 25))
    heartbeats.record([("runs-worker", "runs@host", None, 1), ("beat", "", None, 1)], now=BACKUP)
    assert sorted(Run.objects.values_list("status", flat=True)) == [
        RunStatus.QUEUED, RunStatus.RETRYING, RunStatus.RUNNING,
    ]  # fmt: skip
    return minute, five, paused


def after_restore(now: dt.datetime, *args: str) -> str:
    out = StringIO()
    with time_machine.travel(now, tick=False):
        call_command("after_restore", *args, stdout=out)
    return out.getvalue()


def test_it_fences_the_runs_in_flight_and_moves_every_function_past_its_missed_slots(dump):
    minute, five, paused = dump

    said = after_restore(RESTORE)

    assert "Ended 3 run(s) in flight at the backup as lost, not run again, of 2 function(s):" in (
        said
    )
    assert "  every-five: 2\n  every-minute: 1\n" in said
    assert "Moved 2 function(s)" in said
    assert "  every-five: 2026-03-01 12:05:00 UTC -> 2026-03-01 12:15:00 UTC\n" in said
    assert "  every-minute: 2026-03-01 12:02:00 UTC -> 2026-03-01 12:11:00 UTC\n" in said
    assert "newest heartbeat in this database is from 2026-03-01 12:01:30 UTC" in said
    for run in Run.objects.all():
        assert (run.status, run.status_reason, run.finished_at) == (
            RunStatus.LOST, RESTORED, RESTORE,
        )  # fmt: skip
    assert not Attempt.objects.active().exists()
    assert Attempt.objects.filter(status="lost", reason=RESTORED).count() == 3  # never retried
    event = AuditEvent.objects.get(action="restore")
    assert (event.actor, event.detail) == (
        "platform",
        {"runs_lost": {"every-minute": 1, "every-five": 2}, "functions_moved": 2},
    )
    paused.refresh_from_db()
    assert (paused.paused, paused.next_fire_at) == (True, None)
    # The first slot after the restore runs once, on time: no overlap, no catch-up.
    assert tick(now=at(10, 56)).runs == 1
    run = Run.objects.get(scheduled_for=at(11))
    assert (run.function_id, run.status, run.missed_slots) == (minute.id, RunStatus.QUEUED, 0)


def test_a_second_call_changes_nothing_and_says_so(dump):
    after_restore(RESTORE)
    before = sorted(Run.objects.values_list("id", "status", "finished_at"))
    slots = sorted(Function.objects.values_list("name", "next_fire_at"))

    said = after_restore(RESTORE + dt.timedelta(seconds=20))

    assert "Nothing to do: no run is in flight and no function's next slot has passed" in said
    assert sorted(Run.objects.values_list("id", "status", "finished_at")) == before
    assert sorted(Function.objects.values_list("name", "next_fire_at")) == slots
    assert AuditEvent.objects.filter(action="restore").count() == 1


def test_it_refuses_while_a_worker_is_alive_unless_forced(dump):
    seen = RESTORE - dt.timedelta(seconds=5)
    heartbeats.record([("runs-worker", "runs@host", None, 1)], now=seen)

    with pytest.raises(CommandError, match=r"runs-worker runs@host \(5 s ago\)") as refused:
        after_restore(RESTORE)

    assert "Stop beat and the workers first" in str(refused.value)
    assert Run.objects.filter(status=RunStatus.LOST).count() == 0
    assert not AuditEvent.objects.filter(action="restore").exists()
    assert "Ended 3 run(s)" in after_restore(RESTORE, "--force")


def test_it_refuses_while_beat_ticks(dump):
    heartbeats.record([("beat", "", None, 1)], now=RESTORE - dt.timedelta(seconds=1))

    with pytest.raises(CommandError, match="beat or a worker is alive: beat"):
        after_restore(RESTORE)

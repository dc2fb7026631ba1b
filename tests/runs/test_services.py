"""The run state machine's services, on the real database with a pinned clock."""

import datetime as dt

import pytest
import time_machine
from django.db import connection
from django.test.utils import CaptureQueriesContext

from runs.errors import MissingLogLinesError
from runs.logs import log_append, log_system, usage_append
from runs.models import Attempt, LogLine, Run, UsageSample
from runs.scheduler import tick
from runs.services import (
    attempt_cancel_if_requested,
    attempt_claim,
    attempt_dispatched,
    attempt_fail,
    attempt_finish,
    run_cancel,
    runs_prune,
)
from runs.tasks import prune_runs
from scheduling.services import function_pause
from tests.personas import acting
from tests.runs.support import deploy

T0 = dt.datetime(2026, 3, 1, 12, 0, 30, tzinfo=dt.UTC)
SLOT = dt.datetime(2026, 3, 1, 12, 1, tzinfo=dt.UTC)

pytestmark = pytest.mark.django_db


def line(text: str) -> dict:
    return {"ts": T0.timestamp(), "stream": "stdout", "level": "", "text": text}


@pytest.fixture
def attempt():
    deploy("logger", "pass", schedule="* * * * *", now=T0)
    tick(now=SLOT)
    return Attempt.objects.get()


def texts(attempt: Attempt) -> list[str]:
    return list(
        LogLine.objects.filter(attempt=attempt).order_by("seq").values_list("text", flat=True)
    )


def test_it_keeps_a_resent_batchs_new_lines_only(attempt):
    log_append(attempt=attempt, first_seq=0, lines=[line("a"), line("b")], now=T0)
    log_append(attempt=attempt, first_seq=1, lines=[line("b"), line("c")], now=T0)
    assert texts(attempt) == ["a", "b", "c"]


def test_it_keeps_the_runners_lines_when_the_platform_wrote_first(attempt):
    log_system(attempt=attempt, text="waiting for the image build", now=T0)
    log_append(attempt=attempt, first_seq=0, lines=[line("first"), line("second")], now=T0)
    log_append(attempt=attempt, first_seq=2, lines=[line("third")], now=T0)
    assert texts(attempt) == ["waiting for the image build", "first", "second", "third"]


def test_it_refuses_a_batch_that_skips_lines(attempt):
    with pytest.raises(MissingLogLinesError, match="log lines 0..1 are missing; resend from 0"):
        log_append(attempt=attempt, first_seq=2, lines=[line("late")], now=T0)
    assert texts(attempt) == []


def test_it_skips_a_run_created_ahead_when_its_function_is_paused_before_the_slot(attempt):
    function_pause(
        function=attempt.run.function, actor=acting("alice"), reason="vendor outage", now=T0
    )

    claimed = attempt_claim(attempt_id=attempt.id, executor="local", executor_ref="test", now=SLOT)

    assert claimed is None
    run = Run.objects.get()
    assert (run.status, run.status_reason) == (
        "skipped", "the function was paused before this slot (vendor outage)",
    )  # fmt: skip
    assert Attempt.objects.get().status == "cancelled"


def test_it_runs_the_version_deployed_between_the_runs_creation_and_its_slot(attempt):
    deploy("logger", "print('v2')", schedule="*/5 * * * *", now=T0)  # 12:01 is not a 5th minute
    deploy("logger", "print('v3')", schedule="* * * * *", now=T0)

    claimed, _ = attempt_claim(
        attempt_id=attempt.id, executor="local", executor_ref="test", now=SLOT
    )

    assert claimed.run.version.number == 3
    assert "print('v3')" in claimed.run.version.source
    assert Run.objects.get().version.number == 3


def test_it_skips_a_run_created_ahead_when_a_deploy_dropped_its_slot(attempt):
    deploy("logger", "pass", schedule="*/5 * * * *", now=T0)

    claimed = attempt_claim(attempt_id=attempt.id, executor="local", executor_ref="test", now=SLOT)

    assert claimed is None
    run = Run.objects.get()
    assert (run.status, run.version.number) == ("skipped", 1)
    assert run.status_reason == (
        "version 2 was deployed before this slot, and its schedule (*/5 * * * *) does not "
        "include it"
    )


def test_it_skips_a_run_created_ahead_when_a_deploy_removed_the_schedule(attempt):
    deploy("logger", "pass", now=T0)

    assert (
        attempt_claim(attempt_id=attempt.id, executor="local", executor_ref="test", now=SLOT)
        is None
    )
    assert Run.objects.get().status_reason == (
        "version 2 was deployed before this slot, and its schedule (none) does not include it"
    )


def test_it_gives_a_claimed_attempt_a_token_only_once(attempt):
    first = attempt_claim(attempt_id=attempt.id, executor="local", executor_ref="test", now=SLOT)
    second = attempt_claim(attempt_id=attempt.id, executor="local", executor_ref="test", now=SLOT)
    assert first is not None and second is None
    claimed, token = first
    assert claimed.status == "starting" and token.startswith("chalk_attempt_")


def claimed(attempt: Attempt) -> Attempt:
    started, _ = attempt_claim(
        attempt_id=attempt.id, executor="local", executor_ref="test", now=SLOT
    )
    return started


def log_rows(attempt: Attempt) -> list[tuple[str, str, str]]:
    return list(
        LogLine.objects.filter(attempt=attempt)
        .order_by("seq")
        .values_list("stream", "level", "text")
    )


def test_it_cancels_an_attempt_whose_run_was_cancelled_before_its_runner_started(attempt):
    started = claimed(attempt)
    assert attempt_cancel_if_requested(attempt=started, now=SLOT) is False
    assert Attempt.objects.get().status == "starting"

    run_cancel(run=started.run, actor=acting("alice"), now=SLOT)
    assert attempt_cancel_if_requested(attempt=started, now=SLOT) is True

    ended = Attempt.objects.get()
    assert (ended.status, ended.reason, ended.finished_at) == (
        "cancelled", "cancelled before it started", SLOT,
    )  # fmt: skip
    assert Run.objects.get().status == "cancelled"


def test_it_fails_an_attempt_once_and_writes_the_reason_to_its_log(attempt):
    started = claimed(attempt)
    reason = "the Kubernetes API answered 403 Forbidden"

    assert attempt_fail(attempt=started, reason=reason, now=SLOT, retryable=False) is True
    assert attempt_fail(attempt=started, reason="a second report", now=SLOT) is False

    ended = Attempt.objects.get()
    assert (ended.status, ended.reason) == ("failed", reason)
    assert log_rows(ended) == [("system", "ERROR", reason)]
    assert Run.objects.get().status == "failed"


def test_it_records_where_an_attempt_was_dispatched_only_while_it_is_active(attempt):
    started = claimed(attempt)
    later = SLOT + dt.timedelta(seconds=2)

    assert attempt_dispatched(attempt=started, executor_ref="chalk-logger-r1-a1", now=later)
    assert Attempt.objects.values_list("executor_ref", "dispatched_at").get() == (
        "chalk-logger-r1-a1", later,
    )  # fmt: skip

    attempt_finish(attempt=started, status="cancelled", reason="cancelled", now=later)
    assert not attempt_dispatched(attempt=started, executor_ref="another-job", now=later)
    assert Attempt.objects.get().executor_ref == "chalk-logger-r1-a1"


def finished_run(function, *, finished_at: dt.datetime | None) -> Run:
    """A run with one attempt, one log line and one usage sample, ended at `finished_at`."""
    at = finished_at or T0
    run = Run.objects.create(
        function=function, version=function.current_version, trigger="manual",
        scheduled_for=at, created_at=at, finished_at=finished_at,
        status="succeeded" if finished_at else "running",
    )  # fmt: skip
    attempt = Attempt.objects.create(run=run, number=1, not_before=at, created_at=at)
    log_append(attempt=attempt, first_seq=0, lines=[line("hello")], now=at)
    usage_append(attempt=attempt, samples=[{"cpu_seconds": 1.0, "rss_bytes": 1024}], now=at)
    return run


def test_it_prunes_runs_that_finished_before_the_cutoff_in_batches(attempt):
    function = attempt.run.function
    cutoff = T0 - dt.timedelta(days=30)
    old = [
        finished_run(function, finished_at=cutoff - dt.timedelta(days=d)) for d in (1, 2, 3, 4, 5)
    ]
    at_cutoff = finished_run(function, finished_at=cutoff)
    recent = finished_run(function, finished_at=T0)
    running = finished_run(function, finished_at=None)

    with CaptureQueriesContext(connection) as queries:
        pruned = runs_prune(before=cutoff, batch=2)

    assert pruned == 5
    kept = {attempt.run_id, at_cutoff.id, recent.id, running.id}
    assert set(Run.objects.values_list("id", flat=True)) == kept
    assert set(Attempt.objects.values_list("run_id", flat=True)) == kept
    assert set(LogLine.objects.values_list("attempt__run_id", flat=True)) == kept - {attempt.run_id}
    assert UsageSample.objects.filter(attempt__run_id__in=[r.id for r in old]).count() == 0
    assert UsageSample.objects.count() == 3
    # Bounded: one delete of runs per batch of 2 (2 + 2 + 1), never one for the whole window.
    run_deletes = [
        q["sql"] for q in queries.captured_queries if q["sql"].startswith('DELETE FROM "runs_run"')
    ]
    assert len(run_deletes) == 3


def test_the_prune_task_deletes_runs_past_the_retention_period(attempt, settings):
    settings.CHALK_RUN_RETENTION_DAYS = 30
    function = attempt.run.function
    expired = finished_run(function, finished_at=T0 - dt.timedelta(days=30, seconds=1))
    kept = finished_run(function, finished_at=T0 - dt.timedelta(days=29))

    with time_machine.travel(T0, tick=False):
        assert prune_runs() == 1

    assert not Run.objects.filter(id=expired.id).exists()
    assert Run.objects.filter(id=kept.id).exists()

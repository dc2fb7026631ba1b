"""The run state machine's services, on the real database with a pinned clock."""

import datetime as dt

import pytest

from runs.models import Attempt, LogLine, Run
from runs.scheduler import tick
from runs.services import attempt_claim, log_append, log_system
from scheduling.services import function_pause
from tests.runs.conftest import deploy

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
    with pytest.raises(ValueError, match="log lines 0..1 are missing; resend from 0"):
        log_append(attempt=attempt, first_seq=2, lines=[line("late")], now=T0)
    assert texts(attempt) == []


def test_it_skips_a_run_created_ahead_when_its_function_is_paused_before_the_slot(attempt):
    function_pause(function=attempt.run.function, paused_by="alice", reason="vendor outage", now=T0)

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

"""What a run knows of itself (chalkcompute.current_run()): the facts the server decides and
gives the runner with its attempt, and the runner hands to the function's process and to every
program it starts as CHALK_RUN_* variables."""

import datetime as dt

import pytest
from django.utils import timezone

from runs import scheduler
from runs.models import Run
from runs.services import attempt_claim, attempt_claim_next, attempt_finish, run_trigger
from tests.personas import acting
from tests.runs.runner_harness import attempt_spec, run_runner
from tests.runs.support import deploy

ATTEMPT = "/api/runner/v1/attempt"
MINUTE = dt.timedelta(minutes=1)


def past_run(function, slot: dt.datetime, status: str, trigger: str = "schedule") -> Run:
    return Run.objects.create(
        function=function, version=function.current_version, trigger=trigger,
        scheduled_for=slot, status=status, created_at=slot, finished_at=slot,
    )  # fmt: skip


def fetched(client, token: str) -> dict:
    response = client.get(ATTEMPT, HTTP_AUTHORIZATION=f"Bearer {token}")
    assert response.status_code == 200, response.content
    return response.json()["run"]


def nightly(retries: int = 0):
    """A function every minute and its next slot, at least 5 s away; tick(slot) makes its run
    as the tick does (ahead of the slot), and claimed() takes it as a worker does."""
    function = deploy("nightly-rollup", "pass", schedule="* * * * *", retries=retries)
    slot = (timezone.now() + dt.timedelta(seconds=65)).replace(second=0, microsecond=0)
    function.next_fire_at = slot
    function.save(update_fields=["next_fire_at"])
    return function, slot


def claimed():
    ahead = dt.timedelta(seconds=70)
    return attempt_claim_next(executor="local", executor_ref="t", now=timezone.now(), ahead=ahead)


def test_a_scheduled_run_gets_its_slot_and_the_slot_of_the_last_success_before_it(client, db):
    function, slot = nightly()
    past_run(function, slot - 3 * MINUTE, "succeeded")
    past_run(function, slot - 2 * MINUTE, "failed")
    past_run(function, slot - MINUTE, "succeeded", trigger="manual")  # started by hand
    past_run(function, slot + 5 * MINUTE, "succeeded")  # a later slot (a backfill's)
    past_run(deploy("other", "pass"), slot - MINUTE, "succeeded")
    scheduler.tick(now=slot)
    attempt, token = claimed()

    assert fetched(client, token) == {
        "run_id": attempt.run_id,
        "attempt": 1,
        "trigger": "schedule",
        "slot": f"{slot:%Y-%m-%dT%H:%M:%S}Z",
        "previous_success_slot": f"{slot - 3 * MINUTE:%Y-%m-%dT%H:%M:%S}Z",
        "function": "nightly-rollup",
        "version": 1,
    }


def test_a_retry_keeps_its_runs_slot(client, db):
    function, slot = nightly(retries=1)
    scheduler.tick(now=slot)
    first, _ = claimed()
    attempt_finish(attempt=first, status="failed", now=timezone.now())
    retry = Run.objects.get(function=function).attempts.get(number=2)
    _, token = attempt_claim(
        attempt_id=retry.id, executor="local", executor_ref="test", now=timezone.now()
    )

    facts = fetched(client, token)

    assert (facts["attempt"], facts["trigger"]) == (2, "schedule")
    assert facts["slot"] == f"{slot:%Y-%m-%dT%H:%M:%S}Z"


def test_a_run_started_by_hand_has_no_slot(client, db):
    function, slot = nightly()
    past_run(function, slot - 3 * MINUTE, "succeeded")
    past_run(function, slot + MINUTE, "succeeded")  # after the run was asked for
    run = run_trigger(function=function, trigger="api", actor=acting("alice"), now=timezone.now())
    _, token = claimed()

    facts = fetched(client, token)

    assert (facts["run_id"], facts["trigger"], facts["slot"]) == (run.id, "api", None)
    assert facts["previous_success_slot"] == f"{slot - 3 * MINUTE:%Y-%m-%dT%H:%M:%S}Z"


@pytest.mark.parametrize(
    ("trigger", "has_slot"), [("schedule", True), ("backfill", True), ("manual", False)]
)
def test_every_run_but_one_started_by_hand_has_its_stored_instant_as_its_slot(trigger, has_slot):
    moment = dt.datetime(2026, 3, 1, 12, tzinfo=dt.UTC)

    assert Run(trigger=trigger, scheduled_for=moment).slot == (moment if has_slot else None)


def test_the_function_and_every_program_it_starts_see_the_runs_facts():
    facts = {
        "run_id": 41, "attempt": 2, "trigger": "schedule", "slot": "2026-03-01T12:00:00Z",
        "previous_success_slot": None, "function": "nightly-rollup", "version": 7,
    }  # fmt: skip
    body = """
    import subprocess
    import chalkcompute
    subprocess.run(["sh", "-c", 'echo "slot=$CHALK_RUN_SLOT previous=$CHALK_RUN_PREVIOUS_SUCCESS_SLOT"'])
    run = chalkcompute.current_run()
    return [run.run_id, run.attempt, run.trigger, run.slot.isoformat(), run.previous_success_slot,
            run.function, run.version]
    """  # noqa: E501 - the function's code, as it is written

    result = run_runner(attempt_spec(body, run=facts))

    assert result.log == [("stdout", "", "slot=2026-03-01T12:00:00Z previous=")]
    assert result.outcome["return_value"] == [
        41, 2, "schedule", "2026-03-01T12:00:00+00:00", None, "nightly-rollup", 7,
    ]  # fmt: skip

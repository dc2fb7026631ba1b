"""Runs taken ahead of their slot: how far ahead by the slot's size, and a pause or a deploy
before the slot still winning over a run whose runner (or Kubernetes Job) already waits.

The runner API is called as the runner calls it, on the real clock: a prepared run's slot is a
few seconds ahead of now."""

import datetime as dt

import pytest
from django.utils import timezone
from rest_framework.test import APIClient

from chalkcompute.runtime import runner
from runs import scheduler
from runs.models import Attempt, Run
from runs.services import attempt_claim_next, prepare_lead, reap
from scheduling.models import Function
from scheduling.services import function_pause
from tests.personas import acting, make_token
from tests.runs.support import deploy

ATTEMPT, HEARTBEAT = "/api/runner/v1/attempt", "/api/runner/v1/heartbeat"


@pytest.mark.parametrize(
    ("executor", "count", "seconds"),
    [("local", 1, 1.25), ("local", 60, 16.0), ("local", 200, 51.0), ("local", 10_000, 60),
     ("kubernetes", 1, 30.05), ("kubernetes", 200, 40.0), ("kubernetes", 10_000, 60)],
)  # fmt: skip
def test_a_slot_is_taken_ahead_by_its_size_up_to_the_cap(settings, executor, count, seconds):
    settings.CHALK_EXECUTOR = executor

    assert prepare_lead(count).total_seconds() == pytest.approx(seconds)


@pytest.fixture
def prepared(db, client):
    """A scheduled run whose slot (the next minute at least 5 s away) is taken by a worker,
    its runner calling."""
    function = deploy("warm-cache", "pass", schedule="* * * * *")
    slot = (timezone.now() + dt.timedelta(seconds=65)).replace(second=0, microsecond=0)
    Function.objects.filter(id=function.id).update(next_fire_at=slot)
    scheduler.tick(now=slot - dt.timedelta(seconds=2), batch_size=10)  # the tick, ahead
    run = Run.objects.get(function=function, scheduled_for=slot)
    attempt, token = attempt_claim_next(
        executor="local", executor_ref="test", now=timezone.now(), ahead=dt.timedelta(seconds=70)
    )
    assert attempt.run_id == run.id

    def call(path: str, body: dict | None = None):
        headers = {"HTTP_AUTHORIZATION": f"Bearer {token}"}
        if body is None:
            return client.get(path, **headers)
        return client.post(path, body, content_type="application/json", **headers)

    return function, run, call


def test_a_prepared_run_shows_as_scheduled_until_its_slot(prepared):
    function, run, call = prepared
    assert call(ATTEMPT).status_code == 200  # the runner waits for the slot

    run = Run.objects.get(id=run.id)
    assert (run.status, run.shown_status) == ("running", "scheduled")
    _, token = make_token("reader", role="viewer")
    api = APIClient(HTTP_AUTHORIZATION=f"Bearer {token}")
    shown = api.get(f"/api/v1/runs/{run.id}").json()
    assert (shown["status"], shown["shown_status"]) == ("running", "scheduled")
    Run.objects.filter(id=run.id).update(scheduled_for=timezone.now() - dt.timedelta(seconds=1))
    assert Run.objects.get(id=run.id).shown_status == "running"
    assert api.get("/api/v1/runs?function=warm-cache").json()["results"][0]["shown_status"] == (
        "running"
    )


def test_a_pause_before_the_slot_stops_the_waiting_runner_and_skips_the_run(prepared):
    function, run, call = prepared
    assert call(ATTEMPT).status_code == 200
    assert call(HEARTBEAT, {"first_seq": 0, "lines": []}).json() == {"cancel": False}

    function_pause(function=function, actor=acting("alice"), reason="migration", now=timezone.now())
    answer = call(HEARTBEAT, {"first_seq": 0, "lines": []})

    assert answer.json() == {"cancel": True}
    run = Run.objects.get(id=run.id)
    assert (run.status, run.status_reason) == (
        "skipped",
        "the function was paused before this slot (migration)",
    )
    assert run.attempts.get().status == "cancelled"
    # The runner's report of its cancel comes too late to change anything: the attempt ended.
    assert call("/api/runner/v1/finish", {"status": "cancelled"}).status_code == 401


def test_a_deploy_that_drops_the_slot_refuses_the_runner_that_starts_after_it(prepared):
    function, run, call = prepared
    deploy("warm-cache", "pass", schedule="0 3 * * *")

    answer = call(ATTEMPT)

    assert answer.status_code == 409
    assert answer.json() == {
        "error": "slot_skipped",
        "detail": "this run's slot was skipped: version 2 was deployed before this slot, and its "
        "schedule (0 3 * * *) does not include it",
    }
    assert Run.objects.get(id=run.id).status == "skipped"


def test_a_deploy_that_keeps_the_slot_lets_the_prepared_run_go_on(prepared):
    function, run, call = prepared
    assert call(ATTEMPT).status_code == 200
    deploy("warm-cache", "print('v2')", schedule="*/1 * * * *")

    assert call(HEARTBEAT, {"first_seq": 0, "lines": []}).json() == {"cancel": False}
    assert Run.objects.get(id=run.id).status == "running"


def test_the_reaper_skips_a_prepared_run_whose_runner_has_not_called_yet(prepared):
    function, run, _ = prepared  # a pod still starting: no fetch, no heartbeat
    function_pause(function=function, actor=acting("alice"), reason="", now=timezone.now())

    assert reap(now=timezone.now())["skipped_ahead"] == 1
    assert Run.objects.get(id=run.id).status == "skipped"
    assert reap(now=timezone.now())["skipped_ahead"] == 0


def test_a_pause_after_the_slot_leaves_the_running_run_alone(prepared):
    function, run, call = prepared
    assert call(ATTEMPT).status_code == 200
    Attempt.objects.filter(run=run).update(not_before=timezone.now() - dt.timedelta(seconds=1))
    function_pause(function=function, actor=acting("alice"), reason="", now=timezone.now())

    assert call(HEARTBEAT, {"first_seq": 0, "lines": []}).json() == {"cancel": False}
    assert reap(now=timezone.now())["skipped_ahead"] == 0
    assert Run.objects.get(id=run.id).status == "running"


@pytest.mark.parametrize(
    ("now", "start", "earliest", "latest"),
    [
        (0.0, 60.0, 10.0, 10.0),  # far from the slot: every 10 s
        (52.0, 60.0, 58.0, 59.0),  # the last call, 1–2 s before the slot
        (58.3, 60.0, 59.3, 59.3),  # from then on, every second
        (70.0, 60.0, 71.0, 71.0),  # the function runs: every second
        (0.0, 0.0, 1.0, 1.0),  # run now: no wait
    ],
)
def test_a_waiting_runner_beats_rarely_and_once_just_before_its_slot(now, start, earliest, latest):
    for _ in range(20):
        assert earliest <= runner._next_heartbeat(now, start) <= latest

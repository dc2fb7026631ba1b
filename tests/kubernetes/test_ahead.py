"""Kubernetes Jobs made ahead of their slot. A scheduled attempt is claimed
CHALK_K8S_LOOKAHEAD_SECONDS (30) before its slot, so its Job is made then and its runner waits
in the pod for the slot: the function starts on it, where a CronJob would only then make the
Job. The executor runs over HTTP against the fake API server with the real database; the
clock is pinned at 30 s before the slot, and the runner's side of the protocol is played with
the test client, except in the last test, where the fake's kubelet runs the pod's command
after a pod start delay."""

import datetime as dt
import os
import re
import sys
from pathlib import Path

import kubernetes_validate
import pytest
from django.utils import timezone

from chalkcompute import Image
from runs.executors.kubernetes.manifests import ANNOTATION_STARTS_AT
from runs.executors.kubernetes.reconcile import reconcile
from runs.models import Attempt, LogLine, Run
from runs.services import reap, run_trigger
from runs.tasks import reconcile_kubernetes
from scheduling.services import function_pause
from tests.kubernetes.apichecks import api_server_errors
from tests.kubernetes.support import NAMESPACE, attempts, log, schedule_slot
from tests.kubernetes.test_executor import JOBS, REGISTRY, secret_token
from tests.kubernetes.test_manifests import NEWEST, OLDEST
from tests.personas import acting
from tests.runs.support import deploy, wait_for

pytestmark = pytest.mark.django_db

REPO = Path(__file__).resolve().parents[2]
SLOT = dt.datetime(2026, 3, 1, 12, 1, tzinfo=dt.UTC)  # a minute, not a fifth one
T = SLOT - dt.timedelta(seconds=30)  # when the slot's wake-up reaches a runs worker
UNSCHEDULABLE = "0/3 nodes are available: 3 Insufficient memory."
RUNNER = "/api/runner/v1/"


def at(seconds: float) -> dt.datetime:
    """`seconds` after the slot (before it when negative)."""
    return SLOT + dt.timedelta(seconds=seconds)


@pytest.fixture
def clock_start() -> dt.datetime:
    return T


@pytest.fixture
def on_commit(django_capture_on_commit_callbacks, eager_tasks):
    """Runs what a block sends once it commits (wake-ups, cancels) here and now."""
    return lambda: django_capture_on_commit_callbacks(execute=True)


@pytest.fixture
def prepare(kubernetes, clock, on_commit):
    """Makes the slot's run at T, as the tick does; its wake-up reaches the worker's task then,
    30 s (the lookahead) before the slot, which claims the attempt and makes its Job."""

    def prepare(function) -> Attempt:
        with on_commit():
            attempt = schedule_slot(function, SLOT, now=timezone.now())
        attempt.refresh_from_db()
        return attempt

    return prepare


def nightly(**options):
    return deploy("nightly-rollup", "pass", schedule="* * * * *", now=T, **options)


def runner(client, kubernetes, attempt: Attempt):
    """The runner in the attempt's pod, with the token from its Secret."""
    auth = {"HTTP_AUTHORIZATION": f"Bearer {secret_token(kubernetes, attempt.executor_ref)}"}

    class Runner:
        def fetch(self):
            return client.get(RUNNER + "attempt", **auth)

        def heartbeat(self):
            body = {"first_seq": 0, "lines": [], "samples": []}
            return client.post(
                RUNNER + "heartbeat", body, content_type="application/json", **auth
            ).json()

    return Runner()


def deletes(kubernetes) -> list[str]:
    return [r.path for r in kubernetes.requests if r.method == "DELETE"]


def ended(attempt: Attempt) -> tuple[Attempt, Run]:
    attempt.refresh_from_db()
    return attempt, Run.objects.get(id=attempt.run_id)


def test_it_makes_a_scheduled_attempts_job_its_lookahead_before_the_slot(kubernetes, prepare):
    attempt = prepare(nightly(timeout=600))

    name = f"chalk-nightly-rollup-r{attempt.run_id}-a1"
    assert (attempt.status, attempt.executor_ref, attempt.dispatched_at) == ("starting", name, T)
    (create,) = [r for r in kubernetes.requests if r.method == "POST" and r.path == JOBS]
    assert create.query["fieldValidation"] == "Strict"  # the fake checked it against 1.37
    job = create.body
    assert [kubernetes_validate.validate(job, v, strict=True) for v in (OLDEST, NEWEST)] == [
        OLDEST,
        NEWEST,
    ]
    assert api_server_errors(job) == []
    # The deadline counts from the Job's start: the wait for the slot, the timeout, the margin.
    assert job["spec"]["activeDeadlineSeconds"] == 30 + 600 + 300
    assert job["metadata"]["annotations"][ANNOTATION_STARTS_AT] == "2026-03-01T12:01:00Z"
    assert log(attempt) == [
        ("system", "INFO", f"Job {name} created 30 s before the slot; the function starts on it")
    ]


def test_its_runner_waits_for_the_slot_without_looking_lost_or_late(
    kubernetes, prepare, clock, client
):
    """The pod starts 8 s after its Job; its runner fetches the attempt and beats every 5 s
    while it waits. Beat's reconcile pass and the reaper run all along."""
    attempt = prepare(nightly())
    kubernetes.container_waiting(attempt.executor_ref, NAMESPACE, "ContainerCreating")
    pod = runner(client, kubernetes, attempt)
    for second in range(-30, 11):
        clock.move_to(at(second))
        if second == -22:
            kubernetes.container_running(attempt.executor_ref, NAMESPACE)
            spec = pod.fetch().json()
            assert spec["start_at"] == SLOT.timestamp()
            assert Run.objects.get(id=attempt.run_id).shown_status == "scheduled"
        elif second > -22 and second % 5 == 0:
            assert pod.heartbeat() == {"cancel": False}
        if second % 5 == 0:
            reconcile(now=timezone.now())
        assert reap(now=timezone.now())["lost"] == 0

    attempt, run = ended(attempt)
    assert (attempt.status, attempt.started_at, run.status, run.started_at) == (
        "running",
        SLOT,
        "running",
        SLOT,
    )
    assert run.shown_status == "running"


def test_its_wait_for_the_slot_does_not_shorten_the_image_pull_grace(kubernetes, prepare):
    attempt = prepare(nightly(retries=2))
    kubernetes.container_waiting(
        attempt.executor_ref, NAMESPACE, "ImagePullBackOff", "429 Too Many Requests"
    )

    reconcile(now=T + dt.timedelta(seconds=125))  # past the 120 s grace from the Job, not the slot
    assert ended(attempt)[0].status == "starting"
    reconcile(now=at(121))

    attempt, run = ended(attempt)
    assert attempt.reason == (
        "image_pull: image python:3.11-slim-trixie could not be pulled for 151s: "
        "429 Too Many Requests"
    )
    assert attempts(run) == [(1, "failed", True)]


def test_its_wait_for_the_slot_does_not_shorten_the_pending_timeout(kubernetes, prepare):
    attempt = prepare(nightly())
    kubernetes.unschedulable(attempt.executor_ref, NAMESPACE, UNSCHEDULABLE)

    reconcile(now=at(280))  # 310 s after the Job was made
    assert ended(attempt)[0].status == "starting"
    reconcile(now=at(301))

    attempt, _ = ended(attempt)
    assert attempt.reason.startswith("unschedulable: no node could take the pod for 331s: ")


def test_its_deadline_says_it_covered_the_wait_for_the_slot(kubernetes, prepare):
    attempt = prepare(nightly(timeout=600))
    kubernetes.exceed_deadline(attempt.executor_ref, NAMESPACE)

    reconcile(now=T + dt.timedelta(seconds=930))

    attempt, run = ended(attempt)
    assert (attempt.status, run.status) == ("timed_out", "timed_out")
    assert attempt.reason == (
        "timed out: the Job passed its deadline of 930s (30s waiting for its start time, then "
        "the timeout plus 300s for scheduling and the image pull) and Kubernetes stopped it"
    )


def test_a_pause_before_the_slot_deletes_the_job_made_ahead_and_skips_the_run(
    kubernetes, prepare, clock, on_commit
):
    """The pod has not started: the reaper, which runs every 10 s, finds it."""
    function = nightly()
    attempt = prepare(function)
    clock.move_to(at(-20))
    function_pause(function=function, actor=acting("alice"), reason="vendor outage", now=at(-20))

    with on_commit():
        counts = reap(now=at(-18))

    assert counts["skipped_ahead"] == 1
    assert deletes(kubernetes) == [f"{JOBS}/{attempt.executor_ref}"]
    assert kubernetes.get("jobs", NAMESPACE, attempt.executor_ref) is None
    attempt, run = ended(attempt)
    reason = "the function was paused before this slot (vendor outage)"
    assert (run.status, run.status_reason, attempt.status, attempt.reason) == (
        "skipped",
        reason,
        "cancelled",
        reason,
    )
    reconcile(now=at(5))  # nothing of it is left to follow
    assert ended(attempt)[1].status == "skipped"


def test_a_runner_waiting_in_its_pod_hears_of_the_pause_and_its_job_is_deleted(
    kubernetes, prepare, clock, client, on_commit
):
    function = nightly()
    attempt = prepare(function)
    kubernetes.container_running(attempt.executor_ref, NAMESPACE)
    pod = runner(client, kubernetes, attempt)
    assert pod.fetch().status_code == 200
    clock.move_to(at(-10))
    function_pause(function=function, actor=acting("alice"), reason="vendor outage", now=at(-10))

    with on_commit():
        assert pod.heartbeat() == {"cancel": True}

    assert deletes(kubernetes) == [f"{JOBS}/{attempt.executor_ref}"]
    assert ended(attempt)[1].status == "skipped"


def test_a_pause_just_before_the_slot_still_wins_when_the_pod_starts_after_it(
    kubernetes, prepare, clock, client, on_commit
):
    """Paused 2 s before the slot, between two reaper passes; the pod starts 3 s late."""
    function = nightly()
    attempt = prepare(function)
    function_pause(function=function, actor=acting("alice"), reason="vendor outage", now=at(-2))
    clock.move_to(at(3))
    kubernetes.container_running(attempt.executor_ref, NAMESPACE)

    with on_commit():
        fetched = runner(client, kubernetes, attempt).fetch()

    assert (fetched.status_code, fetched.json()["error"]) == (409, "slot_skipped")
    assert deletes(kubernetes) == [f"{JOBS}/{attempt.executor_ref}"]
    run = ended(attempt)[1]
    assert (run.status, run.status_reason) == (
        "skipped",
        "the function was paused before this slot (vendor outage)",
    )


def test_a_pause_after_the_slot_leaves_a_late_pod_to_run_the_slot(
    kubernetes, prepare, clock, client, on_commit
):
    function = nightly()
    attempt = prepare(function)
    function_pause(function=function, actor=acting("alice"), reason="done for today", now=at(2))
    clock.move_to(at(3))
    reconcile(now=at(3))  # beat's pass: the pod still waits to start
    kubernetes.container_running(attempt.executor_ref, NAMESPACE)

    with on_commit():
        assert reap(now=at(3)) == {"lost": 0, "resent": 0, "skipped_ahead": 0}
        assert runner(client, kubernetes, attempt).fetch().status_code == 200

    assert deletes(kubernetes) == []
    assert ended(attempt)[1].status == "running"


def test_a_deploy_whose_schedule_drops_the_slot_deletes_the_job_made_ahead(
    kubernetes, prepare, clock, on_commit
):
    attempt = prepare(nightly())
    clock.move_to(at(-15))
    deploy("nightly-rollup", "pass", schedule="*/5 * * * *", now=at(-15))

    with on_commit():
        assert reap(now=at(-12))["skipped_ahead"] == 1

    assert deletes(kubernetes) == [f"{JOBS}/{attempt.executor_ref}"]
    attempt, run = ended(attempt)
    assert (run.status, attempt.status) == ("skipped", "cancelled")
    assert run.status_reason == (
        "version 2 was deployed before this slot, and its schedule (*/5 * * * *) does not "
        "include it"
    )


def test_a_deploy_that_keeps_the_slot_leaves_the_job_to_run_it_with_its_version(
    kubernetes, prepare, clock, client, on_commit
):
    """The Job holds the image and resources of the version it was made for: that version
    runs this slot, the new one the next."""
    attempt = prepare(nightly())
    clock.move_to(at(-15))
    deploy("nightly-rollup", "print('v2')", schedule="* * * * *", now=at(-15))
    kubernetes.container_running(attempt.executor_ref, NAMESPACE)

    with on_commit():
        assert reap(now=at(-12))["skipped_ahead"] == 0
        fetched = runner(client, kubernetes, attempt).fetch()

    assert (fetched.status_code, fetched.json()["run"]["version"]) == (200, 1)
    assert deletes(kubernetes) == []
    assert ended(attempt)[1].status == "running"


def test_a_manual_run_gets_its_job_at_once_with_no_wait(kubernetes, clock, on_commit):
    function = nightly(timeout=600)

    with on_commit():
        run = run_trigger(function=function, trigger="manual", actor=acting("test"), now=T)

    attempt = run.attempts.get()
    assert (attempt.status, attempt.dispatched_at) == ("starting", T)
    job = kubernetes.get("jobs", NAMESPACE, attempt.executor_ref)
    assert job["spec"]["activeDeadlineSeconds"] == 600 + 300
    assert job["metadata"]["annotations"][ANNOTATION_STARTS_AT] == "2026-03-01T12:00:30Z"
    assert log(attempt) == []


def test_a_retry_gets_its_job_when_it_is_queued_and_waits_out_its_backoff_in_the_pod(
    kubernetes, prepare, clock, on_commit
):
    attempt = prepare(nightly(timeout=600, retries=1))
    clock.move_to(at(5))
    kubernetes.container_terminated(attempt.executor_ref, NAMESPACE, 1)

    with on_commit():
        reconcile(now=at(5))

    run = ended(attempt)[1]
    assert attempts(run) == [(1, "failed", True), (2, "starting", True)]
    retry = run.attempts.get(number=2)
    assert (retry.not_before, retry.dispatched_at) == (at(6), at(5))  # a backoff of 1 s
    job = kubernetes.get("jobs", NAMESPACE, retry.executor_ref)
    assert job["spec"]["activeDeadlineSeconds"] == 1 + 600 + 300
    assert log(retry) == []  # no slot to speak of


@pytest.mark.slow
def test_with_a_pod_start_delay_a_job_made_ahead_calls_the_function_on_its_slot(
    kubernetes, settings, live_server, transactional_db, eager_tasks
):
    """Real time: the fake's kubelet runs each attempt pod's command 2 s after its Job is
    made. The image is built first; the reconcile pass then makes the Job, 6 s (the lookahead
    here) before the slot. A Job made at the slot would call the function 2 s late at best."""
    settings.CHALK_RUNNER_SERVER_URL = live_server.url
    settings.CHALK_K8S_REGISTRY = REGISTRY
    settings.CHALK_K8S_LOOKAHEAD_SECONDS = 6
    kubernetes.start_pods(
        python=sys.executable,
        env={"PATH": os.environ["PATH"], "PYTHONPATH": str(REPO)},
        delay=2.0,
    )
    function = deploy(
        "on-the-slot", "print('first line')", schedule="* * * * *", image=Image.debian_slim()
    )
    slot = timezone.now() + dt.timedelta(seconds=6)

    attempt = schedule_slot(function, slot, now=timezone.now())
    attempt.refresh_from_db()
    kubernetes.container_terminated(attempt.executor_ref, NAMESPACE, 0)  # the image is pushed
    reconcile_kubernetes()

    def ended_run() -> Run | None:
        reconcile_kubernetes()
        run = Run.objects.get(id=attempt.run_id)
        return run if run.status in ("succeeded", "failed", "lost", "timed_out") else None

    run = wait_for(ended_run, timeout=60, interval=0.5, message="the run to end")
    attempt.refresh_from_db()
    assert (run.status, attempt.started_at) == ("succeeded", slot)
    assert attempt.dispatched_at <= slot - dt.timedelta(seconds=3)  # a slow build start aside
    first = LogLine.objects.filter(attempt=attempt, stream="stdout").order_by("seq").first()
    assert first.text == "first line"
    assert dt.timedelta(0) <= first.ts - slot < dt.timedelta(seconds=0.5)
    created = LogLine.objects.filter(attempt=attempt, stream="system").order_by("seq").first()
    assert re.fullmatch(
        rf"Job {attempt.executor_ref} created [3-6] s before the slot; the function starts on it",
        created.text,
    )

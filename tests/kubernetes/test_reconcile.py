"""The reconcile pass, one test per row of the outcome mapping: the fake kubelet and Job
controller move an attempt's pod, and the pass records the outcome on the Attempt and Run rows
(status, reason, exit code, retry or not, log). Time is passed in, so grace periods and the
pending timeout need no sleeping."""

import datetime as dt
import threading

import pytest
from django.db import connection, transaction
from django.utils import timezone

from runs.executors.kubernetes.reconcile import reconcile
from runs.models import Attempt, Run
from runs.services import reap, run_cancel
from runs.tasks import reconcile_kubernetes
from tests.kubernetes.support import NAMESPACE, attempts, log, reconcile_at, start, trigger
from tests.kubernetes.test_executor import REGISTRY, WITH_REQUESTS, secret_token
from tests.personas import acting
from tests.runs.support import deploy

pytestmark = pytest.mark.django_db

UNSCHEDULABLE = "0/3 nodes are available: 3 Insufficient memory."


def ended(attempt: Attempt) -> tuple[Attempt, Run]:
    attempt.refresh_from_db()
    return attempt, Run.objects.get(id=attempt.run_id)


def test_it_keeps_the_runners_own_report_when_the_job_completes(kubernetes, client):
    attempt = start(deploy("nightly-rollup", "pass"))
    auth = {"HTTP_AUTHORIZATION": f"Bearer {secret_token(kubernetes, attempt.executor_ref)}"}
    kubernetes.container_running(attempt.executor_ref, NAMESPACE)
    assert client.get("/api/runner/v1/attempt", **auth).status_code == 200
    finish = {"status": "succeeded", "exit_code": 0, "peak_memory_bytes": 42_000_000}
    client.post("/api/runner/v1/finish", finish, content_type="application/json", **auth)
    kubernetes.container_terminated(attempt.executor_ref, NAMESPACE, 0)

    counts = reconcile_at()

    attempt, run = ended(attempt)
    assert (attempt.status, attempt.reason, attempt.peak_memory_bytes) == (
        "succeeded",
        "",
        42_000_000,
    )
    assert run.status == "succeeded"
    assert counts["finished"] == 0
    assert log(attempt) == []


def test_it_fails_an_attempt_whose_container_was_oom_killed(kubernetes):
    attempt = start(deploy("nightly-rollup", "pass", memory="1Gi"))
    kubernetes.container_terminated(attempt.executor_ref, NAMESPACE, 137, reason="OOMKilled")

    reconcile_at()

    attempt, run = ended(attempt)
    reason = "out of memory: the container exceeded its memory limit 1Gi"
    assert (attempt.status, attempt.exit_code, attempt.reason) == ("failed", 137, reason)
    assert (run.status, run.status_reason) == ("failed", reason)
    assert log(attempt)[-1] == ("system", "ERROR", reason)


def test_it_fails_a_bad_image_reference_at_once_without_a_retry(kubernetes):
    attempt = start(deploy("nightly-rollup", "pass", retries=2))
    kubernetes.container_waiting(
        attempt.executor_ref, NAMESPACE, "InvalidImageName", "invalid reference format"
    )

    reconcile_at()

    attempt, run = ended(attempt)
    assert attempt.reason == (
        "image_pull: image python:3.11-slim-trixie cannot be pulled (InvalidImageName): "
        "invalid reference format"
    )
    assert run.status == "failed"
    assert attempts(run) == [(1, "failed", True)]


def test_it_fails_an_image_that_cannot_be_pulled_once_the_grace_period_is_over(kubernetes):
    attempt = start(deploy("nightly-rollup", "pass", retries=2))
    kubernetes.container_waiting(
        attempt.executor_ref, NAMESPACE, "ImagePullBackOff", "401 Unauthorized"
    )

    reconcile_at(60)
    assert ended(attempt)[0].status == "starting"
    reconcile_at(125)

    attempt, run = ended(attempt)
    assert attempt.reason.startswith(
        "image_pull: image python:3.11-slim-trixie could not be pulled for 12"
    )
    assert attempts(run) == [(1, "failed", True)]


def test_it_fails_a_container_config_error_once_the_grace_period_is_over(kubernetes):
    attempt = start(deploy("nightly-rollup", "pass", retries=2))
    kubernetes.container_waiting(
        attempt.executor_ref, NAMESPACE, "CreateContainerConfigError", 'secret "x" not found'
    )

    reconcile_at(30)
    assert ended(attempt)[0].status == "starting"
    reconcile_at(65)

    attempt, run = ended(attempt)
    assert attempt.reason.startswith("config: the container could not be created for 6")
    assert attempt.reason.endswith('s: secret "x" not found')
    assert attempts(run) == [(1, "failed", True)]


def test_it_keeps_an_attempt_alive_while_its_pod_waits_for_a_node(kubernetes):
    attempt = start(deploy("nightly-rollup", "pass"))
    kubernetes.unschedulable(attempt.executor_ref, NAMESPACE, UNSCHEDULABLE)
    later = timezone.now() + dt.timedelta(seconds=200)

    reconcile(now=later)
    reap(now=later + dt.timedelta(seconds=5))

    attempt.refresh_from_db()
    assert (attempt.status, attempt.last_heartbeat_at) == ("starting", later)


def test_it_says_in_the_runs_log_why_its_pod_waits_once_per_change(kubernetes):
    attempt = start(deploy("nightly-rollup", "pass"))
    kubernetes.unschedulable(attempt.executor_ref, NAMESPACE, UNSCHEDULABLE)
    reconcile_at(10)
    reconcile_at(15)
    kubernetes.container_waiting(attempt.executor_ref, NAMESPACE, "ContainerCreating")
    reconcile_at(20)
    reconcile_at(25)
    kubernetes.container_running(attempt.executor_ref, NAMESPACE)
    reconcile_at(30)

    assert [text.split(":")[0] for _, _, text in log(attempt)] == [
        "no node can take the pod yet",
        "pulling image python",
    ]
    assert all(stream == "system" and level == "INFO" for stream, level, _ in log(attempt))


def test_it_fails_an_unschedulable_attempt_past_the_pending_timeout_without_a_retry(kubernetes):
    attempt = start(deploy("nightly-rollup", "pass", retries=2))
    kubernetes.unschedulable(attempt.executor_ref, NAMESPACE, UNSCHEDULABLE)

    reconcile_at(301)

    attempt, run = ended(attempt)
    assert attempt.reason.startswith("unschedulable: no node could take the pod for 30")
    assert UNSCHEDULABLE in attempt.reason
    assert run.status == "failed"
    assert attempts(run) == [(1, "failed", True)]


def test_it_fails_with_the_exit_code_and_retries_as_the_function_says(kubernetes):
    attempt = start(deploy("nightly-rollup", "pass", retries=1))
    kubernetes.container_terminated(
        attempt.executor_ref, NAMESPACE, 3, message="chalkcompute.runtime: cannot fetch"
    )

    reconcile_at()

    attempt, run = ended(attempt)
    assert (attempt.status, attempt.exit_code) == ("failed", 3)
    assert attempt.reason == (
        "exit_code: the container exited with code 3; last output: "
        "chalkcompute.runtime: cannot fetch"
    )
    assert run.status == "retrying"
    assert attempts(run) == [(1, "failed", True), (2, "queued", True)]


def test_it_times_out_an_attempt_whose_job_passed_its_deadline(kubernetes):
    attempt = start(deploy("nightly-rollup", "pass", timeout=60))
    kubernetes.exceed_deadline(attempt.executor_ref, NAMESPACE)

    reconcile_at()

    attempt, run = ended(attempt)
    assert attempt.status == "timed_out"
    assert attempt.reason.startswith("timed out: the Job passed its deadline of 360s")
    assert run.status == "timed_out"


def test_it_retries_an_evicted_attempt_without_using_one_of_the_functions_retries(kubernetes):
    attempt = start(deploy("nightly-rollup", "pass", retries=0))
    kubernetes.evict_for_node_pressure(attempt.executor_ref, NAMESPACE)

    reconcile_at()

    attempt, run = ended(attempt)
    assert attempt.reason.startswith("interrupted: the pod was evicted: The node was low on")
    assert run.status == "retrying"
    assert attempts(run) == [(1, "interrupted", False), (2, "queued", True)]
    assert log(attempt)[-1] == ("system", "WARNING", attempt.reason)


def test_it_marks_an_attempt_lost_when_someone_else_deletes_its_job(kubernetes):
    attempt = start(deploy("nightly-rollup", "pass"))
    kubernetes.delete_by_hand(attempt.executor_ref, NAMESPACE)

    reconcile_at()

    attempt, run = ended(attempt)
    assert attempt.status == "lost"
    assert attempt.reason.startswith("lost: the attempt's Job is gone and Chalkweb did not")
    assert run.status == "lost"


def test_it_keeps_the_pods_log_once_when_the_runner_sent_none(kubernetes):
    attempt = start(deploy("nightly-rollup", "pass"))
    kubernetes.set_log(attempt.executor_ref, NAMESPACE, "Traceback (most recent call last):\n")
    kubernetes.container_terminated(attempt.executor_ref, NAMESPACE, 1)

    reconcile_at()
    reconcile_at()

    attempt, _ = ended(attempt)
    assert log(attempt) == [
        ("system", "INFO", "the runner sent no log; the last 1 lines of its pod's log follow"),
        ("stdout", "", "Traceback (most recent call last):"),
        ("system", "ERROR", "exit_code: the container exited with code 1"),
    ]
    assert len([r for r in kubernetes.requests if r.path.endswith("/log")]) == 1


def test_it_records_an_outcome_once_however_many_passes_see_it(kubernetes):
    attempt = start(deploy("nightly-rollup", "pass", retries=1))
    kubernetes.evict_for_node_pressure(attempt.executor_ref, NAMESPACE)

    first, second = reconcile_at(), reconcile_at()

    assert (first["finished"], second["finished"]) == (1, 0)
    assert attempts(attempt.run) == [(1, "interrupted", False), (2, "queued", True)]
    assert [stream for stream, _, _ in log(attempt)] == ["system"]


def test_it_keeps_a_cancel_when_the_cancelled_pod_dies_of_its_sigterm(kubernetes):
    """Moved from classify's tests, with the rule: a cancelled attempt is never classified, so
    its pod's exit 143 and its Job's disappearance are not read as a failure or a loss."""
    attempt = start(deploy("nightly-rollup", "pass"))
    kubernetes.container_running(attempt.executor_ref, NAMESPACE)
    # The cancel's own Job delete is sent at commit (never, under this test's transaction).
    run_cancel(run=attempt.run, actor=acting("alice"), now=timezone.now())
    kubernetes.container_terminated(attempt.executor_ref, NAMESPACE, 143)  # SIGTERM

    first = reconcile_at()
    attempt.refresh_from_db()
    assert (first["deleted"], first["finished"], attempt.status) == (1, 0, "starting")
    assert kubernetes.get("jobs", NAMESPACE, attempt.executor_ref) is None

    second = reconcile_at()
    attempt, run = ended(attempt)
    assert second["finished"] == 1
    assert (attempt.status, attempt.reason, attempt.exit_code) == (
        "cancelled",
        "cancelled: its Job was deleted before its runner reported",
        None,
    )
    assert run.status == "cancelled"
    assert log(attempt) == []


def test_it_deletes_the_job_of_an_attempt_the_reaper_gave_up_on(kubernetes, settings):
    settings.CHALK_HEARTBEAT_TIMEOUT_SECONDS = 30
    attempt = start(deploy("nightly-rollup", "pass"))
    kubernetes.container_running(attempt.executor_ref, NAMESPACE)
    reaped_at = timezone.now() + dt.timedelta(seconds=31)
    reap(now=reaped_at)

    reconcile(now=reaped_at + dt.timedelta(seconds=30))
    assert kubernetes.get("jobs", NAMESPACE, attempt.executor_ref) is not None
    reconcile(now=reaped_at + dt.timedelta(seconds=61))

    assert kubernetes.get("jobs", NAMESPACE, attempt.executor_ref) is None
    assert kubernetes.objects("pods") == []


def test_it_does_nothing_on_the_local_executor(kubernetes, settings):
    settings.CHALK_EXECUTOR = "local"

    assert reconcile_kubernetes() == {}
    assert kubernetes.requests == []


@pytest.mark.postgres
def test_it_leaves_a_waiting_attempt_to_the_pass_already_making_its_job(
    kubernetes, settings, transactional_db, eager_tasks
):
    settings.CHALK_K8S_REGISTRY = REGISTRY
    attempt = trigger(deploy("fx-rates", "pass", image=WITH_REQUESTS))  # started at commit
    attempt.refresh_from_db()
    kubernetes.container_terminated(attempt.executor_ref, NAMESPACE, 0)  # the image is pushed
    holding, release = threading.Event(), threading.Event()

    def other_pass() -> None:
        with transaction.atomic():
            Attempt.objects.select_for_update().get(id=attempt.id)
            holding.set()
            release.wait(timeout=30)
        connection.close()

    other = threading.Thread(target=other_pass)
    other.start()
    holding.wait(timeout=30)
    try:
        counts = reconcile_at()
    finally:
        release.set()
        other.join()

    assert counts["jobs_created"] == 0
    assert kubernetes.get("jobs", NAMESPACE, f"chalk-fx-rates-r{attempt.run_id}-a1") is None
    assert reconcile_at()["jobs_created"] == 1

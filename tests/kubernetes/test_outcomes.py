"""One test per row of the outcome mapping: an attempt's Job is created over HTTP through
JobCluster, the fake kubelet and Job controller move it, and `classify` reads what JobCluster
observes. Time is passed in, so grace periods need no sleeping."""

import re
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

import pytest

from runs.executors.kubernetes.outcomes import Outcome, classify, waiting_words
from tests.kubernetes.support import NAMESPACE, make_spec

UNSCHEDULABLE = "0/3 nodes are available: 3 Insufficient nvidia.com/gpu."
PULL_MESSAGE = 'failed to pull "registry.example.com/x:1": 401 Unauthorized'


@dataclass(frozen=True)
class Started:
    name: str
    created_at: datetime


@pytest.fixture
def attempt(cluster) -> Started:
    created_at = datetime.now(UTC)
    return Started(cluster.create_attempt(make_spec(), token="t0k3n"), created_at)


def read(cluster, attempt: Started, *, seconds_later: float = 1):
    job, pods = cluster.observe(attempt.name)
    now = attempt.created_at + timedelta(seconds=seconds_later)
    return classify(job, pods, now=now, created_at=attempt.created_at, config=cluster.config)


def test_it_records_nothing_while_the_pod_is_pending_or_running(cluster, fake, attempt):
    assert read(cluster, attempt) is None
    fake.container_waiting(attempt.name, NAMESPACE, "ContainerCreating")
    assert read(cluster, attempt) is None
    fake.container_running(attempt.name, NAMESPACE)
    assert read(cluster, attempt, seconds_later=3600) is None


def test_it_succeeds_when_the_container_exits_zero_and_the_job_completes(cluster, fake, attempt):
    fake.container_terminated(attempt.name, NAMESPACE, 0)
    assert read(cluster, attempt) == Outcome(
        "succeeded",
        "succeeded: the container exited with code 0",
        "completed",
        exit_code=0,
        retryable=False,
        counts_against_retries=False,
    )


def test_it_fails_with_the_exit_code_when_the_container_exits_non_zero(cluster, fake, attempt):
    fake.container_terminated(attempt.name, NAMESPACE, 3, message="ValueError: bad input\n")
    outcome = read(cluster, attempt)
    assert (outcome.status, outcome.category, outcome.exit_code) == ("failed", "exit_code", 3)
    assert outcome.reason == (
        "exit_code: the container exited with code 3; last output: ValueError: bad input"
    )
    assert outcome.retryable and outcome.counts_against_retries


def test_it_names_the_signal_that_killed_the_container(cluster, fake, attempt):
    fake.container_terminated(attempt.name, NAMESPACE, 137)
    assert "(killed by SIGKILL)" in read(cluster, attempt).reason


def test_it_reports_out_of_memory_when_the_container_is_oom_killed(cluster, fake, attempt):
    fake.container_terminated(attempt.name, NAMESPACE, 137, reason="OOMKilled")
    outcome = read(cluster, attempt)
    assert (outcome.status, outcome.category, outcome.exit_code) == ("failed", "oom", 137)
    assert outcome.reason == "out of memory: the container exceeded its memory limit 1Gi"


def test_it_reports_out_of_memory_even_when_the_container_exits_zero(cluster, fake, attempt):
    # The OOM killer took the function's child process; the runner itself exited 0.
    fake.container_terminated(attempt.name, NAMESPACE, 0, reason="OOMKilled")
    assert fake.get("jobs", NAMESPACE, attempt.name)["status"]["succeeded"] == 1
    outcome = read(cluster, attempt)
    assert (outcome.status, outcome.category, outcome.exit_code) == ("failed", "oom", 0)


def test_it_times_out_when_the_job_passes_its_deadline(cluster, fake, attempt):
    fake.container_running(attempt.name, NAMESPACE)
    fake.exceed_deadline(attempt.name, NAMESPACE)
    outcome = read(cluster, attempt, seconds_later=901)
    assert (outcome.status, outcome.category) == ("timed_out", "deadline")
    assert "deadline of 900s" in outcome.reason
    assert outcome.retryable and outcome.counts_against_retries


def test_it_interrupts_an_evicted_pod_without_using_a_retry(cluster, fake, attempt):
    fake.container_running(attempt.name, NAMESPACE)
    fake.evict_for_node_pressure(attempt.name, NAMESPACE)
    outcome = read(cluster, attempt)
    assert (outcome.status, outcome.category) == ("interrupted", "evicted")
    assert outcome.reason.startswith(
        "interrupted: the pod was evicted: The node was low on resource: memory."
    )
    assert outcome.retryable and not outcome.counts_against_retries


def test_it_interrupts_a_pod_whose_node_shuts_down(cluster, fake, attempt):
    fake.container_running(attempt.name, NAMESPACE)
    fake.shut_down_node(attempt.name, NAMESPACE)
    outcome = read(cluster, attempt)
    assert outcome.status == "interrupted"
    assert outcome.reason.startswith("interrupted: its node shut down")
    assert not outcome.counts_against_retries


def test_it_interrupts_a_disrupted_pod_even_after_the_pod_is_deleted(cluster, fake, attempt):
    fake.container_running(attempt.name, NAMESPACE)
    fake.preempt(attempt.name, NAMESPACE)
    job, pods = cluster.observe(attempt.name)
    assert pods == []  # only the Job's pod failure policy condition remembers why
    outcome = read(cluster, attempt)
    assert outcome.status == "interrupted"
    assert "has condition DisruptionTarget matching FailJob rule" in outcome.reason
    assert outcome.retryable and not outcome.counts_against_retries


def test_it_fails_an_invalid_image_name_at_once(cluster, fake, attempt):
    fake.container_waiting(
        attempt.name, NAMESPACE, "InvalidImageName", 'couldn\'t parse image name "Bad:Ref"'
    )
    outcome = read(cluster, attempt, seconds_later=1)
    assert (outcome.status, outcome.category) == ("failed", "image_pull")
    assert "cannot be pulled (InvalidImageName)" in outcome.reason
    assert not outcome.retryable


@pytest.mark.parametrize("reason", ["ErrImagePull", "ImagePullBackOff"])
def test_it_waits_out_the_image_pull_grace_period(cluster, fake, attempt, reason):
    fake.container_waiting(attempt.name, NAMESPACE, reason, PULL_MESSAGE)
    grace = cluster.config.image_pull_grace_seconds
    assert read(cluster, attempt, seconds_later=grace / 2) is None


@pytest.mark.parametrize("reason", ["ErrImagePull", "ImagePullBackOff"])
def test_it_fails_image_pull_errors_past_the_grace_period(cluster, fake, attempt, reason):
    fake.container_waiting(attempt.name, NAMESPACE, reason, PULL_MESSAGE)
    outcome = read(cluster, attempt, seconds_later=cluster.config.image_pull_grace_seconds + 5)
    assert (outcome.status, outcome.category) == ("failed", "image_pull")
    assert outcome.reason.startswith("image_pull: image registry.example.com/chalkweb/chalkweb-fn:")
    assert re.search(
        # creationTimestamp has whole seconds: the pod may look up to a second younger.
        f"could not be pulled for 12[4-7]s: {re.escape(PULL_MESSAGE)}$",
        outcome.reason,
    )
    assert not outcome.retryable


def test_it_waits_out_the_config_error_grace_period(cluster, fake, attempt):
    # The pod may start before its token Secret exists: the kubelet retries until it does.
    fake.container_waiting(
        attempt.name, NAMESPACE, "CreateContainerConfigError", 'secret "x" not found'
    )
    grace = cluster.config.config_error_grace_seconds
    assert read(cluster, attempt, seconds_later=grace / 2) is None


def test_it_fails_config_errors_past_the_grace_period(cluster, fake, attempt):
    fake.container_waiting(
        attempt.name, NAMESPACE, "CreateContainerConfigError", 'secret "x" not found'
    )
    outcome = read(cluster, attempt, seconds_later=cluster.config.config_error_grace_seconds + 5)
    assert (outcome.status, outcome.category) == ("failed", "config")
    assert re.fullmatch(
        'config: the container could not be created for 6[4-6]s: secret "x" not found',
        outcome.reason,
    )
    assert not outcome.retryable


def test_it_waits_for_an_unschedulable_pod_until_the_pending_timeout(cluster, fake, attempt):
    fake.unschedulable(attempt.name, NAMESPACE, UNSCHEDULABLE)
    timeout = cluster.config.pending_timeout_seconds
    assert read(cluster, attempt, seconds_later=timeout - 1) is None


def test_it_fails_an_unschedulable_pod_past_the_pending_timeout_without_retry(
    cluster, fake, attempt
):
    fake.unschedulable(attempt.name, NAMESPACE, UNSCHEDULABLE)
    outcome = read(cluster, attempt, seconds_later=cluster.config.pending_timeout_seconds + 1)
    assert (outcome.status, outcome.category) == ("failed", "unschedulable")
    assert f"for 301s: {UNSCHEDULABLE}" in outcome.reason
    assert not outcome.retryable


def test_it_fails_a_job_that_makes_no_pod_past_the_pending_timeout(cluster, fake):
    fake.refuse_pods = True
    attempt = Started(cluster.create_attempt(make_spec(), token="t"), datetime.now(UTC))
    assert read(cluster, attempt, seconds_later=10) is None
    outcome = read(cluster, attempt, seconds_later=cluster.config.pending_timeout_seconds + 1)
    assert (outcome.status, outcome.category) == ("failed", "unschedulable")
    assert f"kubectl describe job {attempt.name}" in outcome.reason


def test_it_marks_the_attempt_lost_when_someone_else_deletes_the_job(cluster, fake, attempt):
    fake.container_running(attempt.name, NAMESPACE)
    fake.delete_by_hand(attempt.name, NAMESPACE)
    outcome = read(cluster, attempt)
    assert (outcome.status, outcome.category) == ("lost", "lost")
    assert "Chalkweb did not delete it" in outcome.reason
    assert outcome.retryable


def waiting(cluster, attempt: Started) -> str | None:
    return waiting_words(cluster.observe(attempt.name)[1])


def test_it_says_why_a_pod_is_not_running_yet(cluster, fake, attempt):
    image = make_spec().image_ref
    fake.unschedulable(attempt.name, NAMESPACE, UNSCHEDULABLE)
    assert waiting(cluster, attempt) == (
        f"no node can take the pod yet: {UNSCHEDULABLE} (the cluster may be adding one; it "
        "fails after the pending timeout)"
    )
    fake.container_waiting(attempt.name, NAMESPACE, "ContainerCreating")
    assert waiting(cluster, attempt) == f"pulling image {image} and starting the container"
    fake.container_waiting(attempt.name, NAMESPACE, "ImagePullBackOff", PULL_MESSAGE)
    assert waiting(cluster, attempt) == (
        f"image {image} cannot be pulled yet (ImagePullBackOff): {PULL_MESSAGE}; retrying"
    )
    fake.container_waiting(
        attempt.name, NAMESPACE, "CreateContainerConfigError", 'secret "x" not found'
    )
    assert waiting(cluster, attempt) == (
        "the container cannot be created yet (CreateContainerConfigError): "
        'secret "x" not found; retrying'
    )
    fake.container_running(attempt.name, NAMESPACE)
    assert waiting(cluster, attempt) is None


def test_it_has_nothing_to_say_before_the_pod_exists():
    assert waiting_words([]) is None

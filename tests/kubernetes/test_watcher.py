"""The watcher, running in a thread against the fake API server: attempt outcomes are recorded
from Job events as they happen, with no reconcile pass; lost events (compaction, an API server
restart) are recovered by a full pass. `reconcile_job`, what each event calls, is tested
directly too."""

import threading

import pytest
from django.core.management import CommandError, call_command
from django.db import connection
from django.utils import timezone

from runs.executors.kubernetes.executor import connect
from runs.executors.kubernetes.manifests import LABEL_RUN
from runs.executors.kubernetes.reconcile import reconcile_job
from runs.executors.kubernetes.watcher import watch
from runs.models import Attempt
from tests.kubernetes.support import NAMESPACE, log, start
from tests.runs.support import deploy, wait_for

OOM = "out of memory: the container exceeded its memory limit 1Gi"


@pytest.fixture
def watcher(kubernetes, transactional_db, eager_tasks):
    """The watcher in a thread, renewing its watch every second. Yields once it is watching."""
    stop = threading.Event()

    def follow() -> None:
        try:
            watch(stop, watch_seconds=1)
        finally:
            connection.close()

    thread = threading.Thread(target=follow, daemon=True)
    thread.start()
    wait_for(lambda: watches(kubernetes), timeout=10, message="the watcher never watched")
    yield kubernetes
    stop.set()
    thread.join(timeout=10)
    assert not thread.is_alive(), "the watcher did not stop"


def watches(fake) -> list[str]:
    return [r.query.get("resourceVersion", "") for r in fake.requests if r.query.get("watch")]


def status(attempt: Attempt) -> str:
    attempt.refresh_from_db()
    return attempt.status


def test_it_records_an_out_of_memory_kill_from_the_job_event_without_a_pass(watcher):
    attempt = start(deploy("nightly-rollup", "pass", memory="1Gi"))
    seen = len(watcher.requests)

    watcher.container_terminated(attempt.executor_ref, NAMESPACE, 137, reason="OOMKilled")

    wait_for(lambda: status(attempt) == "failed", timeout=10, message="OOM never recorded")
    attempt.refresh_from_db()
    assert (attempt.exit_code, attempt.reason) == (137, OOM)
    assert log(attempt)[-1] == ("system", "ERROR", OOM)
    job_lists = [
        r
        for r in watcher.requests[seen:]
        if r.method == "GET" and r.path.endswith("/jobs") and not r.query.get("watch")
    ]
    assert job_lists == [], "recorded by a full list, not by the watch"


def test_it_marks_an_attempt_lost_when_its_job_is_deleted_by_hand(watcher):
    attempt = start(deploy("nightly-rollup", "pass"))

    watcher.delete_by_hand(attempt.executor_ref, NAMESPACE)

    wait_for(lambda: status(attempt) == "lost", timeout=10, message="the deletion went unseen")
    assert attempt.reason.startswith("lost: the attempt's Job is gone and Chalkweb did not")


def watching_from(fake, version: int, message: str) -> None:
    """Waits until the watcher has handled every event up to `version` and watches on."""
    wait_for(
        lambda: any(int(v or 0) >= version for v in watches(fake)), timeout=10, message=message
    )


def test_it_recovers_events_lost_to_compaction_with_a_full_pass(watcher):
    attempt = start(deploy("nightly-rollup", "pass", memory="1Gi"))
    watching_from(watcher, watcher.resource_version, "the start's events never handled")
    watcher.stall_watches = True  # the connection dies silently: its events never arrive
    watcher.container_terminated(attempt.executor_ref, NAMESPACE, 137, reason="OOMKilled")
    watcher.compact()  # and by the time the watcher resumes, they are compacted away
    assert status(attempt) == "starting"

    watcher.stall_watches = False

    wait_for(lambda: status(attempt) == "failed", timeout=10, message="the OOM was never found")
    assert attempt.reason == OOM
    watching_from(watcher, watcher.compacted_rv, "it never watched on from the re-list")


def test_it_outlives_an_api_server_restart_and_catches_up(watcher):
    attempt = start(deploy("nightly-rollup", "pass", retries=0))
    watcher.stall_watches = True  # the open watch dies with the server
    watcher.unavailable = True  # and every call answers 503 until it is back
    calls = len(watcher.requests)
    watcher.container_terminated(attempt.executor_ref, NAMESPACE, 2)  # the kubelet goes on
    wait_for(lambda: len(watcher.requests) >= calls + 2, timeout=10, message="no retry")

    watcher.unavailable = watcher.stall_watches = False

    wait_for(lambda: status(attempt) == "failed", timeout=15, message="never caught up")
    assert attempt.reason.startswith("exit_code: the container exited with code 2")


def test_reconcile_job_ignores_a_job_no_attempt_in_flight_owns(kubernetes, db):
    attempt = start(deploy("nightly-rollup", "pass"))
    job = kubernetes.get("jobs", NAMESPACE, attempt.executor_ref)
    stranger = {**job, "metadata": {**job["metadata"], "labels": {}}}
    other_server = {**job, "metadata": {**job["metadata"], "labels": {**job["metadata"]["labels"]}}}
    other_server["metadata"]["labels"][LABEL_RUN] = str(attempt.run_id + 1000)

    with connect() as cluster:
        now = timezone.now()
        assert reconcile_job(job=stranger, deleted=True, cluster=cluster, now=now) is None
        assert reconcile_job(job=other_server, deleted=True, cluster=cluster, now=now) is None
        assert reconcile_job(job=job, deleted=False, cluster=cluster, now=now) == "heartbeats"
    assert status(attempt) == "starting"


def test_the_command_refuses_to_watch_for_the_local_executor(settings):
    settings.CHALK_EXECUTOR = "local"
    with pytest.raises(CommandError, match="set CHALK_EXECUTOR=kubernetes"):
        call_command("watch_kubernetes")


def test_the_command_refuses_a_watch_period_under_a_second(kubernetes):
    with pytest.raises(CommandError, match="at least 1"):
        call_command("watch_kubernetes", "--watch-seconds", "0")

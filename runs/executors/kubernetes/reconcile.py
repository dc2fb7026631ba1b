"""The reconcile pass: what Kubernetes did to each active attempt, recorded on its row.

Beat sends it every few seconds (`runs.tasks.reconcile_kubernetes`). A pass costs two list
calls (every attempt Job, then their pods) plus one look at each image build in progress,
whatever the number of attempts. In between, the watcher (`watcher.py`) records a Job's change
as it happens through `reconcile_job`, with the same rules. Both are idempotent, and any number
of them at once is safe: attempts end through `services.attempt_finish`, which ends an attempt
once, and a Job made by a pass is made under a lock on its attempt's row.
"""

import datetime as dt
import logging
from typing import Any

from django.conf import settings
from django.db import transaction

from runs import logs, services
from runs.executors.kubernetes.builds import EXECUTOR, build_failure, builds_reconcile
from runs.executors.kubernetes.cluster import JobCluster, Listing, own_pods
from runs.executors.kubernetes.dockerfile import ImagePlan, plan_image
from runs.executors.kubernetes.executor import (
    CLUSTER_ERRORS,
    attempt_job_name,
    cluster_error_words,
    connect,
    job_create,
)
from runs.executors.kubernetes.manifests import (
    LABEL_ATTEMPT,
    LABEL_ATTEMPT_ID,
    LABEL_RUN,
    UnsupportedSpecError,
)
from runs.executors.kubernetes.outcomes import (
    INTERRUPTED,
    LOST,
    SUCCEEDED,
    Outcome,
    classify,
    waiting_words,
)
from runs.models import (
    ACTIVE_ATTEMPT_STATUSES,
    Attempt,
    AttemptStatus,
    ImageBuild,
    ImageBuildStatus,
    LogLine,
)

logger = logging.getLogger(__name__)

IN_FLIGHT = (AttemptStatus.STARTING, AttemptStatus.RUNNING)
# A Job still running this long after its attempt ended (the reaper gave up on it, or its
# runner reported and the pod hangs on) is deleted: nobody listens to it any more.
ORPHAN_GRACE = dt.timedelta(seconds=60)


def reconcile_needed() -> bool:
    """On the local executor too while Kubernetes attempts are in flight: the executor was
    switched with runs on the cluster, and they still deserve an outcome."""
    return (
        settings.CHALK_EXECUTOR == EXECUTOR
        or Attempt.objects.filter(executor=EXECUTOR, status__in=IN_FLIGHT).exists()
    )


def reconcile(*, now: dt.datetime, cluster: JobCluster | None = None) -> dict[str, int]:
    """1. Reads the active attempts, before listing: a Job recorded on an attempt by then was
       created before the list, so a Job missing from the list is really gone.
    2. Records the end of image builds in progress.
    3. Lists every attempt Job and every attempt pod (two calls).
    4. Per attempt: one waiting for its image gets its Job once the image is ready, or fails
       with the build; one with a Job gets `classify`'s outcome, or a heartbeat while its pod
       waits to start; a cancelled one has its Job deleted and ends once its pod is gone.
    5. Deletes Jobs still running for attempts that ended a while ago.
    """
    attempts = list(
        Attempt.objects.filter(executor=EXECUTOR, status__in=IN_FLIGHT).select_related(
            "run__function", "run__version__image"
        )
    )
    if cluster is None:
        with connect() as cluster:
            return _reconcile(attempts, cluster, now)
    return _reconcile(attempts, cluster, now)


def _reconcile(attempts: list[Attempt], cluster: JobCluster, now: dt.datetime) -> dict[str, int]:
    counts = dict.fromkeys(
        ("finished", "jobs_created", "heartbeats", "deleted", "unchanged", "builds_ended"), 0
    )
    counts["builds_ended"] = builds_reconcile(cluster=cluster, now=now)
    builds = {
        build.image_id: build
        for build in ImageBuild.objects.filter(
            executor=EXECUTOR, image__in={a.run.version.image_id for a in attempts}
        )
    }
    listing = cluster.list_attempts()
    jobs = {job["metadata"]["name"]: job for job in listing.jobs}
    plans: dict[int, ImagePlan | None] = {}
    for attempt in attempts:
        try:
            name = attempt_job_name(attempt)
            plan = None if attempt.executor_ref == name else _plan(attempt, plans, cluster)
            if attempt.executor_ref == name:
                pods = listing.pods_by_job.get(name, [])
                done = _follow_job(attempt, name, jobs.get(name), pods, cluster, now)
            elif plan is not None and attempt.executor_ref == plan.build_name:
                build = builds.get(attempt.run.version.image_id)
                done = _follow_build(attempt, plan, build, name in jobs, cluster, now)
            else:
                # `run` is making its Job at this moment, or died making it: no heartbeat,
                # so if it died the reaper finds the attempt lost and retries it.
                done = "unchanged"
            counts[done] += 1
        except CLUSTER_ERRORS as exc:
            logger.warning("reconcile: attempt %s: %s", attempt.id, cluster_error_words(exc))
    counts["deleted"] += _stop_orphans(listing, cluster, now)
    return counts


def reconcile_job(
    *, job: dict[str, Any], deleted: bool, cluster: JobCluster, now: dt.datetime
) -> str | None:
    """One attempt Job changed (a watch event): records what that means for its attempt, by
    the pass's rules. Returns what was done, or None when no attempt in flight owns the Job."""
    name = job["metadata"]["name"]
    labels = job["metadata"].get("labels") or {}
    if not labels.get(LABEL_ATTEMPT_ID, "").isdigit():
        return None
    attempt = (
        Attempt.objects.filter(
            id=int(labels[LABEL_ATTEMPT_ID]),
            executor=EXECUTOR,
            status__in=IN_FLIGHT,
            executor_ref=name,  # its Job was recorded: not one `run` is still making
        )
        .select_related("run__function")
        .first()
    )
    if attempt is None or labels.get(LABEL_RUN) != str(attempt.run_id):
        return None
    return _follow_job(
        attempt, name, None if deleted else job, cluster.job_pods(name), cluster, now
    )


def _plan(
    attempt: Attempt, plans: dict[int, ImagePlan | None], cluster: JobCluster
) -> ImagePlan | None:
    image = attempt.run.version.image
    if image.id not in plans:
        try:
            plans[image.id] = plan_image(image.spec, cluster.config)
        except UnsupportedSpecError:
            plans[image.id] = None  # the settings changed under it; the reaper retries it
    return plans[image.id]


def _follow_build(
    attempt: Attempt,
    plan: ImagePlan,
    build: ImageBuild | None,
    job_exists: bool,
    cluster: JobCluster,
    now: dt.datetime,
) -> str:
    """An attempt waiting for its image."""
    if attempt.run.cancel_requested_at is not None:
        return _finish_cancelled(attempt, "cancelled while its image was being built", now)
    if build is None or build.artifact != plan.image_ref:
        return "unchanged"  # not ours to wait for; without heartbeats the reaper retries it
    if build.status == ImageBuildStatus.FAILED:
        services.attempt_fail(
            attempt=attempt, reason=build_failure(build), now=now, retryable=False
        )
        return "finished"
    if build.status == ImageBuildStatus.BUILDING or job_exists:
        if job_exists:
            # A create whose answer was lost: that Job holds a token this server no longer
            # knows. Delete it; a later pass makes it again with a new one.
            cluster.delete(attempt_job_name(attempt))
        services.attempt_heartbeat(attempt=attempt, now=now)
        return "heartbeats"
    with transaction.atomic():
        # Locked while the Job is made, so a concurrent pass cannot make it with another token.
        waiting = (
            Attempt.objects.select_for_update(skip_locked=True)
            .filter(id=attempt.id, status=AttemptStatus.STARTING, executor_ref=plan.build_name)
            .first()
        )
        if waiting is None:
            return "unchanged"
        # The token minted at claim time was handed to `run` and never stored; the runner
        # gets a new one, made as services.attempt_claim makes them.
        token = services.attempt_token_renew(attempt=attempt)
        try:
            job_create(attempt, plan, token=token, cluster=cluster, now=now)
        except UnsupportedSpecError as exc:  # the GPU map changed while the image built
            services.attempt_fail(attempt=attempt, reason=str(exc), now=now, retryable=False)
            return "finished"
    return "jobs_created"


def _follow_job(
    attempt: Attempt,
    name: str,
    job: dict[str, Any] | None,
    pods: list[dict[str, Any]],
    cluster: JobCluster,
    now: dt.datetime,
) -> str:
    """An attempt whose Job was created."""
    pods = own_pods(job, pods)
    if attempt.run.cancel_requested_at is not None:
        if job is not None:
            cluster.delete(name)  # the cancel's own delete failed, or had no API token
            return "deleted"
        if pods:
            return "unchanged"  # the pod is stopping; its runner may still report
        return _finish_cancelled(
            attempt, "cancelled: its Job was deleted before its runner reported", now
        )
    # Cancels were handled above: a cancelled pod's dying moments (SIGTERM, exit 143) never
    # reach `classify`, nor does the disappearance of a Job deleted for a cancel.
    created_at = attempt.dispatched_at or attempt.created_at
    outcome = classify(
        job,
        pods,
        now=now,
        created_at=created_at,
        starts_at=attempt.not_before,
        config=cluster.config,
    )
    if outcome is None:
        if attempt.status != AttemptStatus.STARTING:
            return "unchanged"  # a running attempt's runner beats for itself
        services.attempt_heartbeat(attempt=attempt, now=now)
        _say_why_waiting(attempt, pods, now)
        return "heartbeats"
    if outcome.status == LOST and services.cancel_requested(attempt):
        return "unchanged"  # cancelled after this pass read the attempt: the next pass ends it
    return "finished" if _record(attempt, outcome, name, cluster, now) else "unchanged"


def _finish_cancelled(attempt: Attempt, reason: str, now: dt.datetime) -> str:
    """Ends an attempt whose run's cancel was asked for, once nothing of it runs any more."""
    finished = services.attempt_finish(
        attempt=attempt, status=AttemptStatus.CANCELLED, now=now, reason=reason
    )
    return "finished" if finished else "unchanged"


def _say_why_waiting(attempt: Attempt, pods: list[dict[str, Any]], now: dt.datetime) -> None:
    """A pod that waits for a node or an image says so in the run's log, once per change, so
    a run that stays `starting` explains itself."""
    words = waiting_words(pods)
    if words is None:
        return
    with transaction.atomic():
        # The attempt's row lock (log_append takes it too) makes the watcher and a pass that
        # see the same change write one line, not two.
        Attempt.objects.select_for_update().values_list("id", flat=True).get(id=attempt.id)
        last = (
            LogLine.objects.filter(attempt=attempt, stream="system")
            .order_by("-seq")
            .values_list("text", flat=True)
            .first()
        )
        if words != last:
            logs.log_system(attempt=attempt, text=words, now=now)


def _record(
    attempt: Attempt, outcome: Outcome, name: str, cluster: JobCluster, now: dt.datetime
) -> bool:
    """Ends the attempt with the outcome, unless its runner reported first; then keeps its
    pod's log if the runner shipped none, and says what happened in a system line."""
    ended = services.attempt_finish(
        attempt=attempt,
        status=outcome.status,
        now=now,
        reason=outcome.reason,
        exit_code=outcome.exit_code,
        counts_against_retries=outcome.counts_against_retries,
        retryable=outcome.retryable,
    )
    if not ended:
        return False
    if Attempt.objects.filter(id=attempt.id, log_lines=0).exists():
        try:
            _keep_pod_log(attempt, cluster.read_log(name), now)
        except CLUSTER_ERRORS as exc:
            logs.log_system(
                attempt=attempt,
                text=f"the pod's log could not be read: {cluster_error_words(exc)}",
                now=now,
                level="WARNING",
            )
    if outcome.status != SUCCEEDED:
        level = "WARNING" if outcome.status == INTERRUPTED else "ERROR"
        logs.log_system(attempt=attempt, text=outcome.reason, now=now, level=level)
    return True


def _keep_pod_log(attempt: Attempt, text: str, now: dt.datetime) -> None:
    """Read once, when the attempt ends: the Job's TTL deletes the pod and its log later."""
    lines = text.splitlines()
    if not lines:
        return
    logs.log_system(
        attempt=attempt,
        text=f"the runner sent no log; the last {len(lines)} lines of its pod's log follow",
        now=now,
    )
    logs.log_append(
        attempt=attempt,
        first_seq=None,
        lines=[{"ts": now.timestamp(), "stream": "stdout", "text": line} for line in lines],
        now=now,
    )


def _finished(job: dict[str, Any]) -> bool:
    return any(
        condition.get("type") in ("Complete", "Failed") and condition.get("status") == "True"
        for condition in (job.get("status") or {}).get("conditions") or []
    )


def _stop_orphans(listing: Listing, cluster: JobCluster, now: dt.datetime) -> int:
    running: dict[int, dict[str, Any]] = {}
    for job in listing.jobs:
        labels = job["metadata"].get("labels") or {}
        if not _finished(job) and labels.get(LABEL_ATTEMPT_ID, "").isdigit():
            running[int(labels[LABEL_ATTEMPT_ID])] = job
    if not running:
        return 0
    ended = (
        Attempt.objects.filter(id__in=running, finished_at__lt=now - ORPHAN_GRACE)
        .exclude(status__in=ACTIVE_ATTEMPT_STATUSES)
        .values_list("id", "run_id", "number")
    )
    deleted = 0
    for attempt_id, run_id, number in ended:
        metadata = running[attempt_id]["metadata"]
        # Only our own: another server sharing the namespace may use the same attempt ids.
        if metadata["labels"].get(LABEL_RUN) == str(run_id) and metadata["labels"].get(
            LABEL_ATTEMPT
        ) == str(number):
            try:
                cluster.delete(metadata["name"])
                deleted += 1
            except CLUSTER_ERRORS as exc:
                logger.warning("reconcile: Job %s: %s", metadata["name"], cluster_error_words(exc))
    return deleted

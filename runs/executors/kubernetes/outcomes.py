"""What happened to an attempt, read from its Job and pods when the runner could not say.

The runner reports ordinary results itself. These rules cover what kills it or stops it from
starting: the kernel's OOM killer, a bad image, a missing Secret, no node to run on, an
eviction, the Job's deadline, a Job deleted under us. Pure: the caller fetches the objects
(`cluster.JobCluster.observe`) in the API's JSON shape and records the Outcome.
"""

import math
import signal
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from runs.executors.kubernetes.config import KubernetesConfig

SUCCEEDED = "succeeded"
FAILED = "failed"
TIMED_OUT = "timed_out"
INTERRUPTED = "interrupted"
LOST = "lost"

# Waiting reasons the kubelet gives while it cannot pull an image. It retries these, and a
# registry hiccup clears, so they fail the attempt only after a grace period.
IMAGE_PULL_RETRYING = {"ErrImagePull", "ImagePullBackOff", "RegistryUnavailable"}
# These never clear: the reference itself is wrong, or the kubelet may not pull it.
IMAGE_PULL_FINAL = {"InvalidImageName", "ErrImageNeverPull", "SignatureValidationFailed"}
CONFIG_ERRORS = {"CreateContainerConfigError", "CreateContainerError"}
# A pod the kubelet refused at admission never ran: the node was wrong, not the code.
ADMISSION_REJECTIONS = {
    "NodeShutdown",
    "OutOfcpu",
    "OutOfmemory",
    "OutOfpods",
    "OutOfephemeral-storage",
    "NodeAffinity",
    "UnexpectedAdmissionError",
    "TopologyAffinityError",
}
# Reasons on the DisruptionTarget condition (Kubernetes 1.26+), in words.
DISRUPTIONS = {
    "PreemptionByScheduler": "preempted by the scheduler for a higher-priority pod",
    "DeletionByTaintManager": "its node became unreachable or was tainted NoExecute",
    "EvictionByEvictionAPI": "evicted through the Eviction API (a node drain or scale-down)",
    "DeletionByPodGC": "its node was deleted",
    "TerminationByKubelet": "stopped by the kubelet (node pressure or node shutdown)",
}
_MAX_MESSAGE = 1000


@dataclass(frozen=True)
class Outcome:
    status: str  # succeeded | failed | timed_out | interrupted | lost
    reason: str  # for people: what happened and, where we know, what to change
    category: str  # oom, image_pull, config, unschedulable, exit_code, deadline, evicted, ...
    exit_code: int | None = None
    retryable: bool = True  # may the platform start another attempt?
    counts_against_retries: bool = True  # does that attempt use one of the user's retries?


def _failed(
    category: str, reason: str, *, exit_code: int | None = None, retry: bool = True
) -> Outcome:
    return Outcome(FAILED, reason, category, exit_code=exit_code, retryable=retry)


def _short(text: str | None) -> str:
    text = (text or "").strip()
    return text if len(text) <= _MAX_MESSAGE else "…" + text[-_MAX_MESSAGE:]


def _time(value: Any) -> datetime | None:
    if isinstance(value, datetime):
        return value
    if isinstance(value, str) and value:
        return datetime.fromisoformat(value)  # "…Z" and "…+00:00" alike
    return None


def _true_condition(obj: dict[str, Any] | None, kind: str) -> dict[str, Any] | None:
    for condition in ((obj or {}).get("status") or {}).get("conditions") or []:
        if condition.get("type") == kind and condition.get("status") == "True":
            return condition
    return None


def _container_statuses(pod: dict[str, Any]) -> list[dict[str, Any]]:
    status = pod.get("status") or {}
    return (status.get("initContainerStatuses") or []) + (status.get("containerStatuses") or [])


def _terminations(pod: dict[str, Any]) -> list[dict[str, Any]]:
    found = []
    for container in _container_statuses(pod):
        for state in (container.get("state"), container.get("lastState")):
            terminated = (state or {}).get("terminated")
            if terminated:
                found.append(terminated)
    return found


def _waiting(pod: dict[str, Any]) -> list[tuple[dict[str, Any], dict[str, Any]]]:
    found = []
    for container in _container_statuses(pod):
        waiting = (container.get("state") or {}).get("waiting")
        if waiting:
            found.append((container, waiting))
    return found


def _memory_limit(pod: dict[str, Any]) -> str | None:
    for container in (pod.get("spec") or {}).get("containers") or []:
        limit = ((container.get("resources") or {}).get("limits") or {}).get("memory")
        if limit:
            return limit
    return None


def _exit_words(code: int) -> str:
    words = f"the container exited with code {code}"
    if code > 128:
        try:
            words += f" (killed by {signal.Signals(code - 128).name})"
        except ValueError:
            pass
    return words


def _oom(pods: list[dict[str, Any]]) -> Outcome | None:
    # The runner runs the function in a child process. When the OOM killer takes the child,
    # the runner may still exit 0; the container's OOMKilled reason is the only trace.
    for pod in pods:
        for terminated in _terminations(pod):
            if terminated.get("reason") == "OOMKilled":
                limit = _memory_limit(pod)
                why = (
                    f"the container exceeded its memory limit {limit}"
                    if limit
                    else "the node ran out of memory and no memory limit was set (set memory=)"
                )
                return _failed("oom", f"out of memory: {why}", exit_code=terminated.get("exitCode"))
    return None


def _disruption(job: dict[str, Any], pods: list[dict[str, Any]]) -> Outcome | None:
    words = None
    for pod in pods:
        status = pod.get("status") or {}
        target = _true_condition(pod, "DisruptionTarget")
        reason, message = status.get("reason"), _short(status.get("message"))
        if reason == "Evicted":
            words = f"the pod was evicted: {message}" if message else "the pod was evicted"
        elif reason in ("Terminated", "Shutdown") and "shutdown" in message.lower():
            words = "its node shut down"
        elif reason in ADMISSION_REJECTIONS and status.get("phase") == "Failed":
            words = f"the node refused the pod ({reason}): {message}"
        elif target:
            words = DISRUPTIONS.get(target.get("reason"), f"disrupted ({target.get('reason')})")
        if words:
            break
    failed = _true_condition(job, "Failed")
    if words is None and failed and "DisruptionTarget" in (failed.get("message") or ""):
        # The pod is gone (evicted and preempted pods are deleted); the Job's pod failure
        # policy recorded why it failed.
        words = f"its pod was disrupted: {_short(failed.get('message'))}"
    if words is None:
        return None
    return Outcome(
        INTERRUPTED,
        f"interrupted: {words}; the platform retries without using one of the function's retries",
        "evicted",
        retryable=True,
        counts_against_retries=False,
    )


def _exit_code(pods: list[dict[str, Any]]) -> Outcome | None:
    for pod in pods:
        for terminated in _terminations(pod):
            code = terminated.get("exitCode")
            if code:
                reason = f"exit_code: {_exit_words(code)}"
                if terminated.get("message"):
                    reason += f"; last output: {_short(terminated['message'])}"
                return _failed("exit_code", reason, exit_code=code)
    return None


def _not_started(
    pods: list[dict[str, Any]],
    now: datetime,
    created_at: datetime,
    starts_at: datetime,
    config: KubernetesConfig,
) -> Outcome | None:
    # Grace periods never end before the attempt's start time: a Job made ahead of its slot
    # gets its wait on top of them, never less than a Job made at the slot would get.
    for pod in pods:
        scheduled = _true_condition(pod, "PodScheduled")
        # The kubelet only pulls and creates containers once the pod has a node: grace periods
        # start there, so a slow autoscaler does not eat the image pull's grace.
        scheduled_at = _time((scheduled or {}).get("lastTransitionTime")) or created_at
        started_at = max(created_at, scheduled_at)
        waited = (now - started_at).total_seconds()  # for the words: how long it really was
        over = (now - max(started_at, starts_at)).total_seconds()
        for container, waiting in _waiting(pod):
            reason, message = waiting.get("reason"), _short(waiting.get("message"))
            image = container.get("image") or "(unknown)"
            if reason in IMAGE_PULL_FINAL:
                return _failed(
                    "image_pull",
                    f"image_pull: image {image} cannot be pulled ({reason}): {message}",
                    retry=False,
                )
            if reason in IMAGE_PULL_RETRYING and over > config.image_pull_grace_seconds:
                return _failed(
                    "image_pull",
                    f"image_pull: image {image} could not be pulled for {int(waited)}s: {message}",
                    retry=False,
                )
            if reason in CONFIG_ERRORS and over > config.config_error_grace_seconds:
                return _failed(
                    "config",
                    f"config: the container could not be created for {int(waited)}s: {message}",
                    retry=False,
                )
    pending_for = (now - created_at).total_seconds()
    pending_over = (now - max(created_at, starts_at)).total_seconds()
    for pod in pods:
        for condition in (pod.get("status") or {}).get("conditions") or []:
            unschedulable = (
                condition.get("type") == "PodScheduled"
                and condition.get("status") == "False"
                and condition.get("reason") == "Unschedulable"
            )
            if unschedulable and pending_over > config.pending_timeout_seconds:
                return _failed(
                    "unschedulable",
                    f"unschedulable: no node could take the pod for {int(pending_for)}s: "
                    f"{_short(condition.get('message'))}; lower cpu/memory/gpu or add capacity",
                    retry=False,
                )
    return None


def classify(
    job: dict[str, Any] | None,
    pods: list[dict[str, Any]],
    *,
    now: datetime,
    created_at: datetime,
    config: KubernetesConfig,
    starts_at: datetime | None = None,
) -> Outcome | None:
    """The attempt's outcome as Kubernetes sees it, or None while it is pending or running.

    `created_at` is when the executor created the Job, `starts_at` when its runner calls the
    function (a Job made ahead of its slot waits for it; None: at once) and `now` the time of
    this reading, all on the server's clock. A cancelled attempt is not classified: its caller
    records the cancel, which the pod's dying moments (SIGTERM, exit 143) and the Job's
    disappearance must not overwrite. Rules, first match wins:

    1. No Job: lost (Chalkweb did not delete it).
    2. A container OOMKilled, even if it exited 0: failed, out of memory.
    3. The Job failed with DeadlineExceeded: timed out.
    4. Evicted, preempted, node shut down or gone, refused at admission: interrupted, retried
       without using the function's retries.
    5. A container exited non-zero: failed with the code.
    6. The Job is Complete: succeeded.
    7. The Job failed and none of the above explains it: lost.
    8. Not started: a bad image reference fails at once; image pull errors past the pull grace,
       container config errors past the config grace, unschedulable past the pending timeout,
       or no pod at all past the pending timeout, fail without a retry. For a Job made ahead,
       these periods end no sooner than they would for a Job made at `starts_at`.
    """
    starts_at = max(created_at, starts_at or created_at)
    if job is None:
        return Outcome(
            LOST,
            "lost: the attempt's Job is gone and Chalkweb did not delete it (deleted by hand, "
            "or removed by its TTL before its outcome was read)",
            "lost",
        )
    pods = sorted(pods, key=lambda p: p["metadata"].get("creationTimestamp") or "", reverse=True)
    if outcome := _oom(pods):
        return outcome
    failed = _true_condition(job, "Failed")
    if failed and failed.get("reason") == "DeadlineExceeded":
        deadline = (job.get("spec") or {}).get("activeDeadlineSeconds")
        waited = math.ceil((starts_at - created_at).total_seconds())
        wait = f"{waited}s waiting for its start time, then " if waited > 0 else ""
        return Outcome(
            TIMED_OUT,
            f"timed out: the Job passed its deadline of {deadline}s ({wait}the timeout plus "
            f"{config.deadline_margin_seconds}s for scheduling and the image pull) and "
            "Kubernetes stopped it",
            "deadline",
        )
    if outcome := _disruption(job, pods):
        return outcome
    if outcome := _exit_code(pods):
        return outcome
    if _true_condition(job, "Complete"):
        return Outcome(
            SUCCEEDED,
            "succeeded: the container exited with code 0",
            "completed",
            exit_code=0,
            retryable=False,
            counts_against_retries=False,
        )
    if failed:
        return Outcome(
            LOST,
            f"lost: the Job failed ({failed.get('reason')}: {_short(failed.get('message'))}) "
            "and its pod is gone, so nothing says why",
            "lost",
        )
    if outcome := _not_started(pods, now, created_at, starts_at, config):
        return outcome
    if not pods and (now - starts_at).total_seconds() > config.pending_timeout_seconds:
        name = job["metadata"]["name"]
        return _failed(
            "unschedulable",
            f"unschedulable: the Job made no pod in {config.pending_timeout_seconds}s; a "
            f"ResourceQuota or an admission webhook may refuse it (kubectl describe job {name})",
            retry=False,
        )
    return None


def waiting_words(pods: list[dict[str, Any]]) -> str | None:
    """Why an attempt's pod is not running yet, in words for the run's log, or None when there
    is nothing to say (no pod yet, or its container is running). The same reading every pass
    gives the same words, so the caller logs a line only when they change."""
    if not pods:
        return None
    pod = max(pods, key=lambda p: p["metadata"].get("creationTimestamp") or "")
    scheduled = next(
        (
            c
            for c in (pod.get("status") or {}).get("conditions") or []
            if c.get("type") == "PodScheduled"
        ),
        None,
    )
    if scheduled and scheduled.get("status") == "False":
        words = "no node can take the pod yet"
        if scheduled.get("message"):
            words += f": {_short(scheduled['message'])}"
        return f"{words} (the cluster may be adding one; it fails after the pending timeout)"
    for container, waiting in _waiting(pod):
        reason, message = waiting.get("reason") or "", _short(waiting.get("message"))
        image = container.get("image") or "(unknown)"
        if reason in IMAGE_PULL_RETRYING:
            return f"image {image} cannot be pulled yet ({reason}): {message}; retrying"
        if reason in CONFIG_ERRORS:
            return f"the container cannot be created yet ({reason}): {message}; retrying"
        if reason in ("ContainerCreating", "PodInitializing"):
            return f"pulling image {image} and starting the container"
    return None

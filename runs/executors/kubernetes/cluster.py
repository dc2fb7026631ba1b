"""The executor's only door to the cluster: a thin layer over the official `kubernetes` client.

Objects go out as the dicts `manifests` and `dockerfile` build and come back as dicts in the
API's JSON shape (camelCase), which is what `outcomes.classify` reads.
"""

import math
import time
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

from kubernetes import client, watch
from kubernetes.client.exceptions import ApiException

from runs.executors.kubernetes import dockerfile, manifests
from runs.executors.kubernetes.config import KubernetesConfig
from runs.executors.kubernetes.manifests import (
    LABEL_ATTEMPT,
    LABEL_ATTEMPT_ID,
    LABEL_JOB_NAME,
    LABEL_RUN,
    RUN_SELECTOR,
    AttemptJobSpec,
)

# Foreground would keep the Job visible, marked for deletion, until its pods are gone; a
# cancel would then wait on the pod's grace period. Background removes the Job at once and
# lets the garbage collector stop the pod (SIGTERM, so the runner can flush its logs) and
# delete the Secret. Jobs deleted with no policy orphan their pods: it must always be set.
DELETE_PROPAGATION = "Background"
# Every create rejects unknown or duplicate fields instead of silently dropping them: a
# misspelt field in a manifest must fail loudly, not run a pod without its limits.
FIELD_VALIDATION = "Strict"


class KubernetesExecutorError(RuntimeError):
    pass


class JobNameTakenError(KubernetesExecutorError):
    pass


@dataclass(frozen=True)
class Listing:
    """Every attempt Job and its pods at one resourceVersion: the periodic full list, and what
    a watch hands back when it had to re-list."""

    jobs: list[dict[str, Any]]
    pods_by_job: dict[str, list[dict[str, Any]]]
    resource_version: str


def _is(exc: ApiException, *statuses: int) -> bool:
    return exc.status in statuses


def own_pods(job: dict[str, Any] | None, pods: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """The pods this Job made. Pods are found by the `job-name` label, which a Job deleted and
    made again under the same name shares with its predecessor's pods while they are being
    deleted; their old exit codes must not be read as the new Job's. With no Job, every pod
    left is its (pods can outlive their Job)."""
    if job is None:
        return pods
    uid = job["metadata"].get("uid")
    return [
        pod
        for pod in pods
        if any(ref.get("uid") == uid for ref in pod["metadata"].get("ownerReferences") or [])
    ]


class JobCluster:
    def __init__(self, api_client: client.ApiClient, config: KubernetesConfig) -> None:
        self.config = config
        self._api_client = api_client
        self._batch = client.BatchV1Api(api_client)
        self._core = client.CoreV1Api(api_client)
        # The official client waits forever by default: a hung API server would hang a worker.
        self._timeout = config.api_timeout_seconds

    def _json(self, obj: Any) -> dict[str, Any]:
        return self._api_client.sanitize_for_serialization(obj)

    def _create_job(self, job: dict[str, Any], adopt_if) -> dict[str, Any]:
        namespace, name = self.config.namespace, job["metadata"]["name"]
        try:
            created = self._batch.create_namespaced_job(
                namespace, job, field_validation=FIELD_VALIDATION, _request_timeout=self._timeout
            )
            return self._json(created)
        except ApiException as exc:
            if not _is(exc, 409):
                raise
        # A create that answered 409 may be our own earlier create whose answer was lost (a
        # timeout, a worker restart): adopt the Job when it is ours, refuse when it is not.
        existing = self._json(
            self._batch.read_namespaced_job(name, namespace, _request_timeout=self._timeout)
        )
        labels = existing["metadata"].get("labels") or {}
        if not adopt_if(labels):
            raise JobNameTakenError(
                f"Job {name} already exists in namespace {namespace} but its labels "
                f"({', '.join(f'{k}={v}' for k, v in sorted(labels.items())) or 'none'}) "
                "name a different attempt; delete it (kubectl -n "
                f"{namespace} delete job {name}) or check that no two Chalkweb servers share "
                "this namespace"
            )
        return existing

    def _create_owned(self, create, obj: dict[str, Any], job: dict[str, Any]) -> None:
        try:
            create(
                self.config.namespace,
                obj,
                field_validation=FIELD_VALIDATION,
                _request_timeout=self._timeout,
            )
        except ApiException as exc:
            if _is(exc, 409):
                return  # made by an earlier try of this same create
            # Without it the pod can never start: take the Job back rather than leave it
            # waiting out the config grace period.
            self.delete(job["metadata"]["name"])
            raise

    def create_attempt(self, spec: AttemptJobSpec, *, token: str) -> str:
        """Creates the attempt's Job, then the Secret holding its token (owned by the Job, so
        it needs the Job's uid). Safe to call again for the same attempt, with the same token:
        a Job already there for this attempt is adopted. Returns the Job's name."""
        job = manifests.attempt_job(spec, self.config)

        def same_attempt(labels: dict[str, str]) -> bool:
            return (
                labels.get(LABEL_RUN) == str(spec.run_id)
                and labels.get(LABEL_ATTEMPT) == str(spec.attempt_number)
                and labels.get(LABEL_ATTEMPT_ID) == str(spec.attempt_id)
            )

        created = self._create_job(job, same_attempt)
        secret = manifests.attempt_secret(
            spec, self.config, token=token, job_uid=created["metadata"]["uid"]
        )
        self._create_owned(self._core.create_namespaced_secret, secret, created)
        return created["metadata"]["name"]

    def create_build(self, plan: dockerfile.ImagePlan) -> str:
        """Creates the BuildKit Job for a planned image, then the ConfigMap with its Dockerfile.
        A build of the same hash already running is adopted. Returns the Job's name."""
        if plan.dockerfile is None or plan.image_hash is None:
            raise ValueError("this image plan needs no build: it installs at start")
        job = dockerfile.build_job(plan.image_hash, plan.image_ref, self.config)
        image_label = job["metadata"]["labels"][manifests.LABEL_IMAGE]
        created = self._create_job(
            job, lambda labels: labels.get(manifests.LABEL_IMAGE) == image_label
        )
        configmap = dockerfile.build_configmap(
            plan.image_hash, plan.dockerfile, self.config, job_uid=created["metadata"]["uid"]
        )
        self._create_owned(self._core.create_namespaced_config_map, configmap, created)
        return created["metadata"]["name"]

    def _pods(self, selector: str) -> list[dict[str, Any]]:
        listed = self._core.list_namespaced_pod(
            self.config.namespace, label_selector=selector, _request_timeout=self._timeout
        )
        return [self._json(pod) for pod in listed.items]

    def observe(self, job_name: str) -> tuple[dict[str, Any] | None, list[dict[str, Any]]]:
        """The Job (None when it is gone) and its pods, for `outcomes.classify`."""
        try:
            job = self._json(
                self._batch.read_namespaced_job(
                    job_name, self.config.namespace, _request_timeout=self._timeout
                )
            )
        except ApiException as exc:
            if not _is(exc, 404):
                raise
            job = None
        return job, self.job_pods(job_name)

    def job_pods(self, job_name: str) -> list[dict[str, Any]]:
        # Found by label, not through the Job: pods can outlive it.
        return self._pods(f"{LABEL_JOB_NAME}={job_name}")

    def delete(self, job_name: str) -> None:
        """Deletes the Job with its pods and Secret. A Job already gone is not an error."""
        try:
            self._batch.delete_namespaced_job(
                job_name,
                self.config.namespace,
                propagation_policy=DELETE_PROPAGATION,
                _request_timeout=self._timeout,
            )
        except ApiException as exc:
            if not _is(exc, 404):
                raise

    def read_log(self, job_name: str, container: str | None = None) -> str:
        """The tail of the Job's pod log, for a runner that died before shipping it (or of
        `container`, for a pod of more than one). "" when there is nothing to read: no pod,
        or a container that never started."""
        pods = self.job_pods(job_name)
        if not pods:
            return ""
        newest = max(pods, key=lambda p: p["metadata"].get("creationTimestamp") or "")
        try:
            response = self._core.read_namespaced_pod_log(
                newest["metadata"]["name"],
                self.config.namespace,
                **({"container": container} if container else {}),
                tail_lines=self.config.log_tail_lines,
                limit_bytes=self.config.log_limit_bytes,
                _preload_content=False,  # raw bytes: the log is text, not JSON to decode
                _request_timeout=self._timeout,
            )
        except ApiException as exc:
            if _is(exc, 400, 404):  # 400: the container is waiting; 404: the pod just went
                return ""
            raise
        try:
            return response.data.decode("utf-8", errors="replace")
        finally:
            response.release_conn()

    def list_attempts(self) -> Listing:
        """Every attempt Job with its pods: the periodic full list that backs up the watch
        (pods change without their Job changing, e.g. into ImagePullBackOff)."""
        jobs = self._batch.list_namespaced_job(
            self.config.namespace, label_selector=RUN_SELECTOR, _request_timeout=self._timeout
        )
        pods: dict[str, list[dict[str, Any]]] = {}
        for pod in self._pods(RUN_SELECTOR):
            pods.setdefault(pod["metadata"]["labels"].get(LABEL_JOB_NAME, ""), []).append(pod)
        return Listing(
            jobs=[self._json(job) for job in jobs.items],
            pods_by_job=pods,
            resource_version=jobs.metadata.resource_version,
        )

    def watch_attempts(self, resource_version: str, timeout_seconds: int) -> Iterator[dict]:
        """Attempt Job events after `resource_version`, for at most `timeout_seconds`.

        Yields {"type", "object", "resourceVersion"} for ADDED, MODIFIED, DELETED and BOOKMARK
        events; store the last resourceVersion to resume from. When the version is too old
        (410 Gone, as an HTTP status or as an ERROR event) it re-lists, yields
        {"type": "RELISTED", "listing": Listing, "resourceVersion"}, and watches on from the
        list's version: reconcile every attempt against the listing, as after a full list.
        It re-lists at most once per call and raises a second 410, so a server that keeps
        answering 410 is asked again at the caller's pace, not in a tight loop."""
        deadline = time.monotonic() + timeout_seconds
        version = resource_version
        relisted = False
        while (left := deadline - time.monotonic()) > 0:
            remaining = math.ceil(left)
            watcher = watch.Watch()
            try:
                for event in watcher.stream(
                    self._batch.list_namespaced_job,
                    self.config.namespace,
                    label_selector=RUN_SELECTOR,
                    resource_version=version,
                    timeout_seconds=remaining,  # the server ends the watch
                    allow_watch_bookmarks=True,
                    _request_timeout=remaining + 10,  # and a silent connection cannot hang us
                ):
                    obj = event["raw_object"]
                    version = obj["metadata"]["resourceVersion"]
                    yield {"type": event["type"], "object": obj, "resourceVersion": version}
                return
            except ApiException as exc:
                if not _is(exc, 410) or relisted:
                    raise
            finally:
                watcher.stop()
            listing = self.list_attempts()
            version, relisted = listing.resource_version, True
            yield {"type": "RELISTED", "listing": listing, "resourceVersion": version}

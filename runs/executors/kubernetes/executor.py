"""The Kubernetes executor, Django side: each attempt becomes one Job in the runs namespace.

`run` never waits for the pod. It creates the attempt's Job (or starts the image build that
Job needs) and returns, so a worker is busy for a few API calls, not for the length of a run.
The runner in the pod reports logs, usage and the result over the runner API, as on every
executor; the reconcile pass (`reconcile.py`, sent by beat every few seconds) records what the
runner cannot report, creates the Jobs of attempts whose image was being built, and keeps
attempts whose pod waits for a node or an image from looking lost to the reaper.
"""

import datetime as dt
import json
import logging
import os
from collections.abc import Iterator
from contextlib import contextmanager

import urllib3
from django.conf import settings
from django.utils import timezone
from kubernetes import config as kube_config
from kubernetes.client import ApiClient, Configuration
from kubernetes.client.exceptions import ApiException
from kubernetes.config.config_exception import ConfigException

from runs import logs, services
from runs.executors.kubernetes import builds
from runs.executors.kubernetes.builds import EXECUTOR
from runs.executors.kubernetes.cluster import JobCluster, KubernetesExecutorError
from runs.executors.kubernetes.config import KubernetesConfig
from runs.executors.kubernetes.dockerfile import ImagePlan, plan_image
from runs.executors.kubernetes.manifests import (
    AttemptJobSpec,
    UnsupportedSpecError,
    attempt_job,
    job_name,
)
from runs.models import Attempt, ImageBuildStatus, Trigger
from runs.worker import database_slot
from scheduling.models import Image

logger = logging.getLogger(__name__)

# What talking to the cluster can raise besides our own refusals: the API server's answers,
# a server that cannot be reached, no credentials to reach it with, a Job name taken.
CLUSTER_ERRORS = (
    ApiException,
    urllib3.exceptions.HTTPError,
    ConfigException,
    KubernetesExecutorError,
)


def kubernetes_config() -> KubernetesConfig:
    """The executor's configuration, from the CHALK_K8S_* settings."""
    optional = {}
    if settings.CHALK_K8S_GPU_NODE_SELECTORS is not None:
        optional["gpu_node_selectors"] = settings.CHALK_K8S_GPU_NODE_SELECTORS
    return KubernetesConfig(
        namespace=settings.CHALK_K8S_NAMESPACE,
        run_service_account=settings.CHALK_K8S_RUN_SERVICE_ACCOUNT,
        ttl_seconds_after_finished=settings.CHALK_K8S_JOB_TTL_SECONDS,
        registry=settings.CHALK_K8S_REGISTRY or None,
        registry_secret=settings.CHALK_K8S_REGISTRY_SECRET or None,
        registry_insecure=settings.CHALK_K8S_REGISTRY_INSECURE,
        install_at_start=settings.CHALK_K8S_INSTALL_AT_START,
        base_image_digests=settings.CHALK_K8S_BASE_IMAGE_DIGESTS,
        pending_timeout_seconds=settings.CHALK_K8S_PENDING_TIMEOUT_SECONDS,
        image_pull_grace_seconds=settings.CHALK_K8S_IMAGE_PULL_GRACE_SECONDS,
        **optional,
    )


def api_client() -> ApiClient:
    """The official client, pointed at the API server the settings name: CHALK_K8S_API_URL,
    else the pod's service account (in a cluster), else a kubeconfig."""
    configuration = Configuration()
    if settings.CHALK_K8S_API_URL:
        configuration.host = settings.CHALK_K8S_API_URL.rstrip("/")
    elif os.environ.get("KUBERNETES_SERVICE_HOST"):
        kube_config.load_incluster_config(client_configuration=configuration)
    else:
        kube_config.load_kube_config(
            config_file=settings.CHALK_K8S_KUBECONFIG or None,
            context=settings.CHALK_K8S_CONTEXT or None,
            client_configuration=configuration,
            persist_config=False,  # never write refreshed credentials into someone's kubeconfig
        )
    return ApiClient(configuration)


@contextmanager
def connect(config: KubernetesConfig | None = None) -> Iterator[JobCluster]:
    """A JobCluster for one task. A new client each time: settings and kubeconfig changes are
    seen at once, and an idle worker holds no connection to the API server."""
    client = api_client()
    try:
        yield JobCluster(client, config or kubernetes_config())
    finally:
        client.close()


def cluster_error_words(exc: Exception) -> str:
    """A cluster error in one line, for an attempt's reason: the API's own message, without
    the headers and body dump of ApiException's str()."""
    if isinstance(exc, ApiException):
        try:
            message = json.loads(exc.body or "{}").get("message")
        except (ValueError, AttributeError):
            message = None
        return f"the Kubernetes API answered {exc.status} {exc.reason}" + (
            f": {message}" if message else ""
        )
    return f"{type(exc).__name__}: {exc}"


def job_spec(attempt: Attempt, plan: ImagePlan, *, now: dt.datetime) -> AttemptJobSpec:
    """The attempt's Job as made at `now`: one made before the attempt's start time (a slot's
    Job made ahead) has a runner that waits for it, and a deadline that covers the wait."""
    version = attempt.run.version
    return AttemptJobSpec(
        run_id=attempt.run_id,
        attempt_number=attempt.number,
        attempt_id=attempt.id,
        function_name=attempt.run.function.name,
        image_ref=plan.image_ref,
        server_url=settings.CHALK_RUNNER_SERVER_URL,
        cpu=version.cpu,
        memory=version.memory,
        gpu=version.gpu,
        timeout_seconds=version.timeout,
        install_spec_at_start=plan.install_at_start,
        image_spec=version.image.spec,
        starts_at=attempt.not_before.astimezone(dt.UTC).strftime("%Y-%m-%dT%H:%M:%SZ"),
        wait_seconds=max(0.0, (attempt.not_before - now).total_seconds()),
    )


def attempt_job_name(attempt: Attempt) -> str:
    return job_name(attempt.run_id, attempt.number, attempt.run.function.name)


def job_create(
    attempt: Attempt, plan: ImagePlan, *, token: str, cluster: JobCluster, now: dt.datetime
) -> str:
    """Creates the attempt's Job and token Secret and records the Job's name on the attempt,
    with the time it was made in `dispatched_at` (handed to the cluster): pending timeouts
    count from there, or from the attempt's start time when that is later.

    A scheduled attempt is claimed CHALK_K8S_LOOKAHEAD_SECONDS before its slot
    (services.prepare_lead), so its Job is made then: the pod is scheduled, pulls its image
    and starts its runner meanwhile, and the runner calls the function on the slot. The run's
    log says so."""
    name = cluster.create_attempt(job_spec(attempt, plan, now=now), token=token)
    if not services.attempt_dispatched(attempt=attempt, executor_ref=name, now=now):
        cluster.delete(name)  # the attempt ended while its Job was being made: a cancel
        return name
    ahead = round((attempt.not_before - now).total_seconds())
    if ahead >= 1 and attempt.number == 1 and attempt.run.trigger == Trigger.SCHEDULE:
        logs.log_system(
            attempt=attempt,
            text=f"Job {name} created {ahead} s before the slot; the function starts on it",
            now=now,
        )
    return name


class KubernetesExecutor:
    name = EXECUTOR

    def run(self, attempt: Attempt, token: str) -> None:
        """1. A cancel that came first ends the attempt.
        2. Plans the image and checks the Job can be made; a spec this cluster cannot run
           (no registry nor install-at-start, a GPU type with no placement) fails the attempt
           without a retry.
        3. An image that must be built and is not ready: starts (or joins) its build and
           returns, the attempt `starting`; the reconcile pass makes the Job once the image
           is pushed. A build that failed a moment ago fails the attempt with its reason.
        4. Creates the Job and its token Secret, records the Job's name, returns."""
        now = timezone.now()
        if services.attempt_cancel_if_requested(attempt=attempt, now=now):
            return
        config = kubernetes_config()
        image = attempt.run.version.image
        try:
            plan = plan_image(image.spec, config)
            attempt_job(job_spec(attempt, plan, now=now), config)
        except UnsupportedSpecError as exc:
            services.attempt_fail(attempt=attempt, reason=str(exc), now=now, retryable=False)
            return
        try:
            with connect(config) as cluster:
                if plan.dockerfile is not None:
                    build = builds.build_start(plan=plan, image=image, cluster=cluster, now=now)
                    if build.status == ImageBuildStatus.FAILED:
                        services.attempt_fail(
                            attempt=attempt,
                            reason=builds.build_failure(build),
                            now=now,
                            retryable=False,
                        )
                        return
                    if build.status == ImageBuildStatus.BUILDING:
                        services.attempt_awaiting_image(attempt=attempt, build_ref=plan.build_name)
                        return
                job_create(attempt, plan, token=token, cluster=cluster, now=now)
        except CLUSTER_ERRORS as exc:
            reason = f"the attempt could not be started on the cluster: {cluster_error_words(exc)}"
            services.attempt_fail(attempt=attempt, reason=reason, now=timezone.now())

    def installs_at_start(self, image_spec: dict) -> bool:
        try:
            return plan_image(image_spec, kubernetes_config()).install_at_start
        except UnsupportedSpecError:
            return False  # no run of it starts at all; its runs say why

    def build_ahead(self, image: Image) -> None:
        config = kubernetes_config()
        try:
            plan = plan_image(image.spec, config)
        except UnsupportedSpecError:
            return  # no run of it starts at all; its runs say why
        if plan.dockerfile is None:
            return  # a public image, or one installed when each pod starts
        try:
            with connect(config) as cluster, database_slot():
                builds.build_start(plan=plan, image=image, cluster=cluster, now=timezone.now())
        except CLUSTER_ERRORS as exc:
            logger.info("image %s: the first run starts its build (%s)",
                        image.spec_hash[:12], cluster_error_words(exc))  # fmt: skip

    def isolation(self) -> str | None:
        return None  # each attempt is its own pod

    def cancel(self, attempt: Attempt) -> None:
        """Deletes the attempt's Job with its pod and token Secret; a Job already gone is fine.

        The runner learns of the cancel from its next heartbeat and reports it; if its pod
        dies first, the reconcile pass records the attempt cancelled. Called by a control
        worker (`runs.tasks.cancel_attempts`). Best effort: when the API cannot be reached,
        the next reconcile pass deletes the Job instead, within seconds."""
        try:
            with connect() as cluster:
                cluster.delete(attempt_job_name(attempt))
        except CLUSTER_ERRORS as exc:
            logger.info(
                "attempt %s: the reconcile pass will delete its Job (%s)",
                attempt.id,
                cluster_error_words(exc),
            )

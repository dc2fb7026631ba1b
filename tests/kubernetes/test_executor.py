"""KubernetesExecutor against the fake API server, with the real database: an attempt started
by the worker's task becomes a Job (after its image build, when it needs one), and a cancel
deletes it. The outcome rows are in test_reconcile.py."""

import base64
import datetime as dt
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
from django.utils import timezone
from django_celery_beat.models import PeriodicTask

from chalkcompute import Image
from runs.executors.kubernetes.dockerfile import plan_image
from runs.executors.kubernetes.executor import job_spec, kubernetes_config
from runs.executors.kubernetes.manifests import attempt_job
from runs.executors.kubernetes.reconcile import reconcile
from runs.models import ImageBuild, Run
from runs.services import run_cancel, token_hash
from runs.tasks import run_due_attempts
from tests.kubernetes.support import NAMESPACE, SERVER_URL, attempts, reconcile_at, start, trigger
from tests.personas import acting
from tests.runs.support import deploy

pytestmark = pytest.mark.django_db

REPO = Path(__file__).resolve().parents[2]
JOBS = f"/apis/batch/v1/namespaces/{NAMESPACE}/jobs"
REGISTRY = "registry.test/chalkweb"
WITH_REQUESTS = Image.debian_slim().pip_install("requests")
BROKEN = Image.debian_slim().pip_install("no-such-pkg")
BUILD_ERROR = "#5 ERROR: No matching distribution found for no-such-pkg"


def secret_token(fake, name: str) -> str:
    return base64.b64decode(fake.get("secrets", NAMESPACE, name)["data"]["token"]).decode()


def build_plan(attempt):
    return plan_image(attempt.run.version.image.spec, kubernetes_config())


def fail_build(fake, name: str) -> None:
    fake.set_log(name, NAMESPACE, f"#5 [2/4] RUN pip install no-such-pkg\n{BUILD_ERROR}\n")
    fake.container_terminated(name, NAMESPACE, 1)


def test_it_creates_the_attempts_job_with_its_token_secret_and_records_the_job_name(kubernetes):
    attempt = start(deploy("nightly-rollup", "pass"))

    name = f"chalk-nightly-rollup-r{attempt.run_id}-a1"
    assert (attempt.status, attempt.executor, attempt.executor_ref) == (
        "starting",
        "kubernetes",
        name,
    )
    job = kubernetes.get("jobs", NAMESPACE, name)
    (container,) = job["spec"]["template"]["spec"]["containers"]
    assert job["metadata"]["labels"]["chalkweb.dev/attempt-id"] == str(attempt.id)
    assert {"name": "CHALK_SERVER_URL", "value": SERVER_URL} in container["env"]
    assert token_hash(secret_token(kubernetes, name)) == attempt.token_hash


def test_it_adopts_the_attempts_own_job_when_the_create_answers_409(kubernetes):
    attempt = trigger(deploy("nightly-rollup", "pass"))
    earlier = attempt_job(
        job_spec(attempt, build_plan(attempt), now=timezone.now()), kubernetes_config()
    )
    kubernetes.put_job(earlier, NAMESPACE)  # made by a create whose answer was lost

    run_due_attempts()

    attempt.refresh_from_db()
    assert [j["metadata"]["name"] for j in kubernetes.objects("jobs")] == [attempt.executor_ref]
    assert attempt.status == "starting"
    assert token_hash(secret_token(kubernetes, attempt.executor_ref)) == attempt.token_hash


def test_it_fails_without_a_retry_when_it_can_neither_build_nor_install_the_image(
    kubernetes, settings
):
    settings.CHALK_K8S_INSTALL_AT_START = False
    attempt = start(deploy("nightly-rollup", "pass", retries=2))

    run = Run.objects.get(id=attempt.run_id)
    assert run.status == "failed"
    assert attempts(run) == [(1, "failed", True)]
    assert run.status_reason.startswith(
        "the Kubernetes executor has no image registry to build into: set CHALK_K8S_REGISTRY"
    )
    assert kubernetes.objects("jobs") == []


def test_it_fails_the_attempt_with_the_apis_answer_when_its_job_cannot_be_created(kubernetes):
    kubernetes.forbidden.add("jobs")
    attempt = start(deploy("nightly-rollup", "pass"))

    assert attempt.status == "failed"
    assert attempt.reason == (
        "the attempt could not be started on the cluster: the Kubernetes API answered 403 "
        "Forbidden: "
        'jobs is forbidden: cannot create resource "jobs"'
    )


def test_it_reaches_the_cluster_through_a_kubeconfig(kubernetes, settings, tmp_path, monkeypatch):
    monkeypatch.delenv("KUBERNETES_SERVICE_HOST", raising=False)
    kubeconfig = tmp_path / "kubeconfig"
    kubeconfig.write_text(
        json.dumps(
            {
                "apiVersion": "v1",
                "kind": "Config",
                "clusters": [{"name": "kind", "cluster": {"server": kubernetes.url}}],
                "users": [{"name": "ops", "user": {"token": "kubeconfig-token"}}],
                "contexts": [{"name": "kind", "context": {"cluster": "kind", "user": "ops"}}],
                "current-context": "kind",
            }
        )
    )
    settings.CHALK_K8S_API_URL = ""
    settings.CHALK_K8S_KUBECONFIG = str(kubeconfig)

    attempt = start(deploy("nightly-rollup", "pass"))

    assert kubernetes.get("jobs", NAMESPACE, attempt.executor_ref) is not None
    assert {r.authorization for r in kubernetes.requests} == {"Bearer kubeconfig-token"}


def test_it_configures_the_executor_from_the_settings(settings):
    settings.CHALK_K8S_NAMESPACE = "team-runs"
    settings.CHALK_K8S_REGISTRY = REGISTRY
    settings.CHALK_K8S_REGISTRY_SECRET = "push-and-pull"
    settings.CHALK_K8S_GPU_NODE_SELECTORS = {"nvidia-l4": {"node_selector": {"gpu": "l4"}}}
    settings.CHALK_K8S_PENDING_TIMEOUT_SECONDS = 900

    config = kubernetes_config()

    assert (config.namespace, config.registry, config.registry_secret) == (
        "team-runs",
        REGISTRY,
        "push-and-pull",
    )
    assert config.gpu_node_selectors == {"nvidia-l4": {"node_selector": {"gpu": "l4"}}}
    assert config.pending_timeout_seconds == 900


def test_it_refuses_to_start_with_a_gpu_map_that_is_not_a_json_object():
    env = {**os.environ, "CHALK_K8S_GPU_NODE_SELECTORS": '["nvidia-l4"]'}
    started = subprocess.run(
        [sys.executable, "-c", "from django.conf import settings; settings.INSTALLED_APPS"],
        env=env,
        capture_output=True,
        text=True,
        cwd=REPO,
    )
    assert started.returncode != 0
    assert started.stderr.strip().splitlines()[-1] == (
        "django.core.exceptions.ImproperlyConfigured: CHALK_K8S_GPU_NODE_SELECTORS must be a "
        "JSON object, not list"
    )


def test_it_registers_the_reconcile_pass_with_beat_every_five_seconds():
    task = PeriodicTask.objects.get(task="runs.tasks.reconcile_kubernetes")
    assert (task.interval.every, task.interval.period) == (5, "seconds")


def test_it_builds_the_image_first_and_creates_the_job_once_it_is_pushed(kubernetes, settings):
    settings.CHALK_K8S_REGISTRY = REGISTRY
    attempt = start(deploy("fx-rates", "pass", image=WITH_REQUESTS))
    plan = build_plan(attempt)
    assert (attempt.status, attempt.executor_ref) == ("starting", plan.build_name)
    assert [j["metadata"]["name"] for j in kubernetes.objects("jobs")] == [plan.build_name]
    kubernetes.set_log(plan.build_name, NAMESPACE, "#9 pushing layers done\n")
    kubernetes.container_terminated(plan.build_name, NAMESPACE, 0)

    reconcile_at()

    attempt.refresh_from_db()
    build = ImageBuild.objects.get(executor="kubernetes")
    assert (build.status, build.artifact) == ("ready", plan.image_ref)
    assert "#9 pushing layers done" in build.log
    assert attempt.executor_ref == f"chalk-fx-rates-r{attempt.run_id}-a1"
    job = kubernetes.get("jobs", NAMESPACE, attempt.executor_ref)
    assert job["spec"]["template"]["spec"]["containers"][0]["image"] == plan.image_ref
    assert token_hash(secret_token(kubernetes, attempt.executor_ref)) == attempt.token_hash


def test_it_creates_the_job_at_once_when_the_image_is_built_already(kubernetes, settings):
    settings.CHALK_K8S_REGISTRY = REGISTRY
    first = start(deploy("fx-rates", "pass", image=WITH_REQUESTS))
    kubernetes.container_terminated(build_plan(first).build_name, NAMESPACE, 0)
    reconcile_at()

    second = start(first.run.function)

    assert second.executor_ref == f"chalk-fx-rates-r{second.run_id}-a1"
    assert kubernetes.get("jobs", NAMESPACE, second.executor_ref) is not None


def test_it_keeps_attempts_alive_while_their_image_builds(kubernetes, settings):
    settings.CHALK_K8S_REGISTRY = REGISTRY
    attempt = start(deploy("fx-rates", "pass", image=WITH_REQUESTS))
    later = timezone.now() + dt.timedelta(minutes=5)

    reconcile(now=later)

    attempt.refresh_from_db()
    assert (attempt.status, attempt.last_heartbeat_at) == ("starting", later)


def test_it_fails_waiting_attempts_without_a_retry_when_their_image_build_fails(
    kubernetes, settings
):
    settings.CHALK_K8S_REGISTRY = REGISTRY
    attempt = start(deploy("fx-rates", "pass", image=BROKEN, retries=2))
    fail_build(kubernetes, attempt.executor_ref)

    reconcile_at()

    attempt.refresh_from_db()
    assert ImageBuild.objects.get(executor="kubernetes").status == "failed"
    assert attempts(attempt.run) == [(1, "failed", True)]
    assert attempt.reason.startswith("image build failed; the end of its log:\n")
    assert attempt.reason.splitlines()[-2:] == [
        BUILD_ERROR,
        "build failed: exit_code: the container exited with code 1",
    ]


def test_it_fails_a_new_run_at_once_while_its_image_build_failed_recently(kubernetes, settings):
    settings.CHALK_K8S_REGISTRY = REGISTRY
    first = start(deploy("fx-rates", "pass", image=BROKEN))
    fail_build(kubernetes, first.executor_ref)
    reconcile_at()
    builds_before = len(kubernetes.objects("jobs"))

    second = start(first.run.function)

    assert second.status == "failed"
    assert BUILD_ERROR in second.reason
    assert len(kubernetes.objects("jobs")) == builds_before


def test_it_builds_a_failed_image_again_after_a_while(kubernetes, settings):
    settings.CHALK_K8S_REGISTRY = REGISTRY
    first = start(deploy("fx-rates", "pass", image=BROKEN))
    build_name = first.executor_ref
    fail_build(kubernetes, build_name)
    reconcile_at()
    ImageBuild.objects.update(finished_at=timezone.now() - dt.timedelta(minutes=11))

    second = start(first.run.function)

    assert (second.status, second.executor_ref) == ("starting", build_name)
    assert [r.path for r in kubernetes.requests if r.method == "DELETE"] == [f"{JOBS}/{build_name}"]
    assert kubernetes.get("jobs", NAMESPACE, build_name)["status"].get("conditions") is None
    assert ImageBuild.objects.get(executor="kubernetes").status == "building"


def test_it_cancels_by_deleting_the_job_and_ends_the_run_cancelled(
    kubernetes, django_capture_on_commit_callbacks, eager_tasks
):
    """The cancel reaches the executor through a control worker's task (run here)."""
    attempt = start(deploy("nightly-rollup", "pass"))
    kubernetes.container_running(attempt.executor_ref, NAMESPACE)

    with django_capture_on_commit_callbacks(execute=True):
        run_cancel(run=attempt.run, actor=acting("alice"), now=timezone.now())
    reconcile_at()

    (delete,) = [r for r in kubernetes.requests if r.method == "DELETE"]
    assert (delete.path, delete.query) == (
        f"{JOBS}/{attempt.executor_ref}",
        {"propagationPolicy": "Background"},
    )
    attempt.refresh_from_db()
    assert (attempt.status, attempt.reason) == (
        "cancelled",
        "cancelled: its Job was deleted before its runner reported",
    )
    assert Run.objects.get(id=attempt.run_id).status == "cancelled"


def test_the_pass_deletes_a_cancelled_attempts_job_when_the_cancel_could_not(
    kubernetes, settings, monkeypatch, django_capture_on_commit_callbacks, eager_tasks
):
    attempt = start(deploy("nightly-rollup", "pass"))
    # A worker whose API credentials fail at that moment: no service account token mounted.
    settings.CHALK_K8S_API_URL = ""
    monkeypatch.setenv("KUBERNETES_SERVICE_HOST", "10.96.0.1")
    monkeypatch.setenv("KUBERNETES_SERVICE_PORT", "443")
    with django_capture_on_commit_callbacks(execute=True):
        run_cancel(run=attempt.run, actor=acting("alice"), now=timezone.now())
    assert kubernetes.get("jobs", NAMESPACE, attempt.executor_ref) is not None

    settings.CHALK_K8S_API_URL = kubernetes.url  # reachable again
    reconcile_at()
    reconcile_at()

    assert kubernetes.get("jobs", NAMESPACE, attempt.executor_ref) is None
    assert Run.objects.get(id=attempt.run_id).status == "cancelled"


def test_it_cancels_an_attempt_waiting_for_its_image(
    kubernetes, settings, django_capture_on_commit_callbacks, eager_tasks
):
    settings.CHALK_K8S_REGISTRY = REGISTRY
    attempt = start(deploy("fx-rates", "pass", image=WITH_REQUESTS))

    with django_capture_on_commit_callbacks(execute=True):
        run_cancel(run=attempt.run, actor=acting("alice"), now=timezone.now())
    reconcile_at()

    attempt.refresh_from_db()
    assert (attempt.status, attempt.reason) == (
        "cancelled",
        "cancelled while its image was being built",
    )
    assert Run.objects.get(id=attempt.run_id).status == "cancelled"


def test_a_deploy_starts_its_images_build_before_any_run(
    kubernetes, settings, eager_tasks, django_capture_on_commit_callbacks
):
    settings.CHALK_K8S_REGISTRY = REGISTRY
    with django_capture_on_commit_callbacks(execute=True):
        function = deploy("fx-rates", "pass", image=WITH_REQUESTS)

    plan = plan_image(function.current_version.image.spec, kubernetes_config())
    assert ImageBuild.objects.get(executor="kubernetes").status == "building"
    assert not Run.objects.exists()
    assert [j["metadata"]["name"] for j in kubernetes.objects("jobs")] == [plan.build_name]
    kubernetes.container_terminated(plan.build_name, NAMESPACE, 0)
    reconcile_at()

    # The first run's Job is made at once, from the image built ahead.
    attempt = start(function)
    assert attempt.executor_ref == f"chalk-fx-rates-r{attempt.run_id}-a1"
    job = kubernetes.get("jobs", NAMESPACE, attempt.executor_ref)
    assert job["spec"]["template"]["spec"]["containers"][0]["image"] == plan.image_ref


def test_a_deploy_starts_no_build_when_runs_install_their_image_as_they_start(
    kubernetes, eager_tasks, django_capture_on_commit_callbacks
):
    with django_capture_on_commit_callbacks(execute=True):
        deploy("fx-rates", "pass", image=WITH_REQUESTS)  # no registry to push a build to

    assert (ImageBuild.objects.count(), kubernetes.objects("jobs")) == (0, [])

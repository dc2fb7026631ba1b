"""Runs end to end through the Kubernetes executor. The run's dispatch starts its attempt with
the worker's own task, which starts the image build on the fake API server (or, installing at
start, makes the Job at once); the reconcile pass, called as beat would send it, makes the
attempt's Job once the build completes. The fake's kubelet then runs the pod's command as a
local process with the pod's environment and the token from the attempt's Secret, and the
runner talks to the live server as it would from a cluster."""

import os
import sys
from pathlib import Path

import pytest
from django.utils import timezone

from chalkcompute import Image
from runs.models import ImageBuild, Run, UsageSample
from runs.services import run_trigger
from runs.tasks import reconcile_kubernetes
from tests.kubernetes.support import NAMESPACE, log
from tests.personas import acting
from tests.runs.support import deploy, wait_for

REPO = Path(__file__).resolve().parents[2]

pytestmark = pytest.mark.slow


def wait_until_ended(run: Run) -> None:
    """Reconciles as beat would until the run ends."""

    def ended() -> bool:
        reconcile_kubernetes()
        run.refresh_from_db()
        return not run.is_active

    wait_for(ended, timeout=90, interval=0.5, message="the run to end")


def test_it_runs_a_function_in_a_pod_through_the_runner_with_its_logs_and_usage(
    kubernetes, settings, live_server, transactional_db, eager_tasks
):
    settings.CHALK_RUNNER_SERVER_URL = live_server.url
    settings.CHALK_K8S_REGISTRY = "registry.test/chalkweb"
    function = deploy(
        "fx-rates",
        """
        import time
        chalk_logger.info("fetching rates")
        print("3 rates")
        time.sleep(1.2)
        return {"rates": 3, "run": chalkcompute.current_run().run_id}
        """,
        image=Image.debian_slim().pip_install("requests"),
    )
    run = run_trigger(function=function, trigger="manual", actor=acting("test"), now=timezone.now())
    attempt = run.attempts.get()
    kubernetes.container_terminated(attempt.executor_ref, NAMESPACE, 0)  # the image is pushed
    reconcile_kubernetes()
    attempt.refresh_from_db()

    runner = kubernetes.run_container(
        attempt.executor_ref,
        NAMESPACE,
        python=sys.executable,
        env={"PATH": os.environ["PATH"], "PYTHONPATH": str(REPO)},
    )

    wait_until_ended(run)
    assert runner.wait(timeout=30) == 0, kubernetes.logs
    attempt.refresh_from_db()
    assert (run.status, run.status_reason) == ("succeeded", "")
    assert run.return_value == {"rates": 3, "run": run.id}
    assert (attempt.status, attempt.exit_code, attempt.executor_ref) == (
        "succeeded",
        0,
        f"chalk-fx-rates-r{run.id}-a1",
    )
    assert log(attempt) == [("stdout", "INFO", "fetching rates"), ("stdout", "", "3 rates")]
    assert UsageSample.objects.filter(attempt=attempt).count() >= 1
    assert run.peak_memory_bytes > 1_000_000
    assert ImageBuild.objects.get(executor="kubernetes").status == "ready"
    job = kubernetes.get("jobs", NAMESPACE, attempt.executor_ref)
    assert [c["type"] for c in job["status"]["conditions"]] == ["SuccessCriteriaMet", "Complete"]


def test_it_installs_the_runner_from_the_server_when_a_pod_installs_at_start(
    kubernetes, settings, live_server, transactional_db, eager_tasks
):
    """The pod's real script, with no repository on its path: it makes the venv, downloads
    the runtime from the live server into it, and execs the runner, which has no Django."""
    settings.CHALK_RUNNER_SERVER_URL = live_server.url
    function = deploy(
        "fx-fresh-venv",
        """
        import importlib.util, sys
        chalk_logger.info(f"runner from {chalkcompute.__file__.removeprefix(sys.prefix)}")
        print(f"django importable: {importlib.util.find_spec('django') is not None}")
        return 1
        """,
    )
    run = run_trigger(function=function, trigger="manual", actor=acting("test"), now=timezone.now())
    attempt = run.attempts.get()
    job = kubernetes.get("jobs", NAMESPACE, attempt.executor_ref)
    (container,) = job["spec"]["template"]["spec"]["containers"]
    assert container["command"][:2] == ["/bin/sh", "-c"]

    runner = kubernetes.run_container(
        attempt.executor_ref, NAMESPACE, python=sys.executable, env={"PATH": "/usr/bin:/bin"}
    )

    wait_until_ended(run)
    assert runner.wait(timeout=30) == 0, kubernetes.logs
    attempt.refresh_from_db()
    assert (run.status, attempt.status, attempt.exit_code) == ("succeeded", "succeeded", 0)
    assert log(attempt) == [
        ("stdout", "INFO", "runner from /chalkweb-runtime/chalkcompute/__init__.py"),
        ("stdout", "", "django importable: False"),
    ]
    # The fake kubelet stores the log once it has read the process's output to its end.
    (pod_log,) = wait_for(lambda: list(kubernetes.logs.values()), timeout=10)
    assert pod_log.startswith("chalkweb: No image registry is configured"), pod_log

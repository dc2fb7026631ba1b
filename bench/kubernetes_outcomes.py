"""From a pod's failure to its outcome on the run, on the Kubernetes executor.

There is no cluster here: the tests' fake API server stands in for one (it serves the Job,
Pod and watch endpoints over HTTP, and its "kubelet" OOM-kills pods on request). Attempts are
started as a worker starts them, then killed one at a time at random moments; the figure is
the time from the kill to the attempt's recorded end. Baseline: beat's reconcile pass alone,
every 5 seconds. Against it: the same pass with the watcher running.

    .venv/bin/python bench/kubernetes_outcomes.py [--attempts 40]

`--attempts 3` is the small mode `make test` runs (tests/test_benchmarks.py).
"""

from __future__ import annotations

import argparse
import random
import sys
import tempfile
import threading
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _platform import REPO, in_thread, percentile, setup_django  # noqa: E402

PASS_SECONDS = 5  # beat's period for runs.tasks.reconcile_kubernetes


def every(period: float, stop: threading.Event, call) -> None:
    while not stop.wait(period):
        call()


def measure(fake, attempts: int, with_watcher: bool) -> list[float]:
    from django.utils import timezone

    from access.actor import Actor
    from runs.executors.kubernetes.watcher import watch
    from runs.models import Attempt
    from runs.services import run_trigger
    from runs.tasks import reconcile_kubernetes, run_due_attempts
    from tests.kubernetes.support import NAMESPACE
    from tests.runs.support import deploy

    stop = threading.Event()

    threads = [in_thread(every, PASS_SECONDS, stop, reconcile_kubernetes)]
    if with_watcher:
        threads.append(in_thread(watch, stop))
    lags = []
    label = "watcher" if with_watcher else "pass"
    for i in range(attempts):
        function = deploy(f"bench-{label}-{i}", "pass", memory="1Gi")
        run = run_trigger(
            function=function, trigger="manual", actor=Actor.platform(), now=timezone.now()
        )
        run_due_attempts()
        attempt = run.attempts.get()
        attempt.refresh_from_db()
        time.sleep(random.uniform(0, PASS_SECONDS))  # a kill at any moment of the pass's period
        killed = timezone.now()
        fake.container_terminated(attempt.executor_ref, NAMESPACE, 137, reason="OOMKilled")
        while Attempt.objects.filter(id=attempt.id, finished_at=None).exists():
            time.sleep(0.005)
        attempt.refresh_from_db()
        lags.append((attempt.finished_at - killed).total_seconds())
    stop.set()
    for thread in threads:
        thread.join(timeout=300)
    return lags


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--attempts", type=int, default=40)
    args = parser.parse_args()

    setup_django(Path(tempfile.mkdtemp(prefix="chalkweb-bench-")))
    sys.path.insert(0, str(REPO))
    from django.conf import settings

    from chalkweb.celery import app
    from runs.models import Run
    from scheduling.models import Function
    from tests.kubernetes.fakeapi import FakeKubernetes

    fake = FakeKubernetes().start()
    settings.CHALK_EXECUTOR = "kubernetes"
    settings.CHALK_K8S_API_URL = fake.url
    settings.CHALK_K8S_REGISTRY = ""
    settings.CHALK_K8S_INSTALL_AT_START = True
    app.conf.task_always_eager = True  # a run's dispatch runs here: no broker, no worker
    Run.objects.filter(function__name__startswith="bench-").delete()
    Function.objects.filter(name__startswith="bench-").delete()

    baseline = measure(fake, args.attempts, with_watcher=False)
    ours = measure(fake, args.attempts, with_watcher=True)
    fake.stop()

    print(f"OOM kill -> attempt recorded, {args.attempts} attempts each (seconds)")
    print(f"{'':34}{'p50':>10}{'p99':>10}{'max':>10}")
    for name, lags in (
        (f"reconcile pass every {PASS_SECONDS} s", baseline),
        ("watcher + pass", ours),
    ):
        print(
            f"{name:34}{percentile(lags, 0.5):10.3f}{percentile(lags, 0.99):10.3f}{max(lags):10.3f}"
        )
    ratio = percentile(baseline, 0.5) / max(percentile(ours, 0.5), 1e-6)
    print(f"p50 ratio (pass / watcher): {ratio:.0f}x")
    print(
        f"RESULT attempts={args.attempts} watcher_p50_s={percentile(ours, 0.5):.3f} "
        f"watcher_p99_s={percentile(ours, 0.99):.3f} pass_p50_s={percentile(baseline, 0.5):.3f} "
        f"pass_p99_s={percentile(baseline, 0.99):.3f} ratio={ratio:.0f}"
    )


if __name__ == "__main__":
    main()

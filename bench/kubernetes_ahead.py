"""From slot to the first line of user code on the Kubernetes executor: Jobs made ahead of the
slot against Jobs made at the slot, with pods that take 10 s to start.

There is no cluster here: the tests' fake API server stands in for one, and its kubelet runs
each attempt pod's command as a local process once the pod has been Pending for the pod start
delay (a node to pick, an image to pull, a container to start). A handful of functions share
one slot. Their runs are made as the tick makes them; the runs worker's task takes their
attempts when the slot's wake-up would reach it (the slot less services.prepare_lead) and
makes their Jobs; the runner in each pod fetches its attempt from a live server (runserver),
waits for the slot and calls the function. Beat's reconcile pass runs every 5 s.

Figures: the time of the function's first log line minus the slot (user code, as the runner
timestamps it), and beside it the attempt's start as the server records it when the runner
fetches it (the slot itself for a runner that was there first). Baseline:
CHALK_K8S_LOOKAHEAD_SECONDS=0, Jobs made at the slot, as Kubernetes' own CronJob makes its
Jobs. Against it: the default lookahead.

    .venv/bin/python bench/kubernetes_ahead.py [--functions 5] [--pod-start-delay 10]

`CHALK_K8S_LOOKAHEAD_SECONDS=5 … --functions 1 --pod-start-delay 1` is the small mode `make
test` runs (tests/test_benchmarks.py).
"""

from __future__ import annotations

import argparse
import datetime as dt
import os
import subprocess
import sys
import tempfile
import threading
import time
import urllib.request
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _platform import REPO, free_port, in_thread, percentile, purge_broker, setup_django, wait_for  # noqa: E402

PASS_SECONDS = 5  # beat's period for runs.tasks.reconcile_kubernetes
REGISTRY = "registry.bench/chalkweb"
BODY = 'chalk_logger.info("first line")'


def start_server(data_dir: Path) -> tuple[subprocess.Popen, str]:
    """The runner API the pods talk to: runserver on the benchmark's database."""
    port = free_port()
    url = f"http://127.0.0.1:{port}"
    server = subprocess.Popen(
        [sys.executable, "manage.py", "runserver", f"127.0.0.1:{port}", "--noreload"],
        cwd=REPO,
        env={**os.environ, "CHALK_PUBLIC_URL": url},
        stdout=open(data_dir / "web.log", "w"),
        stderr=subprocess.STDOUT,
    )

    def up() -> bool:
        try:
            with urllib.request.urlopen(f"{url}/healthz", timeout=1):
                return True
        except OSError:
            return False

    wait_for(up, 60, "the server")
    return server, url


def ended(run_ids: list[int]) -> bool:
    from runs.models import Run

    return not Run.objects.filter(id__in=run_ids).active().exists()


def warm_up(fake, function) -> None:
    """One manual run: the image is built once (the fake's build pod succeeds at once) and
    the whole path is tried before anything is measured."""
    from django.utils import timezone

    from access.actor import Actor
    from runs.models import Run
    from runs.services import run_trigger
    from runs.tasks import reconcile_kubernetes, run_due_attempts
    from tests.kubernetes.support import NAMESPACE

    run = run_trigger(
        function=function, trigger="manual", actor=Actor.platform(), now=timezone.now()
    )
    run_due_attempts()
    build = run.attempts.get().executor_ref
    fake.container_terminated(build, NAMESPACE, 0)
    reconcile_kubernetes()
    wait_for(lambda: ended([run.id]), 120, "the warm-up run")
    run = Run.objects.get(id=run.id)
    if run.status != "succeeded":
        raise SystemExit(f"the warm-up run ended {run.status}: {run.status_reason}")


def measure(functions, lookahead: int) -> list[tuple[float, float, float]]:
    """One slot of all the functions; per run (Job made, attempt started, first line), in
    seconds from the slot."""
    from django.conf import settings
    from django.db import transaction
    from django.utils import timezone

    from runs.models import LogLine, Run, Trigger
    from runs.services import attempt_new, prepare_lead
    from runs.tasks import run_due_attempts

    settings.CHALK_K8S_LOOKAHEAD_SECONDS = lookahead
    lead = prepare_lead(len(functions))
    now = timezone.now()
    slot = now + lead + dt.timedelta(seconds=2)
    with transaction.atomic():  # as the tick makes them
        runs = [
            Run.objects.create(
                function=f,
                version=f.current_version,
                trigger=Trigger.SCHEDULE,
                scheduled_for=slot,
                created_at=now,
            )
            for f in functions
        ]
        for run in runs:
            attempt_new(run=run, number=1, now=now, not_before=slot).save()
    # The slot's wake-ups reach runs workers at slot - lead (their ETA), as many as
    # attempts_dispatch sends; each runs the worker's task.
    time.sleep(max(0.0, (slot - lead - timezone.now()).total_seconds()))
    workers = [
        in_thread(run_due_attempts, lead.total_seconds())
        for _ in range(min(len(functions), settings.CHALK_DISPATCH_PARALLELISM))
    ]
    for worker in workers:
        worker.join()
    run_ids = [run.id for run in runs]
    wait_for(lambda: ended(run_ids), 120, "the slot's runs to end")
    figures = []
    for run in Run.objects.filter(id__in=run_ids):
        if run.status != "succeeded":
            raise SystemExit(f"run {run.id} ended {run.status}: {run.status_reason}")
        attempt = run.attempts.get()
        first = LogLine.objects.filter(attempt=attempt, stream="stdout").order_by("seq").first()
        figures.append(
            tuple(
                (moment - slot).total_seconds()
                for moment in (attempt.dispatched_at, attempt.started_at, first.ts)
            )
        )
    return figures


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--functions", type=int, default=5)
    parser.add_argument("--pod-start-delay", type=float, default=10.0)
    args = parser.parse_args()

    data_dir = Path(tempfile.mkdtemp(prefix="chalkweb-bench-"))
    setup_django(data_dir)
    sys.path.insert(0, str(REPO))
    from django.conf import settings

    from runs.models import Run
    from runs.tasks import reconcile_kubernetes
    from scheduling.models import Function
    from tests.kubernetes.fakeapi import FakeKubernetes
    from tests.runs.support import deploy

    default_lookahead = settings.CHALK_K8S_LOOKAHEAD_SECONDS
    Run.objects.filter(function__name__startswith="bench-ahead-").delete()
    Function.objects.filter(name__startswith="bench-ahead-").delete()
    server, url = start_server(data_dir)
    fake = FakeKubernetes().start()
    stop = threading.Event()
    try:
        settings.CHALK_EXECUTOR = "kubernetes"
        settings.CHALK_K8S_API_URL = fake.url
        settings.CHALK_K8S_REGISTRY = REGISTRY
        settings.CHALK_RUNNER_SERVER_URL = url
        fake.start_pods(
            python=sys.executable,
            env={"PATH": os.environ["PATH"], "PYTHONPATH": str(REPO)},
            delay=args.pod_start_delay,
        )
        functions = [
            deploy(f"bench-ahead-{i}", BODY, schedule="0 0 1 1 *") for i in range(args.functions)
        ]
        warm_up(fake, functions[0])

        def beat() -> None:
            while not stop.wait(PASS_SECONDS):
                reconcile_kubernetes()

        in_thread(beat)
        at_slot = measure(functions, lookahead=0)
        ahead = measure(functions, lookahead=default_lookahead)
    finally:
        stop.set()
        fake.stop()
        server.terminate()
        server.wait(timeout=30)
        purge_broker()  # the alert messages of the runs' ends: no alerts worker ran

    print(
        f"slot -> first line of user code, {args.functions} functions on one slot, "
        f"pod start delay {args.pod_start_delay:g} s (seconds from the slot)"
    )
    print(f"{'':36}{'Job made':>10}{'started':>10}{'first p50':>11}{'first max':>11}")
    rows = (
        ("Jobs at the slot (lookahead 0)", at_slot),
        (f"Jobs ahead (lookahead {default_lookahead} s)", ahead),
    )
    for name, figures in rows:
        made, started, first = (sorted(column) for column in zip(*figures, strict=True))
        print(
            f"{name:36}{percentile(made, 0.5):>10.2f}{percentile(started, 0.5):>10.3f}"
            f"{percentile(first, 0.5):>11.3f}{max(first):>11.3f}"
        )
    base = percentile([f[2] for f in at_slot], 0.5)
    ours = percentile([f[2] for f in ahead], 0.5)
    print(f"p50 ratio (at the slot / ahead): {base / max(ours, 1e-3):.0f}x")
    print(
        f"RESULT functions={args.functions} pod_start_delay_s={args.pod_start_delay:g} "
        f"lookahead_s={default_lookahead} ahead_first_line_p50_s={ours:.3f} "
        f"ahead_first_line_max_s={max(f[2] for f in ahead):.3f} "
        f"at_slot_first_line_p50_s={base:.3f} "
        f"at_slot_first_line_max_s={max(f[2] for f in at_slot):.3f}"
    )


if __name__ == "__main__":
    main()

"""Celery tasks: thin, each fetches by id and calls a service."""

import datetime as dt
import os
import socket
import time

from celery import shared_task
from celery.signals import worker_process_init
from django.conf import settings
from django.utils import timezone

from access.services import audit_prune
from chalkcompute.runtime.parent import die_with_parent
from runs import scheduler, services
from runs.executors import executor_for
from runs.models import Attempt

WAIT_FOR_DUE = dt.timedelta(seconds=10)


@worker_process_init.connect
def _die_with_the_worker(**_) -> None:
    """A pool process dies with its worker, and the runner it started dies with it."""
    die_with_parent()


@shared_task(ignore_result=True)
def tick() -> int:
    return scheduler.tick(now=timezone.now()).runs


@shared_task(ignore_result=True)
def reap() -> dict[str, int]:
    return services.reap(now=timezone.now())


# Acknowledged on receipt: a run can last hours, and a redelivered message after a worker's
# death must not start anything twice. The reaper finds a killed attempt lost and retries it.
@shared_task(ignore_result=True, acks_late=False)
def run_due_attempts() -> int:
    """Claims and runs due attempts one after another until none is left; returns how many.

    A wake-up that arrives a little before its attempts are due (clocks of two machines
    differ) waits for them rather than leaving them to the reaper.
    """
    executor = executor_for()
    ran = 0
    while True:
        now = timezone.now()
        claimed = services.attempt_claim_next(
            executor=executor.name,
            executor_ref=f"pid {os.getpid()} on {socket.gethostname()}",
            now=now,
        )
        if claimed is None:
            soon = services.next_queued_start(before=now + WAIT_FOR_DUE)
            if soon is None:
                return ran
            wait = soon - services.PREPARE_AHEAD - now
            time.sleep(max(0.0, wait.total_seconds()))
            continue
        attempt, token = claimed
        executor.run(attempt, token)
        ran += 1


@shared_task(ignore_result=True)
def cancel_attempts(attempt_ids: list[int]) -> None:
    """Tells each attempt's executor of its run's cancel (see services.run_cancel)."""
    for attempt in Attempt.objects.filter(id__in=attempt_ids):
        executor_for(attempt.executor).cancel(attempt)


@shared_task(ignore_result=True)
def reconcile_kubernetes() -> dict[str, int]:
    """Records what the cluster did to Kubernetes attempts (see runs.executors.kubernetes.
    reconcile). Returns at once on the local executor with no Kubernetes attempt in flight."""
    # Imported here: a worker on the local executor never loads the Kubernetes client.
    from runs.executors.kubernetes.reconcile import reconcile, reconcile_needed

    if not reconcile_needed():
        return {}
    return reconcile(now=timezone.now())


@shared_task(ignore_result=True)
def prune_runs() -> int:
    """Deletes finished runs (with their logs and usage) past the retention period, and audit
    events past theirs; returns how many runs."""
    now = timezone.now()
    audit_prune(before=now - dt.timedelta(days=settings.CHALK_AUDIT_RETENTION_DAYS))
    return services.runs_prune(before=now - dt.timedelta(days=settings.CHALK_RUN_RETENTION_DAYS))

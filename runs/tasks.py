"""Celery tasks: thin, each fetches by id and calls a service."""

import datetime as dt
import os
import socket

from celery import shared_task
from celery.signals import worker_process_init
from django.conf import settings
from django.utils import timezone

from runs import scheduler, services
from runs.executors import executor_for
from runs.executors.local.executor import die_with_parent
from runs.models import Attempt, Run


@worker_process_init.connect
def _die_with_the_worker(**_) -> None:
    """A pool process dies with its worker, and the runner it started dies with it."""
    die_with_parent()


@shared_task(ignore_result=True)
def tick() -> int:
    return scheduler.tick(now=timezone.now()).runs


@shared_task(ignore_result=True)
def reap() -> dict:
    return services.reap(now=timezone.now())


# Acknowledged on receipt: a run can last hours, and a redelivered message after a worker's
# death must not start it again. The reaper finds such an attempt lost and retries it.
@shared_task(ignore_result=True, acks_late=False)
def start_attempt(attempt_id: int) -> None:
    executor = executor_for()
    claimed = services.attempt_claim(
        attempt_id=attempt_id,
        executor=executor.name,
        executor_ref=f"pid {os.getpid()} on {socket.gethostname()}",
        now=timezone.now(),
    )
    if claimed is None:
        return  # already taken by another delivery, or cancelled while queued
    attempt, token = claimed
    executor.run(attempt, token)


@shared_task(ignore_result=True)
def dispatch_attempts(attempt_ids: list[int]) -> None:
    """Sends a large tick's attempts to the runs queue, each with its start time as ETA."""
    for attempt in Attempt.objects.filter(id__in=attempt_ids, status="queued").only("id", "not_before"):
        start_attempt.apply_async((attempt.id,), eta=attempt.not_before)


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
    """Deletes finished runs (with their logs and usage) past the retention period."""
    cutoff = timezone.now() - dt.timedelta(days=settings.CHALK_RUN_RETENTION_DAYS)
    deleted, _ = Run.objects.filter(finished_at__lt=cutoff).delete()
    return deleted

"""Celery tasks: thin, each fetches by id and calls a service."""

import datetime as dt
import logging
import os
import socket
import time

from celery import shared_task
from django.conf import settings
from django.utils import timezone

from access.services import audit_prune
from runs import backfills, heartbeats, scheduler, services, worker
from runs.executors import executor_for
from runs.models import Attempt
from runs.worker import database_slot  # and, by importing runs.worker, its signals
from scheduling.models import Image

WAIT_FOR_DUE = dt.timedelta(seconds=10)
logger = logging.getLogger(__name__)


@shared_task(ignore_result=True)
def tick() -> int:
    started = time.monotonic()
    now = timezone.now()
    result = scheduler.tick(now=now)
    detail = {
        "duration_seconds": round(time.monotonic() - started, 6),
        "claimed": result.runs + result.skipped,
        "runs": result.runs,
        "skipped": result.skipped,
        "lookahead_seconds": round(result.lookahead.total_seconds(), 3),
    }
    heartbeats.record([("beat", "", detail, 1)], now=now)
    return result.runs


@shared_task(ignore_result=True)
def reap() -> dict[str, int]:
    now = timezone.now()
    done = {**services.reap(now=now), "backfill_runs": backfills.backfills_advance(now=now)}
    heartbeats.record(
        [("reaper", "", done, 1)]
        + [("reaper-action", action, None, count) for action, count in done.items()],
        now=now,
    )
    return done


@shared_task(ignore_result=True)
def advance_backfill(backfill_id: int) -> int:
    """Sent when one of the backfill's runs ended (see backfills.backfill_advance)."""
    return backfills.backfill_advance(backfill_id=backfill_id, now=timezone.now())


# Acknowledged on receipt: a run can last hours, and a redelivered message after a worker's
# death must not start anything twice. The reaper finds a killed attempt lost and retries it.
@shared_task(ignore_result=True, acks_late=False)
def run_due_attempts(ahead_seconds: float = services.PREPARE_AHEAD.total_seconds()) -> int:
    """Claims and runs attempts due within `ahead_seconds` one after another until none is
    left; returns how many. The wake-up's `ahead` is its slot's preparation lead
    (services.prepare_lead), so a large slot is taken early enough to be ready on time.

    A wake-up that arrives a little before its attempts are due (clocks of two machines
    differ) waits for them rather than leaving them to the reaper.
    """
    executor = executor_for()
    ahead = dt.timedelta(seconds=min(max(ahead_seconds, 0.0), settings.CHALK_MAX_PREPARE_SECONDS))
    ran = 0
    while True:
        if worker.stopping.is_set():  # a worker in its warm shutdown leaves them to the others
            return ran
        with database_slot():
            now = timezone.now()
            claimed = services.attempt_claim_next(
                executor=executor.name,
                executor_ref=f"pid {os.getpid()} on {socket.gethostname()}",
                now=now,
                ahead=ahead,
            )
            soon = None
            if claimed is None:
                soon = services.next_queued_start(before=now + ahead + WAIT_FOR_DUE)
        if claimed is None:
            if soon is None:
                return ran
            worker.stopping.wait(max(0.0, (soon - ahead - now).total_seconds()))
            continue
        attempt, token = claimed
        try:
            executor.run(attempt, token)
        except Exception as exc:  # a bug or the machine: the attempt fails now, saying so
            logger.exception("attempt %s could not be run", attempt.id)
            with database_slot():
                services.attempt_fail(
                    attempt=attempt, now=timezone.now(),
                    reason=f"the worker could not run it: {type(exc).__name__}: {exc}",
                )  # fmt: skip
        ran += 1


@shared_task(ignore_result=True)
def build_image(image_id: int) -> None:
    """Builds a just-deployed version's image ahead of its first run (Executor.build_ahead):
    sent by scheduling.services.function_deploy, to a runs worker, where local images live."""
    with database_slot():
        image = Image.objects.filter(id=image_id).first()
    if image is None:
        return
    try:
        executor_for().build_ahead(image)
    except Exception:  # the machine (a full disk): the first run builds it, and says why not
        logger.exception("image %s could not be built ahead", image_id)


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

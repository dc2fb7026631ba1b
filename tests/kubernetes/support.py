"""Helpers for the executor tests: the namespace, server URL, config and job spec they build
on; and, for those that use the database, start a run as a worker would, make a scheduled run
ahead of its slot as the tick does, and reconcile as beat would."""

import datetime as dt

from django.db import transaction
from django.utils import timezone

from runs.executors.kubernetes.config import KubernetesConfig
from runs.executors.kubernetes.manifests import AttemptJobSpec
from runs.executors.kubernetes.reconcile import reconcile
from runs.models import Attempt, LogLine, Run, Trigger
from runs.services import attempt_new, attempts_dispatch, run_trigger
from runs.tasks import run_due_attempts
from scheduling.models import Function
from tests.personas import acting

NAMESPACE = "chalkweb-runs"
SERVER_URL = "http://chalkweb-web.chalkweb.svc.cluster.local"


def make_config(**overrides) -> KubernetesConfig:
    return KubernetesConfig(namespace=NAMESPACE, **overrides)


def make_spec(**overrides) -> AttemptJobSpec:
    values = {
        "run_id": 41,
        "attempt_number": 1,
        "attempt_id": 97,
        "function_name": "refresh-exchange-rates",
        "image_ref": "registry.example.com/chalkweb/chalkweb-fn:" + "ab" * 16,
        "server_url": "http://chalkweb-web.chalkweb.svc.cluster.local",
        "cpu": "1",
        "memory": "1Gi",
        "timeout_seconds": 600,
    }
    return AttemptJobSpec(**{**values, **overrides})


def trigger(function: Function) -> Attempt:
    """Runs the function now; returns its first attempt, queued. (Under the `db` fixture the
    transaction never commits, so no message goes to a broker.)"""
    run = run_trigger(function=function, trigger="manual", actor=acting("test"), now=timezone.now())
    return run.attempts.get()


def start(function: Function) -> Attempt:
    """Triggers a run and starts its first attempt with the worker's own task."""
    attempt = trigger(function)
    run_due_attempts()
    attempt.refresh_from_db()
    return attempt


def schedule_slot(function: Function, slot: dt.datetime, *, now: dt.datetime) -> Attempt:
    """The run of `function` for `slot`, made at `now` as the tick makes it, with its first
    attempt queued for the slot and its wake-up sent once the transaction commits. Under
    `django_capture_on_commit_callbacks(execute=True)` with eager tasks, the worker's task
    (runs.tasks.run_due_attempts, with the slot's preparation lead) runs then: as a runs worker
    runs it when the wake-up's ETA, the slot less that lead, comes."""
    with transaction.atomic():
        run = Run.objects.create(
            function=function,
            version=function.current_version,
            trigger=Trigger.SCHEDULE,
            scheduled_for=slot,
            created_at=now,
        )
        attempt = attempt_new(run=run, number=1, now=now, not_before=slot)
        attempt.save()
        attempts_dispatch([(attempt.id, slot)])
    return attempt


def reconcile_at(seconds_later: float = 0) -> dict[str, int]:
    """One reconcile pass, as if it ran `seconds_later` from now: grace periods and the
    pending timeout pass without sleeping."""
    return reconcile(now=timezone.now() + dt.timedelta(seconds=seconds_later))


def attempts(run: Run) -> list[tuple[int, str, bool]]:
    return list(
        run.attempts.order_by("number").values_list("number", "status", "counts_against_retries")
    )


def log(attempt: Attempt) -> list[tuple[str, str, str]]:
    return list(
        LogLine.objects.filter(attempt=attempt)
        .order_by("seq")
        .values_list("stream", "level", "text")
    )

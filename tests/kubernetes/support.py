"""Helpers for the executor tests that use the database: start a run as a worker would, and
reconcile as beat would."""

import datetime as dt

from django.utils import timezone

from runs.executors.kubernetes.reconcile import reconcile
from runs.models import Attempt, LogLine, Run
from runs.services import run_trigger
from runs.tasks import run_due_attempts
from scheduling.models import Function
from tests.personas import acting


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

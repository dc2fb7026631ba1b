"""Sends the runs tasks by name. Services call this, and only celery imports runs.tasks, so
the service layer stays a leaf: tasks → services → dispatch, never back. A signature by name
is the task itself once celery has loaded it, so routes and task_always_eager apply as usual."""

import datetime as dt
import logging

from celery import current_app

logger = logging.getLogger(__name__)

RUN_DUE_ATTEMPTS = "runs.tasks.run_due_attempts"
CANCEL_ATTEMPTS = "runs.tasks.cancel_attempts"
ALERTS_RUN_ENDED = "alerts.tasks.run_ended"
ADVANCE_BACKFILL = "runs.tasks.advance_backfill"


def wake_runs_worker(*, eta: dt.datetime, ahead: dt.timedelta) -> None:
    """A runs worker claims, from `eta` on, the attempts due within `ahead` of its clock
    (runs.tasks.run_due_attempts)."""
    current_app.signature(RUN_DUE_ATTEMPTS).apply_async(
        eta=eta, kwargs={"ahead_seconds": ahead.total_seconds()}
    )


def tell_executors_of_cancel(attempt_ids: list[int]) -> None:
    """A control worker tells each attempt's executor of its run's cancel."""
    current_app.signature(CANCEL_ATTEMPTS).apply_async(args=[attempt_ids])


def tell_alerts_run_ended(run_id: int) -> None:
    """A control worker applies the alert rule to the run's end (alerts sits above runs, so
    runs tells it by task name, and only after the end is committed). A broker that cannot
    take the message loses this alert, not the caller's report of the run's end."""
    try:
        current_app.signature(ALERTS_RUN_ENDED).apply_async(args=[run_id])
    except Exception:
        logger.exception("could not send run %s's end to the alerts worker", run_id)


def advance_backfill(backfill_id: int) -> None:
    """A control worker starts the backfill's next slots (runs.tasks.advance_backfill) once one
    of its runs has ended. A broker that cannot take the message only delays them: the reaper
    advances every running backfill too."""
    try:
        current_app.signature(ADVANCE_BACKFILL).apply_async(args=[backfill_id])
    except Exception:
        logger.exception("could not send backfill %s's advance to a control worker", backfill_id)

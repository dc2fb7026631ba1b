"""The Platform page: beat's last tick, each worker and beat seen, when, and which Chalkweb it
runs, the runs queue's depth, schedule and start lag over the last hour, the executor,
overdue functions."""

import datetime as dt

from django.conf import settings
from django.db.models import Avg, Count, DurationField, ExpressionWrapper, F, Max
from django.template.response import TemplateResponse
from django.utils import timezone

from chalkcompute.version import VERSION
from console.access import console_view
from health.state import (
    BANNER_TICK_AGE,
    BANNER_WORKER_AGE,
    OVERDUE,
    PlatformState,
    periodic_task_problems,
)
from runs.models import ACTIVE_ATTEMPT_STATUSES, Attempt, AttemptStatus, Run, Trigger
from scheduling.models import Function

WINDOW = dt.timedelta(hours=1)


def _lag(runs, start: str) -> dict:
    lag = ExpressionWrapper(F(start) - F("scheduled_for"), output_field=DurationField())
    return (
        runs.filter(**{f"{start}__isnull": False})
        .annotate(lag=lag)
        .aggregate(average=Avg("lag"), worst=Max("lag"))
    )


@console_view
def platform_page(request):
    now = timezone.now()
    state = PlatformState.read(now=now)
    attempts = {status.value: 0 for status in ACTIVE_ATTEMPT_STATUSES}
    attempts.update(
        Attempt.objects.active().values_list("status").annotate(n=Count("id")).order_by()
    )
    recent = Run.objects.filter(trigger=Trigger.SCHEDULE, created_at__gte=now - WINDOW)
    workers = [
        {"row": w, "fresh": now - w.seen_at <= BANNER_WORKER_AGE}
        for w in [*state.workers, *state.beats]
    ]
    return TemplateResponse(
        request,
        "console/platform.html",
        {
            "section": "platform",
            "state": state,
            "now": now,
            "tick_fresh": state.tick_fresh(BANNER_TICK_AGE),
            "periodic_task_problems": periodic_task_problems(now=now),
            "workers": workers,
            "other_versions": state.other_versions(),
            "version": VERSION,
            "attempts": attempts,
            "due": Attempt.objects.filter(status=AttemptStatus.QUEUED, not_before__lte=now).count(),
            "lost": Attempt.objects.filter(
                status=AttemptStatus.LOST, finished_at__gte=now - WINDOW
            ).count(),
            "schedule_lag": _lag(recent, "created_at"),
            "start_lag": _lag(recent, "started_at"),
            "overdue": Function.objects.filter(
                paused=False, next_fire_at__lt=now - OVERDUE
            ).order_by("next_fire_at")[:20],
            "executor": settings.CHALK_EXECUTOR,
        },
    )

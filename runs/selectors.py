"""Reads of runs that are more than a filter."""

from django.db.models import QuerySet

from runs.models import LogLine, Run
from scheduling.models import Function


def run_get(*, run_id: int) -> Run | None:
    return (
        Run.objects.select_related("function", "version")
        .prefetch_related("attempts")
        .filter(id=run_id)
        .first()
    )


def run_list(*, function: Function | None = None, status: str | None = None) -> QuerySet[Run]:
    runs = Run.objects.select_related("function", "version").order_by("-id")
    if function is not None:
        runs = runs.filter(function=function)
    if status is not None:
        runs = runs.filter(status=status)
    return runs


def log_lines(*, run: Run, after: int, limit: int) -> QuerySet[LogLine]:
    # Ids follow the order lines were stored in (log_append numbers them under a lock).
    return (
        LogLine.objects.select_related("attempt")
        .filter(attempt__run=run, id__gt=after)
        .order_by("id")[:limit]
    )

"""Reads of what a function is, shared by the REST API, the console and the admin."""

import itertools
from datetime import datetime

from django.db.models import QuerySet

from chalkcompute.schedule import parse
from scheduling.models import Function, FunctionVersion

ON_DEMAND = "on demand"


def function_list() -> QuerySet[Function]:
    return Function.objects.select_related("current_version__image").order_by("name")


def function_get(*, name: str) -> Function | None:
    return function_list().filter(name=name).first()


def schedule_description(version: FunctionVersion | None) -> str:
    """The schedule in words, e.g. "every hour, on the hour", or "on demand"."""
    if version is None or version.schedule is None:
        return ON_DEMAND
    return parse(version.schedule).describe()


def next_fire_times(function: Function, count: int) -> list[datetime]:
    """The next `count` slots the scheduler will run, starting at next_fire_at (which a
    redeploy may have kept); none when the function is paused or on demand."""
    version = function.current_version
    if function.next_fire_at is None or version is None or version.cron is None:
        return []
    later = parse(version.cron).iter_after(function.next_fire_at)
    return [function.next_fire_at, *itertools.islice(later, count - 1)]

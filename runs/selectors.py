"""Reads of runs that are more than a filter."""

import math
from dataclasses import dataclass
from datetime import datetime

from django.db import connection
from django.db.models import Count, F, Max, Prefetch, Q, QuerySet, Window
from django.db.models.functions import RowNumber, TruncHour, TruncMinute

from chalkcompute.runtime import protocol
from common.paging import KeysetPage, keyset_page
from runs.models import (
    ACTIVE_RUN_STATUSES,
    MANUAL_TRIGGERS,
    OVERLAP_SKIP_REASON,
    Attempt,
    Backfill,
    ImageBuild,
    LogLine,
    Run,
    RunStatus,
    UsageSample,
)
from scheduling import selectors as scheduling_selectors
from scheduling.models import Function, FunctionVersion


def images_in_use() -> set[str]:
    """The spec hashes of the images that functions' current versions and active runs use:
    what a worker keeps built."""
    current = Function.objects.filter(current_version__isnull=False).values_list(
        "current_version__image__spec_hash", flat=True
    )
    running = Run.objects.active().values_list("version__image__spec_hash", flat=True)
    return set(current) | set(running)


def run_get(*, run_id: int) -> Run | None:
    return (
        Run.objects.select_related("function", "version")
        .prefetch_related("attempts")
        .filter(id=run_id)
        .first()
    )


def previous_success_slot(*, run: Run) -> datetime | None:
    """The slot of the function's last succeeded run that had one, before this run's slot (for
    a run started by hand, before it was asked for): what a run has to catch up from."""
    return (
        Run.objects.filter(
            function_id=run.function_id,
            status=RunStatus.SUCCEEDED,
            scheduled_for__lt=run.scheduled_for,
        )
        .exclude(trigger__in=MANUAL_TRIGGERS)
        .order_by("-scheduled_for")
        .values_list("scheduled_for", flat=True)
        .first()
    )


def run_list(*, function: Function | None = None, status: str | None = None) -> QuerySet[Run]:
    # A list shows no return values: up to 64 KiB each, not read for every row.
    runs = Run.objects.select_related("function", "version").defer("return_value").order_by("-id")
    if function is not None:
        runs = runs.filter(function=function)
    if status is not None:
        runs = runs.filter(status=status)
    return runs


def backfill_get(*, backfill_id: int) -> Backfill | None:
    """The backfill with its runs so far, in slot order."""
    return (
        Backfill.objects.select_related("function", "version")
        .prefetch_related(Prefetch("runs", queryset=Run.objects.order_by("scheduled_for")))
        .filter(id=backfill_id)
        .first()
    )


def log_lines(*, run: Run, after: int, limit: int) -> QuerySet[LogLine]:
    # Ids follow the order lines were stored in (log_append numbers them under a lock).
    return (
        LogLine.objects.select_related("attempt")
        .filter(attempt__run=run, id__gt=after)
        .order_by("id")[:limit]
    )


# --- the console -----------------------------------------------------------------------------
# Every read below touches a bounded number of rows through an index, whatever the size of
# the runs and log tables: pages are keyset pages, counts are never taken over all runs.

# The level filter shows lines at this level and above; "" shows every line, including plain
# prints, which have no level. "debug" … "error" (CRITICAL lines show under "error").
LOG_LEVELS = {"": None} | {
    level.lower(): protocol.LEVELS[n:] for n, level in enumerate(protocol.LEVELS[:-1])
}
# Searching log text across runs reads at most this many of the newest log lines (a scan
# with no index: PostgreSQL reads about a million short lines a second) ...
LOG_SEARCH_WINDOW = 100_000
# ... and finds at most this many runs, newest first.
LOG_SEARCH_MAX_RUNS = 1_000
# A function page lists missed and skipped slots among this many of its newest runs.
MISSED_SCAN_RUNS = 1_000
# The columns a list of runs shows.
RUN_ROW_FIELDS = (
    "id", "function_id", "version_id", "trigger", "triggered_by", "scheduled_for", "status",
    "status_reason", "missed_slots", "created_at", "started_at", "finished_at",
    "cancel_requested_at", "peak_memory_bytes", "cpu_seconds",
)  # fmt: skip


def function_list_page(
    *,
    name_contains: str = "",
    state: str = "",
    tag: tuple[str, str | None] | None = None,
    after=None,
    before=None,
    size: int,
) -> KeysetPage:
    """Functions by name, filtered by part of the name, by state (active / paused) and by a
    tag (scheduling.selectors.parse_tag)."""
    functions = Function.objects.select_related("current_version").defer(
        # A version's source can be a megabyte: the list needs none of it.
        "current_version__source"
    )
    if name_contains:
        functions = functions.filter(name__icontains=name_contains)
    if state == "paused":
        functions = functions.filter(paused=True)
    elif state == "active":
        functions = functions.filter(paused=False)
    if tag is not None:
        functions = scheduling_selectors.with_tags(functions, [tag])
    return keyset_page(functions, key="name", size=size, after=after, before=before)


@dataclass(frozen=True)
class RunMark:
    """What a small status mark needs of a run."""

    id: int
    function_id: int
    status: str
    scheduled_for: datetime


def last_runs(*, function_ids: list[int], per_function: int) -> dict[int, list[RunMark]]:
    """The newest `per_function` runs of each function, oldest first, in one query.

    On PostgreSQL, a LATERAL join runs one small backward scan of runs_run_function_newest
    per function: each reads only its own newest rows, however many runs a function has.
    Elsewhere (SQLite, the embedded default) a window function numbers each one's runs."""
    by_function: dict[int, list[RunMark]] = {function_id: [] for function_id in function_ids}
    if not function_ids:
        return by_function
    if connection.vendor == "postgresql":
        with connection.cursor() as cursor:
            cursor.execute(
                """SELECT r.id, r.function_id, r.status, r.scheduled_for
                FROM unnest(%s::bigint[]) AS f(id)
                CROSS JOIN LATERAL (
                    SELECT id, function_id, status, scheduled_for FROM runs_run
                    WHERE function_id = f.id ORDER BY id DESC LIMIT %s
                ) AS r""",
                [function_ids, per_function],
            )
            rows = cursor.fetchall()
    else:
        rows = (
            Run.objects.filter(function_id__in=function_ids)
            .annotate(
                newest=Window(RowNumber(), partition_by=[F("function_id")], order_by=F("id").desc())
            )
            .filter(newest__lte=per_function)
            .values_list("id", "function_id", "status", "scheduled_for")
        )
    for row in rows:
        by_function[row[1]].append(RunMark(*row))
    for marks in by_function.values():
        marks.sort(key=lambda mark: mark.id)
    return by_function


def version_history_page(*, function: Function, after=None, before=None, size: int) -> KeysetPage:
    versions = FunctionVersion.objects.filter(function=function).only(
        "id", "function_id", "number", "schedule", "cron", "content_hash", "created_by",
        "created_at",
    )  # fmt: skip
    return keyset_page(
        versions, key="number", size=size, after=after, before=before, descending=True
    )


def function_runs_page(*, function: Function, after=None, before=None, size: int) -> KeysetPage:
    runs = (
        Run.objects.filter(function=function)
        .select_related("version")
        .only(*RUN_ROW_FIELDS, "version__number")
    )
    return keyset_page(runs, key="id", size=size, after=after, before=before, descending=True)


def missed_and_skipped(*, function: Function, limit: int) -> list[Run]:
    """Recent slots that did not run as planned: skipped, or run after missing earlier ones.

    Looks at the newest MISSED_SCAN_RUNS runs only, so a function with a long history and
    nothing skipped does not scan all of it."""
    newest = Run.objects.filter(function=function).order_by("-id").values("id")[:MISSED_SCAN_RUNS]
    return list(
        Run.objects.filter(id__in=newest)
        .filter(Q(status=RunStatus.SKIPPED) | Q(missed_slots__gt=0))
        .only(*RUN_ROW_FIELDS)
        .order_by("-id")[:limit]
    )


# How many recent successes the function page's run times are read from.
RUN_TIMES_SAMPLE = 50


@dataclass(frozen=True)
class RunTimes:
    """How long a function's recent successful runs took, and how often its schedule did not
    fit them: the function page shows these beside the schedule's period."""

    sampled: int
    p50: float | None  # seconds
    p90: float | None
    skipped_for_overlap: int  # among the newest MISSED_SCAN_RUNS runs


def run_times(*, function: Function) -> RunTimes:
    """Read from the newest MISSED_SCAN_RUNS runs, in one query."""
    newest = (
        Run.objects.filter(function=function)
        .order_by("-id")
        .values_list("status", "status_reason", "started_at", "finished_at")[:MISSED_SCAN_RUNS]
    )
    seconds, skipped = [], 0
    for status, reason, started, finished in newest:
        if status == RunStatus.SUCCEEDED and started and len(seconds) < RUN_TIMES_SAMPLE:
            seconds.append((finished - started).total_seconds())
        skipped += status == RunStatus.SKIPPED and reason == OVERLAP_SKIP_REASON
    seconds.sort()
    return RunTimes(
        sampled=len(seconds),
        p50=_percentile(seconds, 0.5),
        p90=_percentile(seconds, 0.9),
        skipped_for_overlap=skipped,
    )


def _percentile(ordered: list[float], share: float) -> float | None:
    """The nearest-rank percentile of ordered values."""
    if not ordered:
        return None
    return ordered[max(0, math.ceil(share * len(ordered)) - 1)]


def function_backfills(*, function: Function, limit: int) -> list[Backfill]:
    """The function's newest backfills, each with its runs counted: `runs_ended`,
    `runs_succeeded` and `runs_active`."""
    active = Q(runs__status__in=ACTIVE_RUN_STATUSES)
    return list(
        Backfill.objects.filter(function=function)
        .annotate(
            runs_ended=Count("runs", filter=~active),
            runs_succeeded=Count("runs", filter=Q(runs__status=RunStatus.SUCCEEDED)),
            runs_active=Count("runs", filter=active),
        )
        .order_by("-id")[:limit]
    )


def image_builds(*, image_id: int) -> list[ImageBuild]:
    # Logs are capped (200 kB) and an image has one build per executor: shown on the page.
    return list(ImageBuild.objects.filter(image_id=image_id).order_by("executor"))


def run_list_page(
    *,
    function: Function | None = None,
    status: str = "",
    log_text: str = "",
    after=None,
    before=None,
    size: int,
) -> KeysetPage:
    """All runs newest first, by function and status, and optionally only those whose log
    has `log_text` (within LOG_SEARCH_WINDOW and LOG_SEARCH_MAX_RUNS)."""
    runs = Run.objects.select_related("function", "version").only(
        *RUN_ROW_FIELDS, "function__name", "version__number"
    )
    if function is not None:
        runs = runs.filter(function=function)
    if status:
        runs = runs.filter(status=status)
    if log_text:
        runs = runs.filter(id__in=runs_with_log_text(log_text))
    return keyset_page(runs, key="id", size=size, after=after, before=before, descending=True)


def runs_with_log_text(text: str) -> list[int]:
    """Ids of the runs among the newest log lines that contain `text` (case-insensitive).

    1. The newest line's id bounds the scan to the last LOG_SEARCH_WINDOW lines (a range of
       the primary key), 2. those lines are matched with no index, 3. their attempts give the
       runs. Materialised as a list so the runs query cannot turn into a scan of all runs."""
    newest = LogLine.objects.order_by("-id").values_list("id", flat=True).first()
    if newest is None:
        return []
    attempt_ids = list(
        LogLine.objects.filter(id__gt=newest - LOG_SEARCH_WINDOW, text__icontains=text)
        .order_by("-attempt_id")
        .values_list("attempt_id", flat=True)
        .distinct()[:LOG_SEARCH_MAX_RUNS]
    )
    return list(Attempt.objects.filter(id__in=attempt_ids).values_list("run_id", flat=True))


def run_for_page(*, run_id: int) -> Run | None:
    return (
        Run.objects.select_related("function", "version")
        .defer("version__source")
        .filter(id=run_id)
        .first()
    )


def run_attempts(*, run: Run) -> list[Attempt]:
    return list(Attempt.objects.filter(run=run).defer("token_hash").order_by("number"))


def _log_lines(*, attempt_ids: list[int], level: str, text: str) -> QuerySet[LogLine]:
    lines = LogLine.objects.filter(attempt_id__in=attempt_ids)
    if LOG_LEVELS.get(level):
        lines = lines.filter(level__in=LOG_LEVELS[level])
    if text:
        lines = lines.filter(text__icontains=text)
    return lines


def log_tail(*, attempt_ids: list[int], level: str, text: str, limit: int) -> list[LogLine]:
    """The last `limit` lines of a run's log that pass the filter, in log order."""
    if not attempt_ids:
        return []
    lines = _log_lines(attempt_ids=attempt_ids, level=level, text=text)
    return list(lines.order_by("-id")[:limit])[::-1]


def log_before(
    *, attempt_ids: list[int], level: str, text: str, before: int, limit: int
) -> list[LogLine]:
    """Earlier lines: the `limit` lines before id `before`, in log order."""
    if not attempt_ids:
        return []
    lines = _log_lines(attempt_ids=attempt_ids, level=level, text=text).filter(id__lt=before)
    return list(lines.order_by("-id")[:limit])[::-1]


def log_after(
    *, attempt_ids: list[int], level: str, text: str, after: int, limit: int
) -> list[LogLine]:
    """The lines stored after id `after` (the live tail), in log order."""
    if not attempt_ids:
        return []
    lines = _log_lines(attempt_ids=attempt_ids, level=level, text=text).filter(id__gt=after)
    return list(lines.order_by("id")[:limit])


# Samples are one a second: a long run is drawn from per-minute (or per-hour) aggregates.
RAW_USAGE_SECONDS = 10 * 60
MINUTE_USAGE_SECONDS = 10 * 60 * 60


def usage_series(*, attempt_ids: list[int], seconds: float) -> list[tuple]:
    """(time, CPU seconds so far, RSS bytes) points of a run lasting about `seconds`: every
    sample for a short run, the per-minute (per-hour) maxima for longer ones."""
    if not attempt_ids:
        return []
    samples = UsageSample.objects.filter(attempt_id__in=attempt_ids)
    if seconds <= RAW_USAGE_SECONDS:
        return list(samples.order_by("ts").values_list("ts", "cpu_seconds", "rss_bytes"))
    bucket = TruncMinute("ts") if seconds <= MINUTE_USAGE_SECONDS else TruncHour("ts")
    return list(
        samples.annotate(bucket=bucket)
        .values("bucket")
        .annotate(cpu=Max("cpu_seconds"), rss=Max("rss_bytes"))
        .order_by("bucket")
        .values_list("bucket", "cpu", "rss")
    )

"""/metrics: the platform's state in the Prometheus text format, read at scrape time from
the database, so any number of web processes answer alike (no multiprocess mode, no state in
a process). A scrape reads small tables and indexed slices of the big ones, never all the
runs: it costs milliseconds at 1,000,000 runs (bench/metrics.py). Labels are bounded:
statuses, components, worker hostnames, and functions only while they have an active run;
never a run id.

Counters (`_total`) are kept by the platform's own processes as things happen: finished runs
in runs.models.FinishedRuns, ticks and the reaper's work in runs.models.Heartbeat. They never
fall when retention prunes runs, so `rate()` and `increase()` work on them. The histograms are
over the scheduled runs of the last hour."""

import datetime as dt

from django.conf import settings
from django.db.models import Count, DurationField, ExpressionWrapper, F, Q, Sum
from django.utils.module_loading import import_string
from prometheus_client import CollectorRegistry, generate_latest
from prometheus_client.core import (
    CounterMetricFamily,
    GaugeMetricFamily,
    HistogramMetricFamily,
)

from health.state import OVERDUE, PlatformState
from runs import counts
from runs.models import (
    ACTIVE_ATTEMPT_STATUSES,
    ACTIVE_RUN_STATUSES,
    Attempt,
    AttemptStatus,
    Heartbeat,
    ImageBuild,
    Run,
    RunStatus,
    Trigger,
)
from scheduling.models import Function

WINDOW = dt.timedelta(hours=1)  # the lag histograms and recent lost attempts
FINISHED_RUN_STATUSES = [s for s in RunStatus if s not in ACTIVE_RUN_STATUSES]
LAG_BUCKETS = (0.1, 0.25, 0.5, 1, 2, 5, 10, 30, 60, 300)


def _lag_histogram(name: str, documentation: str, runs, start: str) -> HistogramMetricFamily:
    """Seconds from each scheduled run's slot to `start` (a run field), 0 when `start` came
    first (runs are created a few seconds ahead of their slot), in one query."""
    lag = ExpressionWrapper(F(start) - F("scheduled_for"), output_field=DurationField())
    runs = runs.filter(**{f"{start}__isnull": False}).annotate(lag=lag)
    late = Q(lag__gt=dt.timedelta(0))
    totals = runs.aggregate(
        count=Count("id"),
        late_sum=Sum("lag", filter=late),
        **{
            f"le_{i}": Count("id", filter=Q(lag__lte=dt.timedelta(seconds=bound)))
            for i, bound in enumerate(LAG_BUCKETS)
        },
    )
    buckets = [(str(float(b)), totals[f"le_{i}"]) for i, b in enumerate(LAG_BUCKETS)]
    buckets.append(("+Inf", totals["count"]))
    late_sum = totals["late_sum"] or dt.timedelta(0)
    return HistogramMetricFamily(
        name, documentation, buckets=buckets, sum_value=late_sum.total_seconds()
    )


class PlatformCollector:
    """Reads the database on every scrape: about a dozen small queries."""

    def __init__(self, now=None) -> None:
        self._now = now

    def collect(self):
        from django.utils import timezone

        now = self._now() if self._now else timezone.now()
        finished = CounterMetricFamily(
            "chalk_runs_finished",
            "Runs that have ended, by status (kept as they end; retention does not lower it).",
            labels=["status"],
        )
        totals = counts.finished_totals()
        for status in FINISHED_RUN_STATUSES:
            finished.add_metric([status.value], totals.get(status, 0))
        yield finished
        active = Run.objects.active()
        by_status = dict(active.values_list("status").annotate(n=Count("id")).order_by())
        runs = GaugeMetricFamily(
            "chalk_runs_active", "Runs not ended yet, by status.", labels=["status"]
        )
        for status in ACTIVE_RUN_STATUSES:
            runs.add_metric([status.value], by_status.get(status, 0))
        yield runs
        # Per function only while a function has an active run: bounded by what runs now,
        # not by every function that exists.
        per_function = GaugeMetricFamily(
            "chalk_function_runs_active",
            "Runs not ended yet, by function; only functions with such a run appear.",
            labels=["function"],
        )
        by_function = active.values_list("function__name").annotate(n=Count("id"))
        for function, n in by_function.order_by("function__name"):
            per_function.add_metric([function], n)
        yield per_function

        recent = Run.objects.filter(trigger=Trigger.SCHEDULE, created_at__gte=now - WINDOW)
        yield _lag_histogram(
            "chalk_schedule_lag_seconds",
            "Scheduled runs created in the last hour: seconds from the slot to the run's "
            "creation by the tick (0 when created ahead of the slot, as it should be).",
            recent, "created_at",
        )  # fmt: skip
        yield _lag_histogram(
            "chalk_start_lag_seconds",
            "Scheduled runs created in the last hour: seconds from the slot to the first line "
            "of user code (the first attempt's start).",
            recent, "started_at",
        )  # fmt: skip

        attempts = GaugeMetricFamily(
            "chalk_attempts", "Attempts not finished, by status (queued: waiting for a worker).",
            labels=["status"],
        )  # fmt: skip
        by_status = dict(
            Attempt.objects.active().values_list("status").annotate(n=Count("id")).order_by()
        )
        for status in ACTIVE_ATTEMPT_STATUSES:
            attempts.add_metric([status.value], by_status.get(status, 0))
        yield attempts
        yield GaugeMetricFamily(
            "chalk_attempts_due",
            "Queued attempts whose start time has passed: the runs queue's depth.",
            value=Attempt.objects.filter(status=AttemptStatus.QUEUED, not_before__lte=now).count(),
        )
        yield GaugeMetricFamily(
            "chalk_attempts_lost_recent",
            "Attempts that finished lost (heartbeat stopped) in the last hour.",
            value=Attempt.objects.filter(
                status=AttemptStatus.LOST, finished_at__gte=now - WINDOW
            ).count(),
        )

        functions = GaugeMetricFamily(
            "chalk_functions", "Deployed functions, by state.", labels=["state"]
        )
        paused = dict(Function.objects.values_list("paused").annotate(n=Count("id")).order_by())
        functions.add_metric(["active"], paused.get(False, 0))
        functions.add_metric(["paused"], paused.get(True, 0))
        yield functions
        yield GaugeMetricFamily(
            "chalk_functions_overdue",
            "Active functions whose next run time passed more than a minute ago without a run.",
            value=Function.objects.filter(paused=False, next_fire_at__lt=now - OVERDUE).count(),
        )

        builds = GaugeMetricFamily(
            "chalk_image_builds", "Image builds, by executor and status.",
            labels=["executor", "status"],
        )  # fmt: skip
        for executor, status, n in (
            ImageBuild.objects.values_list("executor", "status")
            .annotate(n=Count("id"))
            .order_by("executor", "status")
        ):
            builds.add_metric([executor, status], n)
        yield builds

        yield from self._heartbeats(PlatformState.read(now=now), now)

    def _heartbeats(self, state: PlatformState, now):
        seen = GaugeMetricFamily(
            "chalk_heartbeat_timestamp_seconds",
            "When each platform process was last seen (Unix time): beat's tick, the reaper, "
            "each worker by hostname.",
            labels=["component", "name"],
        )
        for row in [r for r in (state.tick, state.reaper) if r] + state.workers:
            seen.add_metric([row.component, row.name], row.seen_at.timestamp())
        yield seen
        tick = state.tick
        ticks = CounterMetricFamily("chalk_ticks", "Ticks done since the platform started.")
        ticks.add_metric([], tick.count if tick else 0)
        yield ticks
        yield GaugeMetricFamily(
            "chalk_tick_duration_seconds", "How long the last tick took.",
            value=(tick.detail.get("duration_seconds", 0) if tick else 0),
        )  # fmt: skip
        yield GaugeMetricFamily(
            "chalk_tick_functions_claimed",
            "Functions the last tick claimed (each became a run or a skipped slot).",
            value=(tick.detail.get("claimed", 0) if tick else 0),
        )
        reaps = CounterMetricFamily("chalk_reaper_runs", "Times the reaper ran.")
        reaps.add_metric([], state.reaper.count if state.reaper else 0)
        yield reaps
        actions = CounterMetricFamily(
            "chalk_reaper_actions",
            "What the reaper did: lost (attempts marked lost), resent (wake-ups sent again).",
            labels=["action"],
        )
        done = dict(
            Heartbeat.objects.filter(component="reaper-action").values_list("name", "count")
        )
        for action in ("lost", "resent"):
            actions.add_metric([action], done.get(action, 0))
        yield actions


def render(now=None) -> bytes:
    """Every collector of settings.METRICS_COLLECTORS (this module's and the apps' above it),
    made for this scrape."""
    registry = CollectorRegistry(auto_describe=False)
    for path in settings.METRICS_COLLECTORS:
        registry.register(import_string(path)(now=now))
    return generate_latest(registry)

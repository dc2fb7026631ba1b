"""What happened: runs of functions, their attempts, log lines and usage samples."""

import datetime as dt

from django.conf import settings
from django.db import models
from django.db.models import F, Q
from django.utils import timezone

from chalkcompute.runtime import returns


class RunStatus(models.TextChoices):
    QUEUED = "queued"
    STARTING = "starting"
    RUNNING = "running"
    RETRYING = "retrying"
    SUCCEEDED = "succeeded"
    FAILED = "failed"
    TIMED_OUT = "timed_out"
    CANCELLED = "cancelled"
    LOST = "lost"
    SKIPPED = "skipped"


ACTIVE_RUN_STATUSES = (RunStatus.QUEUED, RunStatus.STARTING, RunStatus.RUNNING, RunStatus.RETRYING)


class AttemptStatus(models.TextChoices):
    QUEUED = "queued"
    STARTING = "starting"
    RUNNING = "running"
    SUCCEEDED = "succeeded"
    FAILED = "failed"
    TIMED_OUT = "timed_out"
    CANCELLED = "cancelled"
    LOST = "lost"
    INTERRUPTED = "interrupted"


ACTIVE_ATTEMPT_STATUSES = (AttemptStatus.QUEUED, AttemptStatus.STARTING, AttemptStatus.RUNNING)


class Trigger(models.TextChoices):
    SCHEDULE = "schedule"
    MANUAL = "manual"
    API = "api"
    BACKFILL = "backfill"  # a past slot, run by a Backfill


class BackfillStatus(models.TextChoices):
    RUNNING = "running"
    DONE = "done"  # every slot has run (or was skipped as already succeeded)
    CANCELLED = "cancelled"


class Backfill(models.Model):
    """Runs a function once for every slot of a past range, in slot order, at most
    `max_parallel` at a time (runs/backfills.py). Its runs are made one advance at a time, so
    `next_slot` is where the next advance starts."""

    function = models.ForeignKey(
        "scheduling.Function", on_delete=models.CASCADE, related_name="backfills"
    )
    # The version whose schedule gives the slots and which every run runs: a deploy during
    # the backfill changes neither.
    version = models.ForeignKey(
        "scheduling.FunctionVersion", on_delete=models.CASCADE, related_name="+"
    )
    start = models.DateTimeField()
    end = models.DateTimeField()
    rerun = models.BooleanField(default=False)  # run slots that already succeeded too
    max_parallel = models.PositiveSmallIntegerField(default=1)
    slots = models.PositiveIntegerField()  # in [start, end]
    # Slots that had already succeeded when the backfill was made (none with `rerun`).
    skipped_slots = models.PositiveIntegerField(default=0)
    # The next slot to run or skip; null once every slot has been.
    next_slot = models.DateTimeField(null=True, blank=True)
    status = models.CharField(
        max_length=16, choices=BackfillStatus.choices, default=BackfillStatus.RUNNING
    )
    created_by = models.CharField(max_length=150)  # a username or an API token name
    created_by_user = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    created_by_token = models.ForeignKey(
        "access.ApiToken", null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    created_at = models.DateTimeField()
    finished_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        constraints = [
            models.CheckConstraint(
                condition=Q(status__in=BackfillStatus.values), name="runs_backfill_status_valid"
            ),
            models.CheckConstraint(
                condition=Q(start__lte=F("end")), name="runs_backfill_start_not_after_end"
            ),
            models.CheckConstraint(
                condition=Q(max_parallel__gte=1), name="runs_backfill_max_parallel_positive"
            ),
        ]

    def __str__(self) -> str:
        return f"backfill {self.pk} of {self.function_id}"

    @property
    def slots_to_run(self) -> int:
        return self.slots - self.skipped_slots


# Runs started by hand: their scheduled_for is when they were asked for, not a slot.
MANUAL_TRIGGERS = (Trigger.MANUAL, Trigger.API)


# Why the tick skipped a slot of an overlap="skip" function: its previous run was running.
OVERLAP_SKIP_REASON = 'the previous run was still active (overlap="skip")'


class RunQuerySet(models.QuerySet):
    def active(self) -> "RunQuerySet":
        """Runs that have not ended: queued, starting, running or retrying. Per function, the
        partial index runs_run_active_by_function holds exactly these."""
        return self.filter(status__in=ACTIVE_RUN_STATUSES)


class Run(models.Model):
    """One scheduled slot, one manual trigger or one slot of a backfill of a function."""

    function = models.ForeignKey(
        "scheduling.Function", on_delete=models.CASCADE, related_name="runs"
    )
    version = models.ForeignKey(
        "scheduling.FunctionVersion", on_delete=models.CASCADE, related_name="runs"
    )
    trigger = models.CharField(max_length=16, choices=Trigger.choices)
    triggered_by = models.CharField(max_length=150, blank=True)
    # Who asked for a manual run or its backfill (null for scheduled runs: the platform made
    # them).
    triggered_by_user = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    triggered_by_token = models.ForeignKey(
        "access.ApiToken", null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    # The backfill that made this run (trigger "backfill"). Indexed by
    # runs_one_run_per_backfill_slot, which leads with it.
    backfill = models.ForeignKey(
        Backfill,
        null=True,
        blank=True,
        on_delete=models.SET_NULL,
        related_name="runs",
        db_index=False,
    )
    # The slot for a scheduled or backfill run; the trigger time for a manual one.
    scheduled_for = models.DateTimeField()
    status = models.CharField(max_length=16, choices=RunStatus.choices, default=RunStatus.QUEUED)
    status_reason = models.TextField(blank=True)
    # Slots before this one that never ran because the platform was down (downtime catch-up).
    missed_slots = models.PositiveIntegerField(default=0)
    created_at = models.DateTimeField()
    started_at = models.DateTimeField(null=True, blank=True)
    finished_at = models.DateTimeField(null=True, blank=True)
    cancel_requested_at = models.DateTimeField(null=True, blank=True)
    peak_memory_bytes = models.BigIntegerField(null=True, blank=True)
    cpu_seconds = models.FloatField(null=True, blank=True)
    # What the function returned, masked and capped (chalkcompute/runtime/returns.py): the
    # value as JSON, or a string (its repr, or its cut text) as `return_format` says; null for
    # None and for a run that did not succeed. A database default: the tick inserts runs with
    # plain SQL (runs/scheduler.py).
    return_value = models.JSONField(null=True, blank=True)
    return_format = models.CharField(
        max_length=4,
        choices=[(f, f) for f in returns.FORMATS],
        blank=True,
        default="",
        db_default="",
    )

    objects = RunQuerySet.as_manager()

    class Meta:
        constraints = [
            # A second beat, a redelivered message or a restarted tick can never create a
            # second run for the same slot: the insert conflicts and is dropped.
            models.UniqueConstraint(
                fields=["function", "scheduled_for"],
                condition=Q(trigger="schedule"),
                name="runs_one_run_per_slot",
            ),
            # A backfill runs each of its slots once, however many advances race; it also
            # serves the backfill's runs (progress, its active runs) and its succeeded slots.
            models.UniqueConstraint(
                fields=["backfill", "scheduled_for"], name="runs_one_run_per_backfill_slot"
            ),
            models.CheckConstraint(
                condition=Q(status__in=RunStatus.values), name="runs_run_status_valid"
            ),
        ]
        indexes = [
            # The function page and GET /runs?function=: a function's runs, newest first.
            models.Index(fields=["function", "-id"], name="runs_run_function_newest"),
            # Runs filtered by status across functions (console, overlap and reaper checks).
            models.Index(fields=["status", "-id"], name="runs_run_status_newest"),
            # Whether a function has an active run: the tick asks it of every function it
            # could claim ahead (overlap="skip" waits), which must not read a function's
            # finished runs.
            models.Index(
                fields=["function"],
                condition=Q(status__in=ACTIVE_RUN_STATUSES),
                name="runs_run_active_by_function",
            ),
            # /metrics's lag histograms: the runs created in the last hour, read on every
            # scrape, which must not scan the months before (90 ms a histogram at 1,000,000
            # runs).
            models.Index(fields=["created_at"], name="runs_run_created"),
            # A run's previous_success_slot (runs/selectors.py), asked at every attempt's
            # start: one step back from its slot, however many runs the function has.
            models.Index(
                fields=["function", "-scheduled_for"],
                condition=Q(status=RunStatus.SUCCEEDED) & ~Q(trigger__in=MANUAL_TRIGGERS),
                name="runs_run_success_by_slot",
            ),
        ]

    def __str__(self) -> str:
        return f"run {self.pk} of {self.function_id}"

    @property
    def is_active(self) -> bool:
        return self.status in ACTIVE_RUN_STATUSES

    @property
    def slot(self) -> dt.datetime | None:
        """The scheduled instant this run is for, whatever made it (the tick, or a backfill);
        None for a run started by hand."""
        return None if self.trigger in MANUAL_TRIGGERS else self.scheduled_for

    @property
    def shown_status(self) -> str:
        """The status the console shows: "scheduled" for a scheduled run prepared ahead of its
        slot (taken by a worker, even its runner waiting), so no page suggests it is late."""
        if (
            self.trigger == Trigger.SCHEDULE
            and self.status in ACTIVE_RUN_STATUSES
            and self.scheduled_for > timezone.now()
        ):
            return "scheduled"
        return self.status


class AttemptQuerySet(models.QuerySet):
    def active(self) -> "AttemptQuerySet":
        """Attempts that have not ended: queued, starting or running."""
        return self.filter(status__in=ACTIVE_ATTEMPT_STATUSES)


class Attempt(models.Model):
    """One try of a run on an executor; every attempt keeps its own logs, usage and error.

    Defaults live in the database too (db_default): the tick inserts first attempts with
    plain SQL that names only the columns it sets."""

    # Indexed by runs_one_attempt_number, which leads with it.
    run = models.ForeignKey(Run, on_delete=models.CASCADE, related_name="attempts", db_index=False)
    number = models.PositiveIntegerField()
    status = models.CharField(
        max_length=16, choices=AttemptStatus.choices, default=AttemptStatus.QUEUED
    )
    # A retry waits in the database, not only in a broker message: the reaper re-sends
    # queued attempts whose time has come, so a lost message cannot lose a retry.
    not_before = models.DateTimeField()
    dispatched_at = models.DateTimeField(null=True, blank=True)
    created_at = models.DateTimeField()
    started_at = models.DateTimeField(null=True, blank=True)
    finished_at = models.DateTimeField(null=True, blank=True)
    last_heartbeat_at = models.DateTimeField(null=True, blank=True)
    executor = models.CharField(max_length=16, blank=True, default="", db_default="")
    executor_ref = models.CharField(
        max_length=255, blank=True, default="", db_default=""
    )  # pid@host or Job name
    # SHA-256 of the runner's token, minted when a worker claims the attempt (null before).
    token_hash = models.CharField(max_length=64, unique=True, null=True, blank=True)
    exit_code = models.IntegerField(null=True, blank=True)
    error_type = models.CharField(max_length=255, blank=True, default="", db_default="")
    error_message = models.TextField(blank=True, default="", db_default="")
    traceback = models.TextField(blank=True, default="", db_default="")
    # Why the platform ended the attempt, in words (lost heartbeat, out of memory, …).
    reason = models.TextField(blank=True, default="", db_default="")
    # An interruption the user did not cause (eviction, node loss) is retried for free.
    counts_against_retries = models.BooleanField(default=True, db_default=True)
    peak_memory_bytes = models.BigIntegerField(null=True, blank=True)
    cpu_seconds = models.FloatField(null=True, blank=True)
    log_lines = models.PositiveIntegerField(
        default=0, db_default=0
    )  # all lines, the platform's included
    runner_lines = models.PositiveIntegerField(
        default=0, db_default=0
    )  # lines the runner sent (its seq)
    # UTF-8 bytes of the runner's lines stored, against CHALK_MAX_LOG_BYTES (runs/logs.py).
    log_bytes = models.PositiveBigIntegerField(default=0, db_default=0)
    log_truncated = models.BooleanField(default=False, db_default=False)

    objects = AttemptQuerySet.as_manager()

    class Meta:
        constraints = [
            models.UniqueConstraint(fields=["run", "number"], name="runs_one_attempt_number"),
            models.CheckConstraint(
                condition=Q(status__in=AttemptStatus.values), name="runs_attempt_status_valid"
            ),
        ]
        indexes = [
            # The reaper: running attempts by heartbeat, queued attempts by due time.
            models.Index(fields=["status", "last_heartbeat_at"], name="runs_attempt_heartbeat"),
            models.Index(fields=["status", "not_before"], name="runs_attempt_due"),
        ]

    def __str__(self) -> str:
        return f"attempt {self.number} of run {self.run_id}"

    @property
    def is_active(self) -> bool:
        return self.status in ACTIVE_ATTEMPT_STATUSES


class LogStream(models.TextChoices):
    STDOUT = "stdout"
    STDERR = "stderr"
    SYSTEM = "system"


class LogLine(models.Model):
    # Indexed by runs_one_log_line_per_seq, which leads with it.
    attempt = models.ForeignKey(
        Attempt, on_delete=models.CASCADE, related_name="log_lines_set", db_index=False
    )
    # Assigned by the runner; a resent batch conflicts on (attempt, seq) and is dropped.
    seq = models.PositiveIntegerField()
    ts = models.DateTimeField()
    stream = models.CharField(max_length=8, choices=LogStream.choices)
    level = models.CharField(max_length=8, blank=True)
    text = models.TextField()

    class Meta:
        constraints = [
            models.UniqueConstraint(fields=["attempt", "seq"], name="runs_one_log_line_per_seq"),
        ]

    def __str__(self) -> str:
        return f"{self.attempt_id}:{self.seq} {self.text[:60]}"


class UsageSample(models.Model):
    """CPU and memory of an attempt, sampled every second by the runner (its heartbeat)."""

    # Indexed by runs_usage_by_attempt, which leads with it.
    attempt = models.ForeignKey(
        Attempt, on_delete=models.CASCADE, related_name="usage_samples", db_index=False
    )
    ts = models.DateTimeField()
    cpu_seconds = models.FloatField()
    cpu_percent = models.FloatField()
    rss_bytes = models.BigIntegerField()

    class Meta:
        indexes = [models.Index(fields=["attempt", "ts"], name="runs_usage_by_attempt")]

    def __str__(self) -> str:
        return f"{self.attempt_id} at {self.ts:%H:%M:%S}"


class ImageBuildStatus(models.TextChoices):
    BUILDING = "building"
    READY = "ready"
    FAILED = "failed"


class ImageBuild(models.Model):
    """An image built for one executor: a venv (local) or a pushed image (kubernetes)."""

    image = models.ForeignKey("scheduling.Image", on_delete=models.CASCADE, related_name="builds")
    executor = models.CharField(max_length=16)
    status = models.CharField(max_length=16, choices=ImageBuildStatus.choices)
    artifact = models.CharField(max_length=512, blank=True)  # a venv path or an image reference
    log = models.TextField(blank=True)
    started_at = models.DateTimeField()
    finished_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        constraints = [
            models.UniqueConstraint(
                fields=["image", "executor"], name="runs_one_build_per_executor"
            ),
        ]

    def __str__(self) -> str:
        return f"{self.image} on {self.executor}: {self.status}"


class Heartbeat(models.Model):
    """The platform's own processes saying they are alive: one row per (component, name),
    upserted in one statement (runs/heartbeats.py). "beat" is the tick (detail: its duration
    and how many functions it claimed), "reaper" the reaper (and "reaper-action" rows count
    what it did), "runs-worker" and "control-worker" one row per celery worker (name: its
    hostname). `count` adds up: ticks, reaps, lost attempts... for the /metrics counters."""

    component = models.CharField(max_length=32)
    name = models.CharField(max_length=255, blank=True, default="")
    seen_at = models.DateTimeField()
    count = models.PositiveBigIntegerField(default=0)
    detail = models.JSONField(default=dict, blank=True)

    class Meta:
        constraints = [
            models.UniqueConstraint(fields=["component", "name"], name="runs_one_heartbeat_row")
        ]

    def __str__(self) -> str:
        return f"{self.component} {self.name}".strip()


class FinishedRuns(models.Model):
    """How many runs have ended with each status, for /metrics's chalk_runs_finished_total:
    added to in the transaction that ends the runs (runs/counts.py), so the count is exact
    across processes and restarts and outlives retention's pruning. Each status is spread over
    `shard` rows (a function's id modulo runs.counts.SHARDS) so that runs ending at once, in
    workers' concurrent transactions, rarely wait on one another's row lock."""

    status = models.CharField(max_length=16, choices=RunStatus.choices)
    shard = models.PositiveSmallIntegerField()
    count = models.PositiveBigIntegerField(default=0)

    class Meta:
        constraints = [
            models.UniqueConstraint(fields=["status", "shard"], name="runs_one_finished_count")
        ]

    def __str__(self) -> str:
        return f"{self.status} (shard {self.shard}): {self.count}"

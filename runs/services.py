"""State changes of runs and attempts. Every entry point (tick, API, console, admin, tasks,
runner API, reaper) goes through these, so a run's state machine lives in one place:

    run:     queued → starting → running → succeeded | failed | timed_out | cancelled | lost
             (retrying between attempts; skipped when a slot is not run)
    attempt: queued → starting → running → succeeded | failed | timed_out | cancelled | lost
             | interrupted

Changes are conditional updates on the old status, so two processes can never both move
the same attempt (a worker and the reaper, a late runner and a cancel).
"""

import datetime as dt
import secrets
from collections import Counter

from django.conf import settings
from django.db import transaction
from django.db.models import Max, Sum

from chalkcompute import schedule as schedule_engine
from chalkcompute.retries import Retries
from runs import dispatch
from runs.errors import NOT_DEPLOYED, NotDeployedError
from runs.models import (
    ACTIVE_ATTEMPT_STATUSES,
    ACTIVE_RUN_STATUSES,
    Attempt,
    AttemptStatus,
    LogLine,
    LogStream,
    Run,
    RunStatus,
    Trigger,
    UsageSample,
)
from scheduling.models import Function, FunctionVersion
from scheduling.services import token_hash

# Attempt outcomes after which the retry policy may start another attempt.
RETRYABLE = (
    AttemptStatus.FAILED,
    AttemptStatus.TIMED_OUT,
    AttemptStatus.LOST,
    AttemptStatus.INTERRUPTED,
)


def attempt_token() -> tuple[str, str]:
    """A new runner token for one attempt and its hash (only the hash is stored)."""
    token = "chalk_attempt_" + secrets.token_urlsafe(32)
    return token, token_hash(token)


def attempt_new(*, run: Run, number: int, now: dt.datetime, not_before: dt.datetime) -> Attempt:
    """An unsaved queued attempt. Its runner token is minted when a worker claims it, so a
    token never sits in a broker message or, in plain text, in the database."""
    return Attempt(run=run, number=number, not_before=not_before, created_at=now, dispatched_at=now)


# A worker takes an attempt this long before its start time: the runner and the function's
# process start and load the module meanwhile, and the function is called on its slot.
PREPARE_AHEAD = dt.timedelta(seconds=1)


def attempts_dispatch(starts: list[tuple[int, dt.datetime]]) -> None:
    """Wakes runs workers for attempts starting at the given times, once the surrounding
    transaction commits.

    Workers pull: each wake-up message runs `runs.tasks.run_due_attempts`, which claims due
    attempts from the database one after another. So a tick of 10,000 functions sends a few
    messages per start time, not one per attempt (a message costs about a millisecond), and
    the start time as ETA brings a scheduled run to its worker before its slot.
    """
    per_start = Counter(start for _, start in starts)
    parallel = settings.CHALK_DISPATCH_PARALLELISM

    def send() -> None:
        for start, count in sorted(per_start.items()):
            for _ in range(min(count, parallel)):
                dispatch.wake_runs_worker(eta=start - PREPARE_AHEAD)

    if starts:
        transaction.on_commit(send)


def run_trigger(*, function: Function, trigger: str, triggered_by: str, now: dt.datetime) -> Run:
    """Run now: a manual run of the current version, started at once."""
    if function.current_version_id is None:
        raise NotDeployedError(NOT_DEPLOYED.format(name=function.name))
    with transaction.atomic():
        run = Run.objects.create(
            function=function,
            version=function.current_version,
            trigger=trigger,
            triggered_by=triggered_by,
            scheduled_for=now,
            created_at=now,
        )
        attempt = attempt_new(run=run, number=1, now=now, not_before=now)
        attempt.save()
        attempts_dispatch([(attempt.id, now)])
    return run


def attempt_claim(
    *, attempt_id: int, executor: str, executor_ref: str, now: dt.datetime
) -> tuple[Attempt, str] | None:
    """A worker takes a queued attempt; returns it with its runner token, or None if it is
    not queued any more (already taken by another delivery of the message, or cancelled)."""
    token, hashed = attempt_token()
    with transaction.atomic():
        claimed = Attempt.objects.filter(id=attempt_id, status=AttemptStatus.QUEUED).update(
            status=AttemptStatus.STARTING,
            executor=executor,
            executor_ref=executor_ref,
            token_hash=hashed,
            last_heartbeat_at=now,
        )
        if not claimed:
            return None
        attempt = Attempt.objects.select_related("run__version__image", "run__function").get(
            id=attempt_id
        )
        run = attempt.run
        reason = _slot_no_longer_due(run) if attempt.number == 1 else None
        if reason is not None:
            Attempt.objects.filter(id=attempt_id).update(
                status=AttemptStatus.CANCELLED, finished_at=now, reason=reason
            )
            Run.objects.filter(id=run.id).update(
                status=RunStatus.SKIPPED, status_reason=reason, finished_at=now
            )
            return None
        Run.objects.filter(
            id=attempt.run_id, status__in=(RunStatus.QUEUED, RunStatus.RETRYING)
        ).update(status=RunStatus.STARTING)
    return attempt, token


def _slot_no_longer_due(run: Run) -> str | None:
    """The tick creates runs a few seconds ahead of their slot: a pause or a deploy in between
    still wins. A slot runs the version current when it starts; returns why it must not run
    when the function was paused, or redeployed with a schedule that no longer has the slot."""
    function = run.function
    if run.trigger != Trigger.SCHEDULE:
        return None
    if function.paused:
        return f"the function was paused before this slot ({function.paused_reason})"
    if function.current_version_id == run.version_id:
        return None
    current = FunctionVersion.objects.select_related("image").get(id=function.current_version_id)
    slot = run.scheduled_for
    if current.cron is None or (
        schedule_engine.parse(current.cron).next_after(slot - dt.timedelta(minutes=1)) != slot
    ):
        return (
            f"version {current.number} was deployed before this slot, and its schedule "
            f"({current.cron or 'none'}) does not include it"
        )
    Run.objects.filter(id=run.id).update(version=current)
    run.version = current
    return None


def attempt_claim_next(
    *, executor: str, executor_ref: str, now: dt.datetime
) -> tuple[Attempt, str] | None:
    """Claims the queued attempt that is due first (its start time is at most PREPARE_AHEAD
    away), if any."""
    while True:
        with transaction.atomic():
            # SKIP LOCKED: workers pulling at once take different attempts without waiting.
            attempt_id = (
                Attempt.objects.select_for_update(skip_locked=True)
                .filter(status=AttemptStatus.QUEUED, not_before__lte=now + PREPARE_AHEAD)
                .order_by("not_before", "id")
                .values_list("id", flat=True)
                .first()
            )
        if attempt_id is None:
            return None
        claimed = attempt_claim(
            attempt_id=attempt_id, executor=executor, executor_ref=executor_ref, now=now
        )
        if claimed is not None:
            return claimed
        # Another worker took it between the read and the claim (SQLite has no row locks),
        # or a pause skipped it: look again.


def next_queued_start(*, before: dt.datetime) -> dt.datetime | None:
    """When the next queued attempt is due, if before `before`."""
    return (
        Attempt.objects.filter(status=AttemptStatus.QUEUED, not_before__lt=before)
        .order_by("not_before")
        .values_list("not_before", flat=True)
        .first()
    )


def attempt_heartbeat(*, attempt: Attempt, now: dt.datetime) -> None:
    """Keeps an attempt that is not yet running (an image build) from looking lost."""
    Attempt.objects.filter(id=attempt.id, status__in=ACTIVE_ATTEMPT_STATUSES).update(
        last_heartbeat_at=now
    )


def attempt_begin(*, attempt: Attempt, now: dt.datetime) -> bool:
    """The runner fetched its attempt: the function runs at its start time (at once for a
    retry or a manual run; on the slot for a scheduled run prepared ahead)."""
    started = max(now, attempt.not_before)
    with transaction.atomic():
        begun = Attempt.objects.filter(id=attempt.id, status=AttemptStatus.STARTING).update(
            status=AttemptStatus.RUNNING, started_at=started, last_heartbeat_at=now
        )
        if begun:
            Run.objects.filter(id=attempt.run_id, status__in=ACTIVE_RUN_STATUSES).update(
                status=RunStatus.RUNNING
            )
            # A run's start is its first attempt's start; retries keep it.
            Run.objects.filter(id=attempt.run_id, started_at__isnull=True).update(
                started_at=started
            )
    return bool(begun)


def log_append(
    *, attempt: Attempt, first_seq: int | None, lines: list[dict], now: dt.datetime
) -> None:
    """Stores log lines in order.

    `first_seq` is the runner's number of its batch's first line. A batch sent again after a
    lost answer overlaps what was stored, and only its new tail is kept; the runner's lines
    are counted apart from the platform's own (first_seq None), which may come in between.
    """
    if not lines:
        return
    with transaction.atomic():
        # Locks the attempt so concurrent writers (runner, reaper, executor) number lines
        # one after another and ids follow the order of the log.
        stored, from_runner = (
            Attempt.objects.select_for_update()
            .values_list("log_lines", "runner_lines")
            .get(id=attempt.id)
        )
        if first_seq is not None:
            if first_seq > from_runner:
                raise ValueError(
                    f"log lines {from_runner}..{first_seq - 1} are missing; resend from "
                    f"{from_runner}"
                )
            lines = lines[from_runner - first_seq :]
            from_runner += len(lines)
        rows = [
            LogLine(
                attempt_id=attempt.id,
                seq=stored + offset,
                ts=_timestamp(line.get("ts"), now),
                stream=line.get("stream", LogStream.STDOUT),
                level=str(line.get("level", ""))[:8],
                text=str(line.get("text", "")),
            )
            for offset, line in enumerate(lines)
        ]
        LogLine.objects.bulk_create(rows)
        Attempt.objects.filter(id=attempt.id).update(
            log_lines=stored + len(rows), runner_lines=from_runner
        )


def log_system(*, attempt: Attempt, text: str, now: dt.datetime, level: str = "INFO") -> None:
    log_append(
        attempt=attempt,
        first_seq=None,
        lines=[{"ts": now.timestamp(), "stream": "system", "level": level, "text": text}],
        now=now,
    )


def usage_append(*, attempt: Attempt, samples: list[dict], now: dt.datetime) -> None:
    rows = [
        UsageSample(
            attempt_id=attempt.id,
            ts=_timestamp(sample.get("ts"), now),
            cpu_seconds=float(sample["cpu_seconds"]),
            cpu_percent=float(sample.get("cpu_percent", 0.0)),  # % of one core since the last
            rss_bytes=int(sample["rss_bytes"]),
        )
        for sample in samples
    ]
    UsageSample.objects.bulk_create(rows)
    update = {"last_heartbeat_at": now}
    if rows:
        update["cpu_seconds"] = max(r.cpu_seconds for r in rows)
    Attempt.objects.filter(id=attempt.id).update(**update)
    if rows:
        peak = max(r.rss_bytes for r in rows)
        Attempt.objects.filter(id=attempt.id).exclude(peak_memory_bytes__gte=peak).update(
            peak_memory_bytes=peak
        )


def _timestamp(value: object, default: dt.datetime) -> dt.datetime:
    try:
        return dt.datetime.fromtimestamp(float(value), tz=dt.UTC)
    except (TypeError, ValueError, OverflowError, OSError):
        return default


def attempt_finish(
    *,
    attempt: Attempt,
    status: str,
    now: dt.datetime,
    reason: str = "",
    exit_code: int | None = None,
    error_type: str = "",
    error_message: str = "",
    traceback: str = "",
    peak_memory_bytes: int | None = None,
    cpu_seconds: float | None = None,
    log_truncated: bool = False,
    counts_against_retries: bool = True,
    retryable: bool = True,
) -> bool:
    """Ends an attempt once (a second report is ignored), then its run or its next retry.
    `retryable=False` ends the run whatever its retry policy: another attempt could not go
    better (a bad image reference, a spec the cluster cannot run, a failed image build)."""
    with transaction.atomic():
        fields = dict(
            status=status, finished_at=now, reason=reason[:10_000], exit_code=exit_code,
            error_type=error_type[:255], error_message=error_message[:100_000],
            traceback=traceback[:200_000], log_truncated=log_truncated,
            counts_against_retries=counts_against_retries,
        )  # fmt: skip
        if peak_memory_bytes is not None:
            fields["peak_memory_bytes"] = peak_memory_bytes
        if cpu_seconds is not None:
            fields["cpu_seconds"] = cpu_seconds
        ended = Attempt.objects.filter(id=attempt.id, status__in=ACTIVE_ATTEMPT_STATUSES).update(
            **fields
        )
        if not ended:
            return False
        run = Run.objects.select_for_update().select_related("version").get(id=attempt.run_id)
        summary = _summary(reason, error_type, error_message)
        retry = retryable and status in RETRYABLE and run.cancel_requested_at is None
        if retry and _retry(run=run, ended=attempt, status=status, summary=summary, now=now):
            return True
        if run.cancel_requested_at is not None:
            status = RunStatus.CANCELLED
        _run_end(run=run, status=status, reason=summary, now=now)
    return True


def _summary(reason: str, error_type: str, error_message: str) -> str:
    if error_type:
        return f"{error_type}: {error_message}"[:2000]
    return reason[:2000]


def _retry(*, run: Run, ended: Attempt, status: str, summary: str, now: dt.datetime) -> bool:
    """Queues the next attempt if the policy allows; interruptions the user did not cause
    (eviction, node shutdown) are retried at once and do not use up the user's retries."""
    policy = Retries.coerce(run.version.retries)
    interrupted = status == AttemptStatus.INTERRUPTED
    used = run.attempts.filter(counts_against_retries=True, status__in=RETRYABLE).count()
    if not interrupted and used > policy.max_retries:
        return False
    if interrupted and run.attempts.count() > policy.max_retries + settings.CHALK_MAX_INTERRUPTIONS:
        return False
    delay = 0.0 if interrupted else policy.delay_before(used)
    number = run.attempts.aggregate(last=Max("number"))["last"] + 1
    retry = attempt_new(
        run=run, number=number, now=now, not_before=now + dt.timedelta(seconds=delay)
    )
    retry.save()
    run.status = RunStatus.RETRYING
    run.status_reason = (
        f"attempt {ended.number} {status}: {summary}; attempt {number} in {delay:g} s"
    )
    run.save(update_fields=["status", "status_reason"])
    attempts_dispatch([(retry.id, retry.not_before)])
    return True


def _run_end(*, run: Run, status: str, reason: str, now: dt.datetime) -> None:
    totals = run.attempts.aggregate(peak=Max("peak_memory_bytes"), cpu=Sum("cpu_seconds"))
    run.status = RunStatus.LOST if status == AttemptStatus.INTERRUPTED else status
    run.status_reason = reason
    run.finished_at = now
    run.peak_memory_bytes = totals["peak"]
    run.cpu_seconds = totals["cpu"]
    run.save(
        update_fields=["status", "status_reason", "finished_at", "peak_memory_bytes", "cpu_seconds"]
    )


def run_cancel(*, run: Run, by: str, now: dt.datetime) -> bool:
    """Cancels a queued or running run. A running attempt learns it on its next heartbeat
    (within a second) and stops its function; the executor is told too. Returns False when
    the run had already ended."""
    with transaction.atomic():
        run = Run.objects.select_for_update().get(id=run.id)
        if run.status not in ACTIVE_RUN_STATUSES:
            return False
        run.cancel_requested_at = now
        run.save(update_fields=["cancel_requested_at"])
        pending = Attempt.objects.filter(run=run, status=AttemptStatus.QUEUED)
        pending.update(status=AttemptStatus.CANCELLED, finished_at=now, reason=f"cancelled by {by}")
        active = list(
            Attempt.objects.filter(
                run=run, status__in=(AttemptStatus.STARTING, AttemptStatus.RUNNING)
            )
        )
        if not active:
            _run_end(run=run, status=RunStatus.CANCELLED, reason=f"cancelled by {by}", now=now)
            return True
        run.status_reason = f"cancel requested by {by}"
        run.save(update_fields=["status_reason"])
        transaction.on_commit(lambda: _tell_executors([a.id for a in active]))
    return True


def _tell_executors(attempt_ids: list[int]) -> None:
    """Through a control worker: a cancel asked in a web request must not wait on a cluster's
    API, and on Kubernetes only workers hold an API token."""
    dispatch.tell_executors_of_cancel(attempt_ids)


def reap(*, now: dt.datetime) -> dict[str, int]:
    """1. Marks attempts whose heartbeat stopped as lost and applies the retry policy.
    2. Re-sends queued attempts whose start time passed long ago (a lost broker message)."""
    silence = dt.timedelta(seconds=settings.CHALK_HEARTBEAT_TIMEOUT_SECONDS)
    stale = Attempt.objects.filter(
        status__in=(AttemptStatus.STARTING, AttemptStatus.RUNNING),
        last_heartbeat_at__lt=now - silence,
    )
    lost = 0
    for attempt in stale.select_related("run"):
        reason = (
            f"no heartbeat for {int(silence.total_seconds())} seconds: the worker or node running "
            f"it ({attempt.executor_ref or 'unknown'}) stopped"
        )
        if attempt_finish(attempt=attempt, status=AttemptStatus.LOST, reason=reason, now=now):
            log_system(attempt=attempt, text=f"attempt lost: {reason}", now=now, level="ERROR")
            lost += 1
    resend_after = dt.timedelta(seconds=settings.CHALK_REDISPATCH_SECONDS)
    overdue = list(
        Attempt.objects.filter(
            status=AttemptStatus.QUEUED,
            not_before__lt=now - resend_after,
            dispatched_at__lt=now - resend_after,
        ).values_list("id", flat=True)[:1000]
    )
    Attempt.objects.filter(id__in=overdue, status=AttemptStatus.QUEUED).update(dispatched_at=now)
    attempts_dispatch([(attempt_id, now) for attempt_id in overdue])
    return {"lost": lost, "resent": len(overdue)}


def cancel_requested(attempt: Attempt) -> bool:
    return Run.objects.filter(id=attempt.run_id, cancel_requested_at__isnull=False).exists()

"""State changes of runs and attempts. Every entry point (tick, API, console, admin, tasks,
executors, runner API, reaper) goes through these, so a run's state machine lives in one place:

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
from django.db.models import F, Max, Q, Sum

from access.actor import Actor
from access.models import AuditAction
from access.rights import Right
from access.services import audit, authorize
from access.tokens import token_hash
from chalkcompute.retries import Retries
from runs import counts, dispatch
from runs.errors import NOT_DEPLOYED, NotDeployedError
from runs.logs import log_system
from runs.models import (
    Attempt,
    AttemptStatus,
    Backfill,
    Run,
    RunStatus,
    Trigger,
)
from scheduling.models import Function, FunctionVersion

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
K8S_CREATE_SECONDS = 0.05  # a Job and its token Secret, created by one worker


def prepare_lead(count: int) -> dt.timedelta:
    """How long before their start time workers take `count` attempts that start together.

    Preparing one costs the executor about a second; many prepare one after another, the
    local executor's by the machine's cores (CHALK_LOCAL_PREPARE_SECONDS each, measured by
    bench/burst.py), a Kubernetes Job by its pod's start (CHALK_K8S_LOOKAHEAD_SECONDS). So a
    slot of 200 functions is prepared early enough that every one of them waits for the slot,
    ready. Bounded by CHALK_MAX_PREPARE_SECONDS."""
    if settings.CHALK_EXECUTOR == "kubernetes":
        seconds = settings.CHALK_K8S_LOOKAHEAD_SECONDS + count * K8S_CREATE_SECONDS
    else:
        seconds = PREPARE_AHEAD.total_seconds() + count * settings.CHALK_LOCAL_PREPARE_SECONDS
    return dt.timedelta(seconds=min(seconds, settings.CHALK_MAX_PREPARE_SECONDS))


def attempts_dispatch(starts: list[tuple[int, dt.datetime]]) -> None:
    """Wakes runs workers for attempts starting at the given times, once the surrounding
    transaction commits.

    Workers pull: each wake-up message runs `runs.tasks.run_due_attempts`, which claims due
    attempts from the database one after another. So a tick of 10,000 functions sends a few
    messages per start time, not one per attempt (a message costs about a millisecond). The
    message arrives `prepare_lead` before the start time, so every run of a slot, however many
    share it, is ready at a worker when its slot comes.
    """
    per_start = Counter(start for _, start in starts)
    parallel = settings.CHALK_DISPATCH_PARALLELISM

    def send() -> None:
        for start, count in sorted(per_start.items()):
            lead = prepare_lead(count)
            for _ in range(min(count, parallel)):
                dispatch.wake_runs_worker(eta=start - lead, ahead=lead)

    if starts:
        transaction.on_commit(send)


def run_trigger(
    *, function: Function, trigger: str, actor: Actor, now: dt.datetime, rerun_of: int | None = None
) -> Run:
    """Run now (or re-run `rerun_of`): a manual run of the current version, started at once."""
    authorize(actor, Right.RUN)
    if function.current_version_id is None:
        raise NotDeployedError(NOT_DEPLOYED.format(name=function.name))
    with transaction.atomic():
        run = Run.objects.create(
            function=function,
            version=function.current_version,
            trigger=trigger,
            triggered_by=actor.name,
            triggered_by_user=actor.user,
            triggered_by_token=actor.token,
            scheduled_for=now,
            created_at=now,
        )
        attempt = attempt_new(run=run, number=1, now=now, not_before=now)
        attempt.save()
        attempts_dispatch([(attempt.id, now)])
        audit(
            actor=actor,
            action=AuditAction.RUN_NOW,
            now=now,
            function=function.name,
            target=f"run {run.id}",
            detail={"version": function.current_version.number}
            | ({"rerun_of": rerun_of} if rerun_of is not None else {}),
        )
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
            skipped = Run.objects.filter(id=run.id).update(
                status=RunStatus.SKIPPED, status_reason=reason, finished_at=now
            )
            counts.runs_finished([(run.function_id, RunStatus.SKIPPED)] * skipped)
            return None
        Run.objects.filter(
            id=attempt.run_id, status__in=(RunStatus.QUEUED, RunStatus.RETRYING)
        ).update(status=RunStatus.STARTING)
    return attempt, token


def _slot_no_longer_due(run: Run) -> str | None:
    """The tick creates runs ahead of their slot: a pause or a deploy in between still wins. A
    slot runs the version current when it is claimed; returns why it must not run when the
    function was paused, or redeployed with a schedule that no longer has the slot."""
    reason, current = _slot_verdict(run)
    if reason is None and current is not None:
        Run.objects.filter(id=run.id).update(version=current)
        run.version = current
    return reason


def _slot_verdict(run: Run) -> tuple[str | None, FunctionVersion | None]:
    """(why the run's slot must not run, or None; the version now current if it changed)."""
    function = run.function
    if run.trigger != Trigger.SCHEDULE:
        return None, None
    if function.paused:
        return f"the function was paused before this slot ({function.paused_reason})", None
    if function.current_version_id == run.version_id:
        return None, None
    current = FunctionVersion.objects.select_related("image").get(id=function.current_version_id)
    slot = run.scheduled_for
    schedule = current.fire_schedule
    if schedule is None or not schedule.fires_at(slot):
        written = "none" if schedule is None else schedule.cron
        if current.timezone:
            written += f", {current.timezone}"
        return (
            f"version {current.number} was deployed before this slot, and its schedule "
            f"({written}) does not include it"
        ), None
    return None, current


def prepared_attempt_skip(*, attempt: Attempt, now: dt.datetime) -> str | None:
    """A scheduled run's first attempt, taken by a worker ahead of its slot (its runner, or
    its Kubernetes Job, waits for it), whose slot a pause or a deploy has taken away since:
    skips the run, as the claim would have, and tells the executor (a Job made ahead is
    deleted). Returns why, when skipped. Asked on the runner's fetch and heartbeats before the
    slot, and by the reaper for attempts whose runner has not started yet.

    After the slot, only an attempt whose function has not begun (its runner has not fetched
    it: a pod still starting at the slot) is skipped, and only for a pause or a deploy made
    before the slot; a function already running is never stopped by one."""
    before_slot = now < attempt.not_before
    if attempt.number != 1 or not (before_slot or attempt.status == AttemptStatus.STARTING):
        return None
    run = attempt.run
    if run.trigger != Trigger.SCHEDULE or not (
        Function.objects.filter(id=run.function_id)
        .filter(Q(paused=True) | ~Q(current_version_id=run.version_id))
        .exists()
    ):
        return None  # nothing took the slot away: most calls end here, with no lock taken
    with transaction.atomic():
        run = Run.objects.select_for_update().select_related("function").get(id=attempt.run_id)
        reason, _ = _slot_verdict(run)
        if reason is None or not (before_slot or _decided_before_slot(run)):
            return None
        row = Attempt.objects.filter(id=attempt.id)
        still = row.active() if before_slot else row.filter(status=AttemptStatus.STARTING)
        ended = still.update(status=AttemptStatus.CANCELLED, finished_at=now, reason=reason)
        if not ended:
            return None
        skipped = (
            Run.objects.filter(id=run.id)
            .active()
            .update(status=RunStatus.SKIPPED, status_reason=reason, finished_at=now)
        )
        counts.runs_finished([(run.function_id, RunStatus.SKIPPED)] * skipped)
        attempt_id = attempt.id
        transaction.on_commit(lambda: _tell_executors([attempt_id]))
    return reason


def _decided_before_slot(run: Run) -> bool:
    """Whether the pause, or the deploy of the current version, that took the run's slot away
    was made before the slot."""
    function, slot = run.function, run.scheduled_for
    if function.paused:
        return function.paused_at is not None and function.paused_at < slot
    deployed = (
        FunctionVersion.objects.filter(id=function.current_version_id)
        .values_list("created_at", flat=True)
        .first()
    )
    return deployed is not None and deployed < slot


def prepared_attempts_recheck(*, now: dt.datetime) -> int:
    """Skips the prepared attempts (see prepared_attempt_skip) whose function was paused or
    redeployed; returns how many. The reaper's pass: a pod still starting has no runner to ask,
    and one still starting after its slot has none either."""
    changed = Attempt.objects.filter(
        Q(run__function__paused=True) | ~Q(run__function__current_version=F("run__version")),
        Q(not_before__gt=now) | Q(status=AttemptStatus.STARTING),
        status__in=(AttemptStatus.STARTING, AttemptStatus.RUNNING),
        number=1,
        run__trigger=Trigger.SCHEDULE,
    ).select_related("run__function")
    return sum(
        prepared_attempt_skip(attempt=attempt, now=now) is not None for attempt in changed[:1000]
    )


def attempt_claim_next(
    *, executor: str, executor_ref: str, now: dt.datetime, ahead: dt.timedelta = PREPARE_AHEAD
) -> tuple[Attempt, str] | None:
    """Claims the queued attempt that is due first (its start time is at most `ahead` away),
    if any."""
    while True:
        with transaction.atomic():
            # SKIP LOCKED: workers pulling at once take different attempts without waiting.
            attempt_id = (
                Attempt.objects.select_for_update(skip_locked=True)
                .filter(status=AttemptStatus.QUEUED, not_before__lte=now + ahead)
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
    """Keeps an attempt from looking lost while its worker has it: building its image, waiting
    for room, and (the local executor) while its runner lives, whether or not the runner
    reaches the web."""
    Attempt.objects.filter(id=attempt.id).active().update(last_heartbeat_at=now)


def attempt_begin(*, attempt: Attempt, now: dt.datetime) -> bool:
    """The runner fetched its attempt: the function runs at its start time (at once for a
    retry or a manual run; on the slot for a scheduled run prepared ahead)."""
    started = max(now, attempt.not_before)
    with transaction.atomic():
        begun = Attempt.objects.filter(id=attempt.id, status=AttemptStatus.STARTING).update(
            status=AttemptStatus.RUNNING, started_at=started, last_heartbeat_at=now
        )
        if begun:
            Run.objects.filter(id=attempt.run_id).active().update(status=RunStatus.RUNNING)
            # A run's start is its first attempt's start; retries keep it.
            Run.objects.filter(id=attempt.run_id, started_at__isnull=True).update(
                started_at=started
            )
    return bool(begun)


def attempt_runner_spawned(*, attempt: Attempt, executor_ref: str) -> None:
    """Records where the local executor's runner process runs ("pid N on host")."""
    # No status guard: a quick runner may fetch, and even finish, its attempt before this
    # line, and where it ran still belongs on the attempt.
    Attempt.objects.filter(id=attempt.id).update(executor_ref=executor_ref)


def attempt_awaiting_image(*, attempt: Attempt, build_ref: str) -> bool:
    """The attempt waits for its image build: records the build in `executor_ref`, so the
    Kubernetes reconcile pass creates its Job once the image is pushed. False when the
    attempt is no longer starting (it ended while the build was being started)."""
    return bool(
        Attempt.objects.filter(id=attempt.id, status=AttemptStatus.STARTING).update(
            executor_ref=build_ref
        )
    )


def attempt_dispatched(*, attempt: Attempt, executor_ref: str, now: dt.datetime) -> bool:
    """The executor handed the attempt to the cluster (its Job, named `executor_ref`), at
    `now`, recorded in `dispatched_at`: pending timeouts count from there. False when the
    attempt ended meanwhile (a cancel): the caller then removes what it made."""
    # RUNNING too: the pod may start, and its runner fetch the attempt, before this line.
    return bool(
        Attempt.objects.filter(
            id=attempt.id, status__in=(AttemptStatus.STARTING, AttemptStatus.RUNNING)
        ).update(executor_ref=executor_ref, dispatched_at=now)
    )


def attempt_token_renew(*, attempt: Attempt) -> str:
    """A new runner token for an attempt whose first one never reached a runner (it was
    handed to an executor that had to wait for an image build); only its hash is stored.

    No status guard: the caller holds the attempt's row lock and checked, under it, that the
    attempt still waits to start."""
    token, hashed = attempt_token()
    Attempt.objects.filter(id=attempt.id).update(token_hash=hashed)
    return token


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
    return_value: object = None,
    return_format: str = "",
) -> bool:
    """Ends an attempt once (a second report is ignored), then its run or its next retry.
    `retryable=False` ends the run whatever its retry policy: another attempt could not go
    better (a bad image reference, a spec the cluster cannot run, a failed image build).
    A run that succeeds keeps what its function returned (`return_value` in `return_format`,
    chalkcompute/runtime/returns.py), masked and within the cap: the runner API checks it."""
    with transaction.atomic():
        fields = dict(
            status=status, finished_at=now, reason=reason[:10_000], exit_code=exit_code,
            error_type=error_type[:255], error_message=error_message[:100_000],
            traceback=traceback[:200_000], counts_against_retries=counts_against_retries,
        )  # fmt: skip
        if log_truncated:  # a runner's report adds to the server's own count, never undoes it
            fields["log_truncated"] = True
        if peak_memory_bytes is not None:
            fields["peak_memory_bytes"] = peak_memory_bytes
        if cpu_seconds is not None:
            fields["cpu_seconds"] = cpu_seconds
        ended = Attempt.objects.filter(id=attempt.id).active().update(**fields)
        if not ended:
            return False
        run = Run.objects.select_for_update().select_related("version").get(id=attempt.run_id)
        summary = _summary(reason, error_type, error_message)
        retry = retryable and status in RETRYABLE and run.cancel_requested_at is None
        if retry and _retry(run=run, ended=attempt, status=status, summary=summary, now=now):
            return True
        if run.cancel_requested_at is not None:
            status = RunStatus.CANCELLED
        if status == RunStatus.SUCCEEDED:
            run.return_value, run.return_format = return_value, return_format
        _run_end(run=run, status=status, reason=summary, now=now)
    return True


def attempt_fail(
    *, attempt: Attempt, reason: str, now: dt.datetime, retryable: bool = True
) -> bool:
    """An executor could not run the attempt: fails it with `reason`, also written to its log
    as a system ERROR line (unless the attempt had ended already). `retryable=False` ends the
    run whatever its retry policy: another attempt could not go better."""
    ended = attempt_finish(
        attempt=attempt, status=AttemptStatus.FAILED, reason=reason, now=now, retryable=retryable
    )
    if ended:
        log_system(attempt=attempt, text=reason, now=now, level="ERROR")
    return ended


def attempt_cancel_if_requested(*, attempt: Attempt, now: dt.datetime) -> bool:
    """An executor's check before it starts a runner: a cancel asked for while the attempt
    waited (for a worker, or for its image build on the local executor) ends it. True when
    the run's cancel was asked for: the executor then starts nothing."""
    if not cancel_requested(attempt):
        return False
    attempt_finish(
        attempt=attempt,
        status=AttemptStatus.CANCELLED,
        now=now,
        reason="cancelled before it started",
    )
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
        update_fields=[
            "status", "status_reason", "finished_at", "peak_memory_bytes", "cpu_seconds",
            "return_value", "return_format",
        ]
    )  # fmt: skip
    counts.runs_finished([(run.function_id, run.status)])
    run_id, backfill_id = run.id, run.backfill_id
    transaction.on_commit(lambda: dispatch.tell_alerts_run_ended(run_id))
    if backfill_id is not None:  # its backfill may start its next slot now
        transaction.on_commit(lambda: dispatch.advance_backfill(backfill_id))


def run_cancel(*, run: Run, actor: Actor, now: dt.datetime) -> bool:
    """Cancels a queued or running run. A running attempt learns it on its next heartbeat
    (within a second) and stops its function; the executor is told too. Returns False when
    the run had already ended."""
    authorize(actor, Right.RUN)
    by = actor.name
    with transaction.atomic():
        run = Run.objects.select_for_update().select_related("function").get(id=run.id)
        if not run.is_active:
            return False
        audit(
            actor=actor,
            action=AuditAction.CANCEL,
            now=now,
            function=run.function.name,
            target=f"run {run.id}",
            detail={"before": run.status},
        )
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
    2. Re-sends queued attempts whose start time passed long ago (a lost broker message).
    3. Skips attempts prepared ahead whose slot a pause or a deploy took away."""
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
    skipped = prepared_attempts_recheck(now=now)
    return {"lost": lost, "resent": len(overdue), "skipped_ahead": skipped}


RESTORED = (
    "restored from a backup: this run was in flight when the backup was taken; it may or may "
    "not have finished before the disaster, so it is not run again"
)


def after_restore(
    *, now: dt.datetime
) -> tuple[Counter, list[tuple[str, dt.datetime, dt.datetime]]]:
    """Makes a restored database safe to start, before beat and the workers do (manage.py
    after_restore). A run active in the dump may have run to its end on the lost database:
    started again it would run its slot twice and make the next slot skip for overlap, so it
    ends `lost`, never retried. A function whose next slot has passed moves to its first slot
    after `now`, as a resume does: the slots since the backup may have run already, so the tick
    catches none up. All or nothing, and idempotent: a second call finds nothing to do and
    records no audit event. Returns the runs ended per function, and (name, from, to) for each
    function moved."""
    fenced: Counter = Counter()
    moved = []
    with transaction.atomic():
        active = Run.objects.active().select_related("function")
        for run in active.order_by("id"):
            for attempt in run.attempts.active():
                lost = attempt_finish(
                    attempt=attempt, status=AttemptStatus.LOST, reason=RESTORED, now=now,
                    retryable=False,
                )  # fmt: skip
                if lost:
                    text = f"attempt lost: {RESTORED}"
                    log_system(attempt=attempt, text=text, now=now, level="ERROR")
            fenced[run.function.name] += 1
            run = Run.objects.select_for_update().get(id=run.id)
            if run.is_active:  # it had no active attempt to end it
                _run_end(run=run, status=RunStatus.LOST, reason=RESTORED, now=now)
        passed = (
            Function.objects.select_for_update(of=("self",))
            .filter(current_version__cron__isnull=False)
            .due(now)
        )
        for function in passed.select_related("current_version").order_by("name"):
            slot = function.next_slot_after(now)
            moved.append((function.name, function.next_fire_at, slot))
            function.next_fire_at = slot
            function.save(update_fields=["next_fire_at"])
        if fenced or moved:
            audit(
                actor=Actor.platform(),
                action=AuditAction.RESTORE,
                now=now,
                target="after_restore",
                detail={"runs_lost": dict(fenced), "functions_moved": len(moved)},
            )
    return fenced, moved


def runs_prune(*, before: dt.datetime, batch: int = 10_000) -> int:
    """Deletes runs that finished before `before`, with their attempts, log lines and usage
    samples, and backfills that finished before it; returns how many runs.

    `batch` runs at a time: their ids first, then one delete by id per batch, so a retention
    window of millions of runs never becomes one statement holding its locks (and Django's
    cascade collecting the attempts in memory) for minutes."""
    deleted = 0
    while True:
        ids = list(
            Run.objects.filter(finished_at__lt=before)
            .order_by("id")
            .values_list("id", flat=True)[:batch]
        )
        if not ids:
            Backfill.objects.filter(finished_at__lt=before).delete()
            return deleted
        Run.objects.filter(id__in=ids).delete()
        deleted += len(ids)


def cancel_requested(attempt: Attempt) -> bool:
    return Run.objects.filter(id=attempt.run_id, cancel_requested_at__isnull=False).exists()

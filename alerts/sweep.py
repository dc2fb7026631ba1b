"""The sweep (alerts.tasks.sweep, every few seconds from beat) looks for what no run's end says:
a slot whose run has not started `late_after` after the slot ("late", once, reminded, and
"recovered" when runs start again), a run still running `running_after` after it started
(once per run) and slots the scheduler skipped (reminded at most every `remind_every`); and, as
a backstop, failed runs whose end the alerts never heard of."""

import datetime as dt

from django.db import transaction
from django.db.models import Exists, OuterRef, Q

from alerts.models import AlertKind, AlertState, Delivery
from alerts.rules import Rules, rules_of, rules_of_function
from alerts.services import (
    FAILED,
    function_payload,
    locked_state,
    queue_alert,
    run_ended,
    run_payload,
)
from chalkcompute.words import spelled_duration
from runs.models import Attempt, Run, RunStatus, Trigger
from scheduling.models import Function

# The shortest late_after and running_after a rule may have (chalkcompute.alerts): the sweep's
# queries take every candidate past it, then each function's own rule decides.
SHORTEST_RULE = dt.timedelta(seconds=10)
# Skipped slots are looked at while this recent: a sweep runs every few seconds.
SKIPS_LOOKED_AT = dt.timedelta(minutes=10)
NOT_STARTED = (RunStatus.QUEUED, RunStatus.STARTING)
# A failure the alerts never heard of (its message lost with the broker) is taken up by the
# sweep once it is this old, and while it is this recent.
ENDS_MISSED_AFTER = dt.timedelta(seconds=30)
ENDS_LOOKED_AT = dt.timedelta(minutes=30)


def sweep(*, now: dt.datetime) -> list[Delivery]:
    """Late slots, runs still running, skipped slots and run ends never heard of; the
    deliveries it queued."""
    return [
        *_sweep_late(now),
        *_sweep_long_runs(now),
        *_sweep_skipped(now),
        *_sweep_missed_ends(now),
    ]


def _sweep_missed_ends(now: dt.datetime) -> list[Delivery]:
    """The backstop of alerts.tasks.run_ended: a failed run that ended without its function's
    state hearing of it (nor of any later end) gets the rule applied now. Failures only: they
    are few (the status index finds them), and a success whose message was lost only delays
    "recovered" to the next success."""
    heard = AlertState.objects.filter(
        function_id=OuterRef("function_id"), last_finished_at__gte=OuterRef("finished_at")
    )
    missed = (
        Run.objects.filter(
            status__in=FAILED,
            finished_at__gte=now - ENDS_LOOKED_AT,
            finished_at__lte=now - ENDS_MISSED_AFTER,
        )
        .filter(~Exists(heard))
        .order_by("finished_at")
        .values_list("id", flat=True)
    )
    return [delivery for run_id in missed for delivery in run_ended(run_id=run_id, now=now)]


def _late_slots(now: dt.datetime) -> dict[int, dt.datetime]:
    """function id -> its earliest slot, at least SHORTEST_RULE old, that has no started run:
    a slot the tick has not turned into a run (beat down: next_fire_at is behind), or a
    scheduled run still waiting for a worker (workers down, queue stuck)."""
    before = now - SHORTEST_RULE
    slots = dict(Function.objects.due(before).values_list("id", "next_fire_at"))
    waiting = (
        Run.objects.filter(
            trigger=Trigger.SCHEDULE,
            status__in=NOT_STARTED,
            started_at__isnull=True,
            scheduled_for__lte=before,
            function__paused=False,
        )
        .order_by("scheduled_for")
        .values_list("function_id", "scheduled_for")
    )
    for function_id, slot in waiting:
        slots[function_id] = min(slot, slots.get(function_id, slot))
    return slots


def _late_change(state: AlertState | None, rules: Rules, slot, now: dt.datetime) -> str | None:
    """What the sweep does for one function: "late" (alert or remind), "on_time" (it was late,
    and now is not), or None."""
    late_since = state.late_since if state is not None else None
    is_late = slot is not None and rules.late_after is not None and now - slot >= rules.late_after
    if is_late:
        alerted = state.late_alerted_at if state is not None else None
        if late_since is None or alerted is None or now - alerted >= rules.remind_every:
            return "late"
        return None
    return "on_time" if late_since is not None else None


def _sweep_late(now: dt.datetime) -> list[Delivery]:
    deliveries = []
    late = _late_slots(now)
    states = AlertState.objects.filter(Q(function_id__in=late) | Q(late_since__isnull=False))
    states = {state.function_id: state for state in states}
    functions = Function.objects.select_related("current_version").in_bulk(late.keys() | states)
    for function_id, function in functions.items():
        rules, slot = rules_of_function(function), late.get(function_id)
        if _late_change(states.get(function_id), rules, slot, now) is None:
            continue  # read without a lock; checked again under it
        with transaction.atomic():
            state = locked_state(function_id)
            change = _late_change(state, rules, slot, now)
            if change == "late":
                state.late_since = state.late_since or slot
                state.late_alerted_at = now
                why = (
                    "no run was created for it (is beat running? see the Platform page)"
                    if slot == function.next_fire_at
                    else "it waits for a runs worker (are the workers running? see the Platform "
                    "page)"
                )
                reason = (
                    f"the run of the {slot:%Y-%m-%d %H:%M:%S} UTC slot has not started "
                    f"{spelled_duration(now - slot)} after it: {why}"
                )
                payload = function_payload(
                    kind=AlertKind.LATE, function=function, reason=reason, now=now
                )
                deliveries += queue_alert(
                    function=function, rules=rules, run=None, payload=payload, now=now
                )
            elif change == "on_time":
                if rules.on_recovery and rules.late_after is not None and not function.paused:
                    reason = (
                        "runs start on time again; slots were late from "
                        f"{state.late_since:%Y-%m-%d %H:%M:%S} UTC"
                    )
                    payload = function_payload(
                        kind=AlertKind.RECOVERED, function=function, reason=reason, now=now
                    )
                    deliveries += queue_alert(
                        function=function, rules=rules, run=None, payload=payload, now=now
                    )
                state.late_since = state.late_alerted_at = None
            state.save(update_fields=["late_since", "late_alerted_at"])
    return deliveries


def _sweep_long_runs(now: dt.datetime) -> list[Delivery]:
    deliveries = []
    running = Run.objects.filter(
        status=RunStatus.RUNNING, started_at__lte=now - SHORTEST_RULE
    ).select_related("function", "version")
    told = dict(
        AlertState.objects.filter(long_run_id__isnull=False).values_list(
            "function_id", "long_run_id"
        )
    )
    for run in running.order_by("id"):
        rules = rules_of(run.version.alerts)
        if rules.running_after is None or now - run.started_at < rules.running_after:
            continue
        if run.id <= told.get(run.function_id, 0):
            continue
        with transaction.atomic():
            state = locked_state(run.function_id)
            if state.long_run_id is not None and run.id <= state.long_run_id:
                continue
            state.long_run_id = run.id
            state.save(update_fields=["long_run_id"])
            reason = (
                f"still running {spelled_duration(now - run.started_at)} after it started "
                f"(the rule: {spelled_duration(rules.running_after)})"
            )
            payload = run_payload(
                kind=AlertKind.STILL_RUNNING, run=run, failures=0, now=now, reason=reason
            )
            deliveries += queue_alert(
                function=run.function, rules=rules, run=run, payload=payload, now=now
            )
    return deliveries


def _sweep_skipped(now: dt.datetime) -> list[Delivery]:
    """Slots the scheduler skipped: a run it recorded as skipped (the previous run still active,
    or past the catch-up window after downtime), or a run after downtime that counts missed
    slots. A run skipped at start because of a pause or a deploy has an attempt: those were a
    person's choice and say nothing."""
    deliveries = []
    skipped = (
        Run.objects.filter(trigger=Trigger.SCHEDULE, created_at__gte=now - SKIPS_LOOKED_AT)
        .filter(
            (Q(status=RunStatus.SKIPPED) & ~Exists(Attempt.objects.filter(run=OuterRef("pk"))))
            | Q(missed_slots__gt=0)
        )
        .select_related("function", "version")
        .order_by("id")
    )
    seen = dict(
        AlertState.objects.filter(skipped_run_id__isnull=False).values_list(
            "function_id", "skipped_run_id"
        )
    )
    by_function: dict[int, list[Run]] = {}
    for run in skipped:
        if run.id > seen.get(run.function_id, 0) and rules_of(run.version.alerts).on_skip:
            by_function.setdefault(run.function_id, []).append(run)
    for function_id, runs in by_function.items():
        run = runs[-1]
        rules = rules_of(run.version.alerts)
        with transaction.atomic():
            state = locked_state(function_id)
            runs = [r for r in runs if state.skipped_run_id is None or r.id > state.skipped_run_id]
            if not runs:
                continue
            state.skipped_run_id = runs[-1].id
            remind = (
                state.skip_alerted_at is None or now - state.skip_alerted_at >= rules.remind_every
            )
            if remind:
                state.skip_alerted_at = now
                slots = sum(
                    (1 if r.status == RunStatus.SKIPPED else 0) + r.missed_slots for r in runs
                )
                reason = f"{slots} slot{'s' * (slots > 1)} skipped: {run.status_reason}"
                payload = run_payload(
                    kind=AlertKind.SKIPPED, run=run, failures=0, now=now, reason=reason
                )
                deliveries += queue_alert(
                    function=run.function, rules=rules, run=run, payload=payload, now=now
                )
            state.save(update_fields=["skipped_run_id", "skip_alerted_at"])
    return deliveries

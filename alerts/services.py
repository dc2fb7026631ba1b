"""What a run's end decides, and the delivery of every alert. The rules are alerts/rules.py (the
version's `alerts=`, else the server's defaults); the channels are alerts/channels.py.

A run's end reaches `run_ended` through the alerts.tasks.run_ended task (runs.dispatch sends it
by name after the commit). A run that ends failed, timed_out or lost (after its last retry: a
run's status is final) counts a failure; at `after_failures` in a row the channels get one
"failed" alert, then at most one reminder every `remind_every` while it keeps failing; the
first success after that alert sends one "recovered". What no run's end says (late slots, long
runs, skipped slots) is alerts/sweep.py's. Each alert is a Delivery per channel, sent by the
alerts.tasks.deliver task after the commit (`deliver`).
"""

import datetime as dt

from django.conf import settings
from django.db import transaction

from access.actor import Actor
from access.models import AuditAction
from access.rights import Right
from access.services import audit, authorize
from alerts import senders
from alerts.channels import channel_address, channels_of
from alerts.models import AlertKind, AlertState, Channel, ChannelKind, Delivery
from alerts.rules import Rules, rules_of
from runs.models import LogLine, Run, RunStatus
from scheduling.models import Function

FAILED = (RunStatus.FAILED, RunStatus.TIMED_OUT, RunStatus.LOST)
LOG_TAIL_LINES = 20
DELIVER = "alerts.tasks.deliver"


def _log_tail(run: Run) -> list[str]:
    lines = LogLine.objects.filter(attempt__run=run).order_by("-attempt__number", "-seq")
    return [line.text for line in reversed(lines[:LOG_TAIL_LINES].only("text"))]


def _console_url(path: str) -> str:
    return f"{settings.CHALK_PUBLIC_URL.rstrip('/')}{path}"


def run_payload(
    *, kind: str, run: Run, failures: int, now: dt.datetime, reason: str | None = None
) -> dict:
    """An alert about one run (its last log lines when it failed or runs long)."""
    return {
        "kind": kind,
        "function": run.function.name,
        "run": run.id,
        "status": run.status,
        "reason": run.status_reason if reason is None else reason,
        "failures": failures,
        "log_tail": _log_tail(run) if kind in (AlertKind.FAILED, AlertKind.STILL_RUNNING) else [],
        "console_url": _console_url(f"/runs/{run.id}"),
        "sent_at": now.isoformat(),
    }


def function_payload(*, kind: str, function: Function, reason: str, now: dt.datetime) -> dict:
    """An alert about a function rather than one run (a slot with no run yet)."""
    return {
        "kind": kind,
        "function": function.name,
        "run": None,
        "status": "",
        "reason": reason,
        "failures": 0,
        "log_tail": [],
        "console_url": _console_url(f"/functions/{function.name}"),
        "sent_at": now.isoformat(),
    }


def queue_alert(
    *, function: Function, rules: Rules, run: Run | None, payload: dict, now: dt.datetime
) -> list[Delivery]:
    """Queues the alert to each of the function's channels (sent after the commit)."""
    return [
        _queue(channel=channel, function=function, run=run, payload=payload, now=now)
        for channel in channels_of(function, rules)
    ]


def _queue(
    *, channel: Channel, function: Function | None, run: Run | None, payload: dict, now
) -> Delivery:
    delivery = Delivery.objects.create(
        channel=channel,
        channel_name=channel.name,
        function=function,
        run=run,
        kind=payload["kind"],
        payload=payload,
        at=now,
    )
    transaction.on_commit(lambda: _send_task(delivery.id))
    return delivery


def _send_task(delivery_id: int) -> None:
    from celery import current_app

    current_app.signature(DELIVER).apply_async(args=[delivery_id])


def channel_test(*, channel: Channel, actor: Actor, now: dt.datetime) -> Delivery:
    """Sends a test alert to the channel (through a control worker)."""
    authorize(actor, Right.RUN)
    payload = {
        "kind": AlertKind.TEST.value,
        "function": "",
        "run": None,
        "status": "",
        "reason": f"a test alert sent by {actor.name}",
        "log_tail": [],
        "console_url": f"{settings.CHALK_PUBLIC_URL.rstrip('/')}/channels",
        "sent_at": now.isoformat(),
    }
    with transaction.atomic():
        audit(
            actor=actor,
            action=AuditAction.CHANNEL_TEST,
            now=now,
            target=f"channel {channel.name}",
        )
        delivery = _queue(channel=channel, function=None, run=None, payload=payload, now=now)
    return delivery


def _decide(state: AlertState, run: Run, rules: Rules, now: dt.datetime) -> str | None:
    """Moves the state for the run's end; the alert to send, if any."""
    if run.status in FAILED:
        state.consecutive_failures += 1
        if state.consecutive_failures < rules.after_failures:
            return None
        if state.state == AlertState.State.OK:
            state.state = AlertState.State.FAILING
            return AlertKind.FAILED
        if state.last_alerted_at is None or now - state.last_alerted_at >= rules.remind_every:
            return AlertKind.FAILED
        return None
    if run.status == RunStatus.SUCCEEDED:
        state.consecutive_failures = 0
        if state.state == AlertState.State.FAILING:
            state.state = AlertState.State.OK
            return AlertKind.RECOVERED if rules.on_recovery else None
    return None  # cancelled (or skipped): neither a failure nor a recovery


def locked_state(function_id: int) -> AlertState:
    """The function's state, locked: run_ended and the sweep never move it at once."""
    AlertState.objects.get_or_create(function_id=function_id)
    return AlertState.objects.select_for_update().get(function_id=function_id)


def run_ended(*, run_id: int, now: dt.datetime) -> list[Delivery]:
    """Applies the rule to a run that ended; the deliveries it queued."""
    run = Run.objects.select_related("function", "version").filter(id=run_id).first()
    if run is None or run.status not in (*FAILED, RunStatus.SUCCEEDED):
        return []
    rules = rules_of(run.version.alerts)
    with transaction.atomic():
        state = locked_state(run.function_id)
        ended = run.finished_at or now
        if state.last_run_id == run.id:
            return []  # told twice (a message delivered again, or the sweep's backstop)
        if state.last_finished_at is not None and ended < state.last_finished_at:
            return []  # an older run ending late (overlapping runs): the state moved on
        kind = _decide(state, run, rules, now)
        state.last_run_id, state.last_finished_at = run.id, ended
        deliveries = []
        if kind is not None:
            state.last_alerted_at = now
            payload = run_payload(kind=kind, run=run, failures=state.consecutive_failures, now=now)
            deliveries = queue_alert(
                function=run.function, rules=rules, run=run, payload=payload, now=now
            )
        state.save()
    return deliveries


def deliver(*, delivery: Delivery, now: dt.datetime, last_try: bool) -> None:
    """One try of one delivery. Raises RetryableDeliveryError when another try may do better
    (and this one is not the last): the delivery stays pending with the error. `answer` keeps
    a fixed short reason ("HTTP 200", "timed out", "refused: loopback address"), never what the
    other end said."""
    channel = delivery.channel
    delivery.tries += 1
    try:
        if channel is None:
            raise senders.DeliveryError("the channel was deleted")
        url, secret = channel_address(channel)
        if channel.kind == ChannelKind.WEBHOOK:
            answer = senders.send_webhook(
                url=url, secret=secret, payload=delivery.payload, delivery_id=delivery.id
            )
        else:
            answer = senders.send_apprise(url=url, payload=delivery.payload)
    except senders.RetryableDeliveryError as exc:
        delivery.answer = str(exc)
        if not last_try:
            delivery.save(update_fields=["tries", "answer"])
            raise
        delivery.status = "failed"
    except senders.DeliveryError as exc:
        delivery.answer, delivery.status = str(exc), "failed"
    else:
        delivery.answer, delivery.status, delivery.sent_at = answer, "sent", now
    delivery.save(update_fields=["tries", "answer", "status", "sent_at"])


def deliveries_prune(*, before: dt.datetime) -> int:
    """Deletes deliveries decided before `before`; returns how many."""
    deleted, _ = Delivery.objects.filter(at__lt=before).delete()
    return deleted

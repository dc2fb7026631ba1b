"""Channels (create, delete, test) and the alert rule. A run's end reaches `run_ended`
through the alerts.tasks.run_ended task (runs.dispatch sends it by name after the commit).

The rule, per function: a run that ends failed, timed_out or lost (after its last retry: a
run's status is final) counts a failure; at CHALK_ALERT_AFTER_FAILURES failures in a row the
function's channels get one "failed" alert, then at most one reminder every
CHALK_ALERT_REMIND_SECONDS while it keeps failing; the first success after that alert sends
one "recovered". A function's channels are those chosen for it, else every default channel.
"""

import datetime as dt
import secrets
from urllib.parse import urlsplit

from django.conf import settings
from django.db import IntegrityError, transaction
from django.db.models import Exists, OuterRef, Q

from access.actor import Actor
from access.models import AuditAction
from access.rights import Right
from access.services import audit, authorize
from alerts import senders
from alerts.models import AlertKind, AlertState, Channel, ChannelKind, Delivery
from common.errors import ServiceError
from runs.models import LogLine, Run, RunStatus
from scheduling.crypto import decrypt, encrypt
from scheduling.models import Function

FAILED = (RunStatus.FAILED, RunStatus.TIMED_OUT, RunStatus.LOST)
LOG_TAIL_LINES = 20
DELIVER = "alerts.tasks.deliver"


class AlertsError(ServiceError):
    pass


class ChannelExistsError(AlertsError):
    code = "conflict"
    status = 409


def functions_named(names: list[str]) -> list[Function]:
    names = sorted({name.strip() for name in names if name.strip()})
    found = {f.name: f for f in Function.objects.filter(name__in=names)}
    missing = [name for name in names if name not in found]
    if missing:
        raise AlertsError(f"There is no function named {', '.join(missing)}.")
    return list(found.values())


def display_of(url: str) -> str:
    """Scheme and host, and the scheme alone when the "host" is a token (slack://TOKEN/…,
    tgram://BOT_TOKEN/…): only a name with a dot, localhost or an IPv6 address is shown."""
    parts = urlsplit(url)
    try:
        host = parts.hostname or ""
    except ValueError:
        host = ""
    if host and ("." in host or ":" in host or host == "localhost"):
        return f"{parts.scheme}://{host}"
    return f"{parts.scheme}://…"


def _check(name: str, kind: str, url: str) -> None:
    if not name.strip() or len(name) > 100:
        raise AlertsError("A channel needs a name of 1 to 100 characters.")
    if kind not in ChannelKind.values:
        raise AlertsError(f"A channel's kind is one of: {', '.join(ChannelKind.values)}.")
    if kind == ChannelKind.WEBHOOK:
        parts = urlsplit(url)
        if parts.scheme not in ("http", "https") or not parts.hostname:
            raise AlertsError("A webhook's URL is an http:// or https:// URL.")
    elif not senders.check_apprise_url(url):
        raise AlertsError(
            "Apprise does not accept this URL; see https://github.com/caronc/apprise/wiki for "
            "the URL of each service (slack://, discord://, mailto://, ntfy://, json://, …)."
        )


def channel_create(
    *,
    name: str,
    kind: str,
    url: str,
    actor: Actor,
    now: dt.datetime,
    is_default: bool = False,
    functions: list[Function] = (),
) -> tuple[Channel, str]:
    """(channel, its webhook signing secret: shown once, never again)."""
    authorize(actor, Right.RUN)
    name, url = name.strip(), url.strip()
    _check(name, kind, url)
    secret = secrets.token_urlsafe(32)
    try:
        with transaction.atomic():
            channel = Channel.objects.create(
                name=name,
                kind=kind,
                url_encrypted=encrypt(url),
                display=display_of(url),
                secret_encrypted=encrypt(secret),
                is_default=is_default,
                created_at=now,
                created_by=actor.name,
            )
            channel.functions.set(functions)
            audit(
                actor=actor,
                action=AuditAction.CHANNEL_CREATE,
                now=now,
                target=f"channel {name}",
                detail={
                    "kind": kind,
                    "url": channel.display,
                    "default": is_default,
                    "functions": sorted(f.name for f in functions),
                },
            )
    except IntegrityError:
        raise ChannelExistsError(f"There is a channel named {name!r} already.") from None
    return channel, secret


def channel_delete(*, channel: Channel, actor: Actor, now: dt.datetime) -> None:
    authorize(actor, Right.RUN)
    with transaction.atomic():
        audit(
            actor=actor,
            action=AuditAction.CHANNEL_DELETE,
            now=now,
            target=f"channel {channel.name}",
            detail={"kind": channel.kind, "url": channel.display},
        )
        channel.delete()


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


def channels_of(function: Function) -> list[Channel]:
    """The channels chosen for the function, else every default channel (one query)."""
    chosen = Exists(
        Channel.functions.through.objects.filter(channel=OuterRef("pk"), function=function)
    )
    channels = list(
        Channel.objects.annotate(chosen=chosen).filter(Q(chosen=True) | Q(is_default=True))
    )
    return [c for c in channels if c.chosen] or channels


def _log_tail(run: Run) -> list[str]:
    lines = LogLine.objects.filter(attempt__run=run).order_by("-attempt__number", "-seq")
    return [line.text for line in reversed(lines[:LOG_TAIL_LINES].only("text"))]


def _payload(*, kind: str, run: Run, failures: int, now: dt.datetime) -> dict:
    return {
        "kind": kind,
        "function": run.function.name,
        "run": run.id,
        "status": run.status,
        "reason": run.status_reason,
        "failures": failures,
        "log_tail": _log_tail(run) if kind == AlertKind.FAILED else [],
        "console_url": f"{settings.CHALK_PUBLIC_URL.rstrip('/')}/runs/{run.id}",
        "sent_at": now.isoformat(),
    }


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


def _decide(state: AlertState, run: Run, now: dt.datetime) -> str | None:
    """Moves the state for the run's end; the alert to send, if any."""
    if run.status in FAILED:
        state.consecutive_failures += 1
        if state.consecutive_failures < max(1, settings.CHALK_ALERT_AFTER_FAILURES):
            return None
        if state.state == AlertState.State.OK:
            state.state = AlertState.State.FAILING
            return AlertKind.FAILED
        remind = dt.timedelta(seconds=settings.CHALK_ALERT_REMIND_SECONDS)
        if state.last_alerted_at is None or now - state.last_alerted_at >= remind:
            return AlertKind.FAILED
        return None
    if run.status == RunStatus.SUCCEEDED:
        state.consecutive_failures = 0
        if state.state == AlertState.State.FAILING:
            state.state = AlertState.State.OK
            return AlertKind.RECOVERED
    return None  # cancelled (or skipped): neither a failure nor a recovery


def run_ended(*, run_id: int, now: dt.datetime) -> list[Delivery]:
    """Applies the rule to a run that ended; the deliveries it queued."""
    run = Run.objects.select_related("function").filter(id=run_id).first()
    if run is None or run.status not in (*FAILED, RunStatus.SUCCEEDED):
        return []
    with transaction.atomic():
        AlertState.objects.get_or_create(function_id=run.function_id)
        state = AlertState.objects.select_for_update().get(function_id=run.function_id)
        ended = run.finished_at or now
        if state.last_finished_at is not None and ended < state.last_finished_at:
            return []  # an older run ending late (overlapping runs): the state moved on
        kind = _decide(state, run, now)
        state.last_run_id, state.last_finished_at = run.id, ended
        deliveries = []
        if kind is not None:
            state.last_alerted_at = now
            payload = _payload(kind=kind, run=run, failures=state.consecutive_failures, now=now)
            for channel in channels_of(run.function):
                deliveries.append(
                    _queue(
                        channel=channel, function=run.function, run=run, payload=payload, now=now
                    )
                )
        state.save()
    return deliveries


def deliver(*, delivery: Delivery, now: dt.datetime, last_try: bool) -> None:
    """One try of one delivery. Raises RetryableDeliveryError when another try may do better
    (and this one is not the last): the delivery stays pending with the error."""
    channel = delivery.channel
    delivery.tries += 1
    try:
        if channel is None:
            raise senders.DeliveryError("the channel was deleted")
        url = decrypt(channel.url_encrypted)
        if channel.kind == ChannelKind.WEBHOOK:
            answer = senders.send_webhook(
                url=url,
                secret=decrypt(channel.secret_encrypted),
                payload=delivery.payload,
                delivery_id=delivery.id,
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

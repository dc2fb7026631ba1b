"""Channels (create, delete, test) and the alert rules (alerts/rules.py: the version's
`alerts=`, else the server's defaults). A function's channels are those its code names and
those chosen for it on the Channels page, else every default channel.

- Failure: a run's end reaches `run_ended` through the alerts.tasks.run_ended task (runs.dispatch
  sends it by name after the commit). A run that ends failed, timed_out or lost (after its last
  retry: a run's status is final) counts a failure; at `after_failures` in a row the channels
  get one "failed" alert, then at most one reminder every `remind_every` while it keeps failing;
  the first success after that alert sends one "recovered".
- `sweep` (alerts.tasks.sweep, every few seconds from beat) looks for what no run's end says:
  a slot whose run has not started `late_after` after the slot ("late", once, reminded, and
  "recovered" when runs start again), a run still running `running_after` after it started
  (once per run) and slots the scheduler skipped (reminded at most every `remind_every`).
"""

import datetime as dt
import secrets
from urllib.parse import parse_qs, urlsplit

from django.conf import settings
from django.db import IntegrityError, transaction
from django.db.models import Exists, OuterRef, Q

from access.actor import Actor
from access.models import AuditAction
from access.rights import Right
from access.services import audit, authorize
from alerts import destinations, senders
from alerts.models import AlertKind, AlertState, Channel, ChannelKind, Delivery
from alerts.rules import Rules, rules_of
from chalkcompute.words import spelled_duration
from common.errors import ServiceError
from runs.models import Attempt, LogLine, Run, RunStatus, Trigger
from scheduling.crypto import SecretDecryptionError, decrypt, encrypt
from scheduling.models import Function

FAILED = (RunStatus.FAILED, RunStatus.TIMED_OUT, RunStatus.LOST)
LOG_TAIL_LINES = 20
DELIVER = "alerts.tasks.deliver"


class AlertsError(ServiceError):
    pass


# Who may add and delete channels: admins. A channel decides where the control worker, which
# sits next to the database and the broker, connects and what it sends there (failed runs' last
# log lines, tokens in the URL): server configuration, like CHALK_ALERT_ALLOWED_NETWORKS, not an
# operator's day-to-day work. Operators and up may still send a test alert to a channel.
MANAGE_CHANNELS = Right.ADMIN


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


def _check_destination(url: str, kind: str) -> None:
    """The URL's host (and a mailto's smtp= server) must not be a private or local address
    (alerts/destinations.py); checked again at every send."""
    parts = urlsplit(url)
    try:
        host, port = parts.hostname, parts.port
    except ValueError:
        raise AlertsError("The URL's port is not a number from 1 to 65535.") from None
    hosts = [(host, port)] if host else []
    if kind == ChannelKind.APPRISE:
        # An Apprise "host" is often a token (slack://T000/B000/XXX): only a name with a dot,
        # an address or localhost is resolved now; the send checks whatever it connects to.
        hosts = [(h, p) for h, p in hosts if "." in h or ":" in h or h == "localhost"]
        hosts += [(smtp, None) for smtp in parse_qs(parts.query).get("smtp", []) if smtp]
    for host, port in hosts:
        try:
            destinations.check_host(host, port)
        except destinations.Refused as refused:
            raise AlertsError(str(refused)) from None


def channel_check(*, name: str, kind: str, url: str) -> None:
    """The rules of a new channel (AlertsError says which is broken). The console, the API and
    the admin all come through here."""
    if not name.strip() or len(name) > 100:
        raise AlertsError("A channel needs a name of 1 to 100 characters.")
    if kind not in ChannelKind.values:
        raise AlertsError(f"A channel's kind is one of: {', '.join(ChannelKind.values)}.")
    if kind == ChannelKind.WEBHOOK:
        parts = urlsplit(url)
        if parts.scheme not in ("http", "https") or not parts.hostname:
            raise AlertsError("A webhook's URL is an http:// or https:// URL.")
    else:
        problem = senders.check_apprise_url(url)
        if problem is not None:
            raise AlertsError(problem)
    _check_destination(url, kind)


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
    authorize(actor, MANAGE_CHANNELS)
    name, url = name.strip(), url.strip()
    channel_check(name=name, kind=kind, url=url)
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
    authorize(actor, MANAGE_CHANNELS)
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


def channels_of(function: Function, rules: Rules) -> list[Channel]:
    """The channels the function's code names and those chosen for it on the Channels page,
    else every default channel (one query)."""
    chosen = Exists(
        Channel.functions.through.objects.filter(channel=OuterRef("pk"), function=function)
    ) | Q(name__in=rules.channels)
    channels = list(
        Channel.objects.annotate(chosen=chosen).filter(Q(chosen=True) | Q(is_default=True))
    )
    return [c for c in channels if c.chosen] or channels


def rules_of_function(function: Function) -> Rules:
    version = function.current_version
    return rules_of(version.alerts if version is not None else None)


def _log_tail(run: Run) -> list[str]:
    lines = LogLine.objects.filter(attempt__run=run).order_by("-attempt__number", "-seq")
    return [line.text for line in reversed(lines[:LOG_TAIL_LINES].only("text"))]


def _console_url(path: str) -> str:
    return f"{settings.CHALK_PUBLIC_URL.rstrip('/')}{path}"


def _payload(
    *, kind: str, run: Run, failures: int, now: dt.datetime, reason: str | None = None
) -> dict:
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


def _function_payload(*, kind: str, function: Function, reason: str, now: dt.datetime) -> dict:
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


def _alert(
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


def _locked_state(function_id: int) -> AlertState:
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
        state = _locked_state(run.function_id)
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
            payload = _payload(kind=kind, run=run, failures=state.consecutive_failures, now=now)
            deliveries = _alert(
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
        try:
            url = decrypt(channel.url_encrypted)
            secret = decrypt(channel.secret_encrypted)
        except SecretDecryptionError:
            raise senders.DeliveryError("cannot decrypt the channel (CHALK_SECRETS_KEY)") from None
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


# --- the sweep: what no run's end says ---------------------------------------------------------

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
    slots = dict(
        Function.objects.filter(paused=False, next_fire_at__lte=before).values_list(
            "id", "next_fire_at"
        )
    )
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
            state = _locked_state(function_id)
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
                payload = _function_payload(
                    kind=AlertKind.LATE, function=function, reason=reason, now=now
                )
                deliveries += _alert(
                    function=function, rules=rules, run=None, payload=payload, now=now
                )
            elif change == "on_time":
                if rules.on_recovery and rules.late_after is not None and not function.paused:
                    reason = (
                        "runs start on time again; slots were late from "
                        f"{state.late_since:%Y-%m-%d %H:%M:%S} UTC"
                    )
                    payload = _function_payload(
                        kind=AlertKind.RECOVERED, function=function, reason=reason, now=now
                    )
                    deliveries += _alert(
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
            state = _locked_state(run.function_id)
            if state.long_run_id is not None and run.id <= state.long_run_id:
                continue
            state.long_run_id = run.id
            state.save(update_fields=["long_run_id"])
            reason = (
                f"still running {spelled_duration(now - run.started_at)} after it started "
                f"(the rule: {spelled_duration(rules.running_after)})"
            )
            payload = _payload(
                kind=AlertKind.STILL_RUNNING, run=run, failures=0, now=now, reason=reason
            )
            deliveries += _alert(
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
            state = _locked_state(function_id)
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
                payload = _payload(
                    kind=AlertKind.SKIPPED, run=run, failures=0, now=now, reason=reason
                )
                deliveries += _alert(
                    function=run.function, rules=rules, run=run, payload=payload, now=now
                )
            state.save(update_fields=["skipped_run_id", "skip_alerted_at"])
    return deliveries


def deliveries_prune(*, before: dt.datetime) -> int:
    """Deletes deliveries decided before `before`; returns how many."""
    deleted, _ = Delivery.objects.filter(at__lt=before).delete()
    return deleted

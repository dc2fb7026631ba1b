"""The rules no run's end says, on a pinned clock: a late slot (the dead man), a run still
running, a skipped slot; and the rules a function's code declares (`alerts=`). Slots become runs
through the real tick, attempts start through runs.services, and alerts reach a real HTTP
receiver through apprise's json:// target."""

import datetime as dt

import pytest
from django.utils import timezone
from prometheus_client.parser import text_string_to_metric_families

from alerts import channels, selectors, services
from alerts import sweep as sweeps
from alerts.models import AlertState, Delivery
from chalkcompute import Alerts
from runs import scheduler
from runs import services as run_services
from runs.models import Run, RunStatus
from scheduling.services import function_pause
from tests.personas import acting
from tests.runs.support import deploy, finish_run

pytestmark = pytest.mark.django_db

SLOT = dt.datetime(2026, 6, 1, 3, 0, tzinfo=dt.UTC)
DEPLOYED = SLOT - dt.timedelta(minutes=30)


def seconds(n: float) -> dt.timedelta:
    return dt.timedelta(seconds=n)


@pytest.fixture
def hook(http_receiver):
    """A default channel whose alerts arrive as JSON at the receiver; its bodies, in order."""
    channels.channel_create(
        name="ops-json",
        kind="apprise",
        url=http_receiver.url.replace("http://", "json://"),
        is_default=True,
        actor=acting("ada", "admin"),
        now=timezone.now(),
    )

    def titles():
        return [r.json()["title"] for r in http_receiver.requests]

    return titles


def nightly(**alerts):
    return deploy(
        "nightly-rollup",
        "pass",
        schedule="0 3 * * *",
        alerts=Alerts(**alerts) if alerts else None,
        now=DEPLOYED,
    )


def start(run: Run, at: dt.datetime) -> None:
    """A worker takes the run's first attempt and the runner begins it."""
    attempt = run.attempts.get(number=1)
    attempt, _ = run_services.attempt_claim(
        attempt_id=attempt.id, executor="local", executor_ref="1@w", now=at
    )
    run_services.attempt_begin(attempt=attempt, now=at)


def sweep(at: dt.datetime, django_capture_on_commit_callbacks) -> list[Delivery]:
    with django_capture_on_commit_callbacks(execute=True):
        return sweeps.sweep(now=at)


@pytest.fixture
def swept(eager_tasks, django_capture_on_commit_callbacks):
    return lambda at: sweep(at, django_capture_on_commit_callbacks)


def test_a_slot_whose_run_waits_for_a_worker_is_late_once(hook, swept):
    function = nightly(late_after="5m")
    scheduler.tick(now=SLOT - seconds(3))  # the run is created ahead of its slot
    run = Run.objects.get(function=function)

    assert swept(SLOT + seconds(299)) == []
    [late] = swept(SLOT + seconds(300))
    assert late.kind == "late" and late.run is None
    assert late.payload["reason"] == (
        "the run of the 2026-06-01 03:00:00 UTC slot has not started 5 minutes after it: it waits "
        "for a runs worker (are the workers running? see the Platform page)"
    )
    assert late.payload["console_url"].endswith("/functions/nightly-rollup")
    assert swept(SLOT + seconds(400)) == []  # no storm: one alert while it stays late

    start(run, SLOT + seconds(500))
    [recovered] = swept(SLOT + seconds(505))
    assert recovered.kind == "recovered"
    assert (
        "runs start on time again; slots were late from 2026-06-01 03:00:00 UTC"
        in (recovered.payload["reason"])
    )
    assert swept(SLOT + seconds(600)) == []
    assert hook() == ["Chalkweb: nightly-rollup is late", "Chalkweb: nightly-rollup recovered"]


def test_a_slot_no_run_was_made_for_is_late_by_the_servers_default(hook, swept, settings):
    settings.CHALK_ALERT_LATE_AFTER_SECONDS = 120
    nightly()  # no tick: beat is down

    assert swept(SLOT + seconds(119)) == []
    [late] = swept(SLOT + seconds(120))
    assert "no run was created for it (is beat running?" in late.payload["reason"]


def test_it_reminds_while_it_stays_late(hook, swept):
    nightly(late_after="1m", remind_every="1h")

    assert len(swept(SLOT + seconds(60))) == 1
    assert swept(SLOT + dt.timedelta(minutes=59)) == []
    [reminder] = swept(SLOT + dt.timedelta(minutes=61))
    assert reminder.kind == "late"
    assert AlertState.objects.get().late_since == SLOT


def test_lateness_is_measured_from_the_slot_not_from_a_run(hook, swept):
    nightly(late_after="10m")
    scheduler.tick(now=SLOT + dt.timedelta(minutes=9))  # beat came back 9 minutes late

    assert swept(SLOT + dt.timedelta(minutes=9, seconds=30)) == []
    assert [d.kind for d in swept(SLOT + dt.timedelta(minutes=10))] == ["late"]


@pytest.mark.parametrize("how", ["paused", "off in code", "off on the server"])
def test_nothing_is_late_when_no_rule_asks_or_the_function_is_paused(how, hook, swept, settings):
    settings.CHALK_ALERT_LATE_AFTER_SECONDS = 0 if how == "off on the server" else 300
    function = nightly(late_after=0) if how == "off in code" else nightly()
    if how == "paused":
        function_pause(function=function, reason="", actor=acting("olga", "operator"), now=SLOT)

    assert swept(SLOT + dt.timedelta(hours=2)) == []


def test_a_late_function_paused_by_someone_is_not_called_recovered(hook, swept):
    function = nightly(late_after="1m")
    assert len(swept(SLOT + seconds(90))) == 1

    function_pause(function=function, reason="", actor=acting("olga", "operator"), now=SLOT)

    assert swept(SLOT + seconds(120)) == []
    assert AlertState.objects.get().late_since is None


def test_a_run_still_running_alerts_once(hook, swept):
    function = deploy("batch", "pass", alerts=Alerts(running_after="10m"), now=DEPLOYED)
    run = run_services.run_trigger(
        function=function, trigger="manual", actor=acting("olivia"), now=SLOT
    )
    start(run, SLOT)

    assert swept(SLOT + dt.timedelta(minutes=9, seconds=59)) == []
    [long] = swept(SLOT + dt.timedelta(minutes=10))
    assert long.kind == "still_running" and long.run_id == run.id
    assert (
        long.payload["reason"] == "still running 10 minutes after it started (the rule: 10 minutes)"
    )
    assert swept(SLOT + dt.timedelta(hours=3)) == []
    assert hook() == ["Chalkweb: batch is still running"]


def test_a_skipped_slot_alerts_when_the_rule_asks(hook, swept):
    function = deploy(
        "every-minute",
        "pass",
        schedule="* * * * *",
        alerts=Alerts(on_skip=True, late_after="1h"),
        now=SLOT - seconds(30),
    )
    scheduler.tick(now=SLOT - seconds(1))
    start(Run.objects.get(function=function), SLOT)
    scheduler.tick(now=SLOT + seconds(60))  # the 03:01 slot: the 03:00 run still runs
    scheduler.tick(now=SLOT + seconds(120))

    [skipped] = swept(SLOT + seconds(121))
    assert skipped.kind == "skipped"
    assert skipped.payload["reason"] == (
        '2 slots skipped: the previous run was still active (overlap="skip")'
    )
    scheduler.tick(now=SLOT + seconds(180))
    assert swept(SLOT + seconds(181)) == []  # reminded at most every remind_every
    assert hook() == ["Chalkweb: every-minute skipped a slot"]


def test_a_skip_someone_caused_says_nothing(hook, swept):
    """A run created ahead of its slot, then its function paused: skipped at start."""
    function = deploy(
        "every-minute",
        "pass",
        schedule="* * * * *",
        alerts=Alerts(on_skip=True),
        now=SLOT - seconds(30),
    )
    scheduler.tick(now=SLOT - seconds(2))
    run = Run.objects.get(function=function)
    function_pause(function=function, reason="", actor=acting("olga", "operator"), now=SLOT)
    assert (
        run_services.attempt_claim(
            attempt_id=run.attempts.get().id, executor="local", executor_ref="1@w", now=SLOT
        )
        is None
    )
    run.refresh_from_db()
    assert run.status == RunStatus.SKIPPED

    assert swept(SLOT + seconds(5)) == []


def test_slots_missed_in_downtime_are_skipped_slots(hook, swept):
    deploy("every-minute", "pass", schedule="* * * * *", alerts=Alerts(on_skip=True, late_after=0),
           now=SLOT - seconds(30))  # fmt: skip
    scheduler.tick(now=SLOT + dt.timedelta(minutes=3))  # beat was down for three slots

    [skipped] = swept(SLOT + dt.timedelta(minutes=3, seconds=1))
    assert skipped.payload["reason"] == (
        "3 slots skipped: ran the latest slot after downtime; 3 earlier slots were missed"
    )


def test_skipped_slots_say_nothing_by_default(hook, swept):
    function = deploy("every-minute", "pass", schedule="* * * * *", now=SLOT - seconds(30))
    scheduler.tick(now=SLOT - seconds(1))
    start(Run.objects.get(function=function), SLOT)
    scheduler.tick(now=SLOT + seconds(60))

    assert swept(SLOT + seconds(61)) == []


def test_the_channels_named_in_code_get_its_alerts_instead_of_the_defaults(http_receiver, swept):
    admin = acting("ada", "admin")
    url = http_receiver.url.replace("http://", "json://")
    channels.channel_create(name="everyone", kind="apprise", url=url + "/all", is_default=True,
                            actor=admin, now=SLOT)  # fmt: skip
    channels.channel_create(name="ops-slack", kind="apprise", url=url + "/ops", actor=admin,
                            now=SLOT)  # fmt: skip
    function = nightly(on_failure=["ops-slack", "gone"], late_after="1m")

    [late] = swept(SLOT + seconds(60))

    assert late.channel_name == "ops-slack"
    assert [r.path for r in http_receiver.requests] == ["/ops"]
    alerting = selectors.function_alerting(function)
    assert alerting.channels == ["ops-slack"]
    assert alerting.missing == ["gone"]
    assert alerting.rules == [
        "after 1 failed run in a row (each after its last retry), reminding every 1 hour, and "
        "once when it recovers",
        "when a slot's run has not started 1 minute after it",
    ]


def test_a_rule_from_code_counts_failures_and_can_stay_quiet_on_recovery(http_receiver, end_run):
    url = http_receiver.url.replace("http://", "json://")
    channels.channel_create(name="ops", kind="apprise", url=url, is_default=True,
                            actor=acting("ada", "admin"), now=SLOT)  # fmt: skip
    function = deploy(
        "flaky", "pass", alerts=Alerts(after_failures=3, on_recovery=False), now=DEPLOYED
    )

    for minute in range(3):
        end_run(function, "failed", at=SLOT + dt.timedelta(minutes=minute))
    end_run(function, "succeeded", at=SLOT + dt.timedelta(minutes=4))

    assert [d.kind for d in Delivery.objects.order_by("id")] == ["failed"]
    assert Delivery.objects.get().payload["failures"] == 3


def test_old_deliveries_are_pruned(hook, swept):
    nightly(late_after="1m")
    swept(SLOT + seconds(60))

    assert services.deliveries_prune(before=SLOT) == 0
    assert services.deliveries_prune(before=SLOT + dt.timedelta(days=1)) == 1
    assert Delivery.objects.count() == 0


def test_deliveries_are_counted_on_metrics_by_kind_and_outcome(hook, swept, client):
    nightly(late_after="1m")
    swept(SLOT + seconds(60))

    text = client.get("/metrics").content.decode()
    [family] = [
        f for f in text_string_to_metric_families(text) if f.name == "chalk_alert_deliveries"
    ]
    assert [(s.labels, s.value) for s in family.samples] == [
        ({"kind": "late", "status": "sent"}, 1.0)
    ]


def test_a_run_end_whose_message_was_lost_still_alerts_once(hook, swept):
    function = deploy("rates", "pass", now=DEPLOYED)
    run = finish_run(function, status="failed", at=SLOT)  # its run_ended task never sent

    assert swept(SLOT + seconds(29)) == []
    [failed] = swept(SLOT + seconds(31))
    assert (failed.kind, failed.run_id) == ("failed", run.id)
    assert swept(SLOT + seconds(60)) == []
    assert services.run_ended(run_id=run.id, now=SLOT + seconds(61)) == []  # told again
    assert AlertState.objects.get().consecutive_failures == 1

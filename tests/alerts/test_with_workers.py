"""Alerts from real processes: celery workers and beat, the runner over HTTP to the live server,
and a signed webhook received by an HTTP server in this test. Prints the latencies the README
quotes (failure → alert, slot of a dead worker → late alert)."""

import datetime as dt
import time

import pytest
from django.utils import timezone

from alerts import channels
from alerts.models import Delivery
from chalkcompute import Alerts, Retries
from runs.models import Run
from runs.services import run_trigger
from tests.personas import acting
from tests.runs.support import deploy, wait_for, wait_for_run

pytestmark = pytest.mark.slow


def webhook(http_receiver, platform) -> None:
    # The workers' settings come from their environment: allow the receiver's loopback there.
    platform.env["CHALK_ALERT_ALLOWED_NETWORKS"] = "127.0.0.1/32"
    channels.channel_create(
        name="ops-hook",
        kind="webhook",
        url=http_receiver.url + "/hook",
        is_default=True,
        actor=acting("ada", "admin"),
        now=timezone.now(),
    )


def received(http_receiver, count: int, timeout: float) -> list[tuple[float, dict]]:
    """(time received, body) of the first `count` alerts, waiting up to `timeout` s."""
    wait_for(lambda: len(http_receiver.requests) >= count, timeout=timeout,
             message=f"{count} alerts at the receiver")  # fmt: skip
    return [(r.at, r.json()) for r in http_receiver.requests]


def test_a_failing_function_alerts_once_after_its_last_retry_then_recovers(platform, http_receiver):
    webhook(http_receiver, platform)
    platform.start_workers()
    retries = Retries(max_retries=1, initial_delay=0.5, max_delay=0.5)
    failing = deploy("rates", 'raise RuntimeError("rates feed down")', retries=retries)

    run = run_trigger(function=failing, trigger="manual", actor=acting("o"), now=timezone.now())
    run = wait_for_run(run.id)
    [(at, failed)] = received(http_receiver, 1, timeout=30)

    assert run.status == "failed" and run.attempts.count() == 2
    assert (failed["kind"], failed["run"]) == ("failed", run.id)
    assert "RuntimeError: rates feed down" in failed["reason"]
    failure_to_alert = at - run.finished_at.timestamp()

    fixed = deploy("rates", 'chalk_logger.info("rates refreshed")', retries=retries)
    again = run_trigger(function=fixed, trigger="manual", actor=acting("o"), now=timezone.now())
    assert wait_for_run(again.id).status == "succeeded"
    _, (_, recovered) = received(http_receiver, 2, timeout=30)
    assert (recovered["kind"], recovered["run"]) == ("recovered", again.id)

    time.sleep(1)  # nothing more arrives: one alert per change
    assert len(http_receiver.requests) == 2
    assert set(Delivery.objects.values_list("status", flat=True)) == {"sent"}
    print(f"\nfailure -> alert: {failure_to_alert * 1000:.0f} ms")


def test_a_dead_runs_worker_makes_the_next_slot_late(platform, http_receiver):
    webhook(http_receiver, platform)
    platform.start_workers()
    platform.start_beat()
    platform.kill("runs-worker")
    function = deploy(
        "every-minute",
        'chalk_logger.info("tick")',
        schedule="* * * * *",
        alerts=Alerts(late_after="10s"),
    )
    slot = function.next_fire_at

    [(at, late)] = received(http_receiver, 1, timeout=(slot - timezone.now()).total_seconds() + 40)

    assert late["kind"] == "late"
    assert late["function"] == "every-minute"
    assert "it waits for a runs worker" in late["reason"]
    slot_to_alert = at - slot.timestamp()
    assert 10 <= slot_to_alert <= 10 + 5 + 5  # late_after, a sweep interval, and delivery
    assert Run.objects.get(function=function, scheduled_for=slot).started_at is None

    platform.start_workers(control=False)  # the queued run starts: "recovered"
    _, (_, recovered) = received(http_receiver, 2, timeout=60)
    assert recovered["kind"] == "recovered"
    assert "runs start on time again" in recovered["reason"]
    print(f"\nslot of a dead worker -> late alert: {slot_to_alert:.1f} s (late_after 10 s)")
    assert timezone.now() - slot < dt.timedelta(minutes=2)

"""The platform's health: /metrics (parsed with prometheus_client's own parser), /readyz, the
console's banner and Platform page, and one process test with real beat and workers."""

import datetime as dt

import pytest
from django.test import Client
from django.utils import timezone
from prometheus_client.parser import text_string_to_metric_families

from runs import heartbeats, scheduler, tasks
from runs.models import Heartbeat
from runs.versions import this_code
from scheduling.models import Function
from tests.runs.support import deploy, finish_run, wait_for


def scrape(client: Client, **headers) -> dict:
    response = client.get("/metrics", **headers)
    assert response.status_code == 200, response.content
    assert response["Content-Type"].startswith("text/plain; version=")
    return {
        family.name: family for family in text_string_to_metric_families(response.content.decode())
    }


def value(families: dict, family: str, sample: str | None = None, **labels) -> float:
    matches = [
        s.value
        for s in families[family].samples
        if s.name == (sample or family) and all(s.labels.get(k) == v for k, v in labels.items())
    ]
    assert len(matches) == 1, (family, sample, labels, families[family].samples)
    return matches[0]


def fresh_heartbeats(now=None, *, tick_age=0, worker_age=0) -> None:
    now = now or timezone.now()
    heartbeats.record(
        [("beat", "", {"duration_seconds": 0.01, "claimed": 0}, 1)],
        now=now - dt.timedelta(seconds=tick_age),
    )
    heartbeats.record(
        [("runs-worker", "runs-1@host", {"queues": ["chalk-runs"], **this_code()}, 1)],
        now=now - dt.timedelta(seconds=worker_age),
    )


@pytest.mark.django_db
def test_metrics_after_known_runs(client):
    rates = deploy("refresh-rates", "return 1")
    finish_run(rates)
    finish_run(rates)
    finish_run(rates, status="failed", error=("ValueError", "bad", "Traceback"))
    minutely = deploy("every-minute", "return 1", schedule="* * * * *")
    slot = minutely.next_fire_at
    # The tick runs 2 s late: one scheduled run, created 2 s after its slot.
    assert scheduler.tick(now=slot + dt.timedelta(seconds=2)).runs == 1
    tasks.tick()  # the task records its heartbeat: duration and functions claimed
    tasks.reap()

    families = scrape(client)

    finished = ("chalk_runs_finished", "chalk_runs_finished_total")
    assert value(families, *finished, status="succeeded") == 2
    assert value(families, *finished, status="failed") == 1
    assert value(families, *finished, status="skipped") == 0
    assert value(families, "chalk_runs_active", status="queued") == 1
    assert value(families, "chalk_runs_active", status="running") == 0
    assert value(families, "chalk_function_runs_active", function="every-minute") == 1
    assert "refresh-rates" not in {
        s.labels["function"] for s in families["chalk_function_runs_active"].samples
    }  # no active run, no series
    lag = "chalk_schedule_lag_seconds"
    assert value(families, lag, f"{lag}_count") == 1
    assert value(families, lag, f"{lag}_bucket", le="1.0") == 0
    assert value(families, lag, f"{lag}_bucket", le="2.0") == 1
    assert value(families, lag, f"{lag}_bucket", le="+Inf") == 1
    assert value(families, lag, f"{lag}_sum") == pytest.approx(2.0)
    assert value(families, "chalk_start_lag_seconds", "chalk_start_lag_seconds_count") == 0
    assert value(families, "chalk_attempts", status="queued") == 1
    assert value(families, "chalk_attempts", status="running") == 0
    assert value(families, "chalk_attempts_lost_recent") == 0
    assert value(families, "chalk_functions", state="active") == 2
    assert value(families, "chalk_ticks", "chalk_ticks_total") == 1
    assert value(families, "chalk_tick_functions_claimed") == 0  # the slot was already taken
    assert 0 < value(families, "chalk_tick_duration_seconds") < 5
    assert value(families, "chalk_reaper_runs", "chalk_reaper_runs_total") == 1
    assert value(families, "chalk_reaper_actions", "chalk_reaper_actions_total", action="lost") == 0
    assert value(families, "chalk_heartbeat_timestamp_seconds", component="beat", name="") > 0
    # No label anywhere names a run.
    for family in families.values():
        for sample in family.samples:
            assert not {"run", "run_id", "attempt"} & set(sample.labels)


@pytest.mark.django_db
def test_counters_add_up_across_ticks(client):
    tasks.tick()
    tasks.tick()
    assert value(scrape(client), "chalk_ticks", "chalk_ticks_total") == 2


@pytest.mark.django_db
def test_metrics_token(client, settings):
    settings.CHALK_METRICS_TOKEN = "scrape-me-7"
    assert client.get("/metrics").status_code == 401
    wrong = client.get("/metrics", HTTP_AUTHORIZATION="Bearer nope")
    assert wrong.status_code == 401
    assert "chalk_runs_finished" in scrape(client, HTTP_AUTHORIZATION="Bearer scrape-me-7")
    settings.CHALK_METRICS_TOKEN = ""
    assert client.get("/metrics").status_code == 200  # open by the setting


@pytest.mark.django_db
def test_readyz_is_ready_with_fresh_heartbeats(client):
    fresh_heartbeats()
    response = client.get("/readyz")
    assert response.status_code == 200, response.json()
    body = response.json()
    assert body["status"] == "ok" and body["failed"] == []
    assert set(body["checks"]) == {
        "database", "broker", "migrations", "beat", "runs_worker", "periodic_tasks", "secrets_key",
    }  # fmt: skip
    assert body["checks"]["runs_worker"]["workers"] == ["runs-1@host"]


@pytest.mark.django_db
def test_readyz_names_the_failed_check(client, time_machine):
    now = timezone.now()
    time_machine.move_to(now, tick=False)
    fresh_heartbeats(now, tick_age=11, worker_age=5)
    response = client.get("/readyz")
    assert response.status_code == 503
    body = response.json()
    assert body["status"] == "unavailable"
    assert body["failed"] == ["beat"]
    assert body["checks"]["beat"]["ok"] is False
    assert body["checks"]["beat"]["age_seconds"] == 11.0
    assert body["checks"]["runs_worker"]["ok"] is True

    Heartbeat.objects.filter(component="runs-worker").update(seen_at=now - dt.timedelta(seconds=31))
    assert client.get("/readyz").json()["failed"] == ["beat", "runs_worker"]


@pytest.mark.django_db
def test_readyz_with_nothing_seen(client):
    response = client.get("/readyz")
    assert response.status_code == 503
    assert response.json()["checks"]["beat"] == {
        "ok": False, "max_age_seconds": 10.0, "last_seen": None, "age_seconds": None,
    }  # fmt: skip


def test_healthz_stays_cheap(client):
    # No database access allowed here: a query would raise.
    assert client.get("/healthz").json() == {"status": "ok"}


@pytest.mark.django_db
def test_banner_and_overdue_row_while_beat_is_down(console, time_machine):
    now = timezone.now()
    time_machine.move_to(now, tick=False)
    deploy("every-minute", "return 1", schedule="* * * * *")
    Function.objects.filter(name="every-minute").update(next_fire_at=now - dt.timedelta(minutes=5))
    fresh_heartbeats(now, tick_age=180, worker_age=120)

    page = console.get("/").content.decode()

    assert "No tick for 3 minutes: scheduled runs are not being created" in page
    assert "No runs worker seen for 2 minutes: runs are waiting" in page
    assert "due 5 min ago: no run yet (no tick: is beat running?)" in page
    for other in ("/runs", "/secrets", "/platform"):
        assert "No tick for 3 minutes" in console.get(other).content.decode(), other


@pytest.mark.django_db
def test_no_banner_while_all_is_well(console):
    fresh_heartbeats()
    deploy("every-minute", "return 1", schedule="* * * * *")
    page = console.get("/").content.decode()
    assert 'role="alert"' not in page
    assert "no run yet" not in page


@pytest.mark.django_db
def test_platform_page(console):
    fresh_heartbeats()
    heartbeats.record([("control-worker", "control-1@host", {"queues": ["chalk-control"]}, 1)],
                      now=timezone.now())  # fmt: skip
    response = console.get("/platform")
    assert response.status_code == 200
    page = response.content.decode()
    for text in ("Last tick", "runs-1@host", "control-1@host", "Queue depth", "Executor"):
        assert text in page


@pytest.mark.django_db
def test_platform_page_needs_a_login(client):
    assert client.get("/platform").status_code == 302


@pytest.mark.slow
def test_readyz_turns_503_when_beat_stops(platform):
    client = Client()
    platform.start_workers()
    platform.start_beat()

    def ready():
        response = client.get("/readyz")
        return response.status_code == 200 and response.json()

    body = wait_for(ready, timeout=45, message="/readyz 200")
    assert body["checks"]["runs_worker"]["workers"], body
    assert Heartbeat.objects.filter(component="control-worker").exists()

    platform.kill("beat")

    def unready():
        response = client.get("/readyz")
        return response.status_code == 503 and response.json()

    body = wait_for(unready, timeout=15, message="/readyz 503 after beat stopped")
    assert body["failed"] == ["beat"], body

"""PUT /api/v1/functions/{name}: create, new version, unchanged, and next_fire_at."""

from datetime import UTC, datetime, timedelta

import pytest

from scheduling.models import Function, FunctionVersion, Image, Secret
from scheduling.services import secret_set
from tests.personas import PLATFORM
from tests.server.support import (
    DEFAULT_RETRIES,
    DEFAULT_SPEC,
    RATES_SOURCE,
    deploy_body,
    rates_document,
    sha256,
    spec_hash,
)
from tests.support import NOW

URL = "/api/v1/functions/refresh-rates"
pytestmark = pytest.mark.usefixtures("clock")


def test_it_creates_a_function_on_first_deploy(api):
    response = api.put(URL, deploy_body(), format="json")

    assert response.status_code == 201
    assert response.json() == rates_document(deploy="created")
    function = Function.objects.get(name="refresh-rates")
    assert function.next_fire_at == datetime(2026, 11, 29, 0, 0, tzinfo=UTC)
    version = function.current_version
    assert (version.number, version.source, version.created_by) == (1, RATES_SOURCE, "alice-laptop")
    assert (version.schedule, version.cron, version.timeout) == ("0 * * * *", "0 * * * *", 600.0)


def test_it_adds_a_version_when_the_content_changes(api, clock):
    api.put(URL, deploy_body(), format="json")
    clock.shift(timedelta(minutes=10))

    response = api.put(URL, deploy_body(memory="2Gi"), format="json")

    assert response.status_code == 200
    assert response.json() == rates_document(
        version=2, memory="2Gi", updated_at="2026-11-28T23:40:00Z", deploy="updated"
    )
    function = Function.objects.get(name="refresh-rates")
    assert list(function.versions.values_list("number", "memory")) == [(2, "2Gi"), (1, "1Gi")]
    assert function.current_version.number == 2


def test_it_says_unchanged_for_identical_content(api, clock):
    api.put(URL, deploy_body(), format="json")
    clock.shift(timedelta(minutes=10))

    response = api.put(URL, deploy_body(), format="json")

    assert response.status_code == 200
    assert response.json() == rates_document(deploy="unchanged")
    assert FunctionVersion.objects.count() == 1
    function = Function.objects.get(name="refresh-rates")
    assert function.updated_at == NOW


def test_it_keeps_the_next_slot_when_the_cron_is_unchanged(api, clock):
    api.put(URL, deploy_body(), format="json")
    # Past the 00:00 slot: the scheduler has not taken it yet, and a redeploy must not skip it.
    clock.move_to(datetime(2026, 11, 29, 0, 0, 30, tzinfo=UTC))

    response = api.put(URL, deploy_body(cpu="2"), format="json")

    assert response.json()["next_fire_at"] == "2026-11-29T00:00:00Z"
    function = Function.objects.get(name="refresh-rates")
    assert function.next_fire_at == datetime(2026, 11, 29, 0, 0, tzinfo=UTC)


def test_it_keeps_the_slot_when_a_shorthand_is_rewritten_as_its_crontab(api, clock):
    api.put(URL, deploy_body(schedule="1h"), format="json")
    clock.move_to(datetime(2026, 11, 29, 0, 0, 30, tzinfo=UTC))

    response = api.put(URL, deploy_body(schedule="0 * * * *"), format="json")

    body = response.json()
    assert (body["version"], body["schedule"], body["cron"]) == (2, "0 * * * *", "0 * * * *")
    assert body["next_fire_at"] == "2026-11-29T00:00:00Z"


def test_it_recomputes_the_next_slot_when_the_cron_changes(api, clock):
    api.put(URL, deploy_body(), format="json")
    clock.shift(timedelta(minutes=5))

    response = api.put(URL, deploy_body(schedule="10m"), format="json")

    body = response.json()
    assert (body["schedule"], body["cron"]) == ("10m", "*/10 * * * *")
    assert body["schedule_description"] == "every 10 minutes"
    assert body["next_runs"] == [
        "2026-11-28T23:40:00Z",
        "2026-11-28T23:50:00Z",
        "2026-11-29T00:00:00Z",
    ]
    assert Function.objects.get().next_fire_at == datetime(2026, 11, 28, 23, 40, tzinfo=UTC)


def test_it_deploys_an_on_demand_function(api):
    response = api.put(URL, deploy_body(schedule=None), format="json")

    assert response.status_code == 201
    assert response.json() == rates_document(
        schedule=None,
        cron=None,
        schedule_description="on demand",
        next_fire_at=None,
        next_runs=[],
        deploy="created",
    )
    assert Function.objects.get().next_fire_at is None


def test_it_clears_the_next_slot_when_a_schedule_is_removed(api):
    api.put(URL, deploy_body(), format="json")

    api.put(URL, deploy_body(schedule=None), format="json")

    assert Function.objects.get().next_fire_at is None


def test_it_applies_the_defaults_of_optional_fields(api):
    body = {"source": RATES_SOURCE, "entrypoint": "refresh_rates"}

    response = api.put(URL, body, format="json")

    assert response.status_code == 201
    assert response.json() == rates_document(
        schedule=None,
        cron=None,
        schedule_description="on demand",
        next_fire_at=None,
        next_runs=[],
        image={"spec_hash": spec_hash(DEFAULT_SPEC), "spec": DEFAULT_SPEC},
        cpu=None,
        memory=None,
        retries=DEFAULT_RETRIES,
        timeout=None,
        source_filename="main.py",
        deploy="created",
    )


def test_it_stores_one_image_per_spec(api):
    api.put(URL, deploy_body(), format="json")

    api.put("/api/v1/functions/other-job", deploy_body(), format="json")

    assert Image.objects.count() == 1
    assert Image.objects.get().spec_hash == spec_hash(deploy_body()["image"])


def test_it_records_the_secret_names_of_a_version_sorted(api):
    secret_set(name="EXCHANGE_API_KEY", value="s3cr3t-value", now=NOW, actor=PLATFORM)
    secret_set(name="DATABASE_URL", value="postgres://u:p@db/x", now=NOW, actor=PLATFORM)

    response = api.put(
        URL, deploy_body(secrets=["EXCHANGE_API_KEY", "DATABASE_URL"]), format="json"
    )

    assert response.json()["secrets"] == ["DATABASE_URL", "EXCHANGE_API_KEY"]
    version = Function.objects.get().current_version
    assert version.secret_names == ["DATABASE_URL", "EXCHANGE_API_KEY"]
    assert Secret.objects.count() == 2


def test_it_keeps_a_paused_function_unscheduled_on_redeploy(api):
    api.put(URL, deploy_body(), format="json")
    api.post(f"{URL}/pause", {"reason": "vendor outage"}, format="json")

    response = api.put(URL, deploy_body(schedule="10m"), format="json")

    body = response.json()
    assert (body["version"], body["paused"], body["next_fire_at"], body["next_runs"]) == (
        2,
        True,
        None,
        [],
    )
    assert body["paused_reason"] == "vendor outage"


def test_it_deploys_old_content_again_as_a_new_version(api):
    api.put(URL, deploy_body(), format="json")
    api.put(URL, deploy_body(cpu="2"), format="json")

    response = api.put(URL, deploy_body(), format="json")

    assert (response.json()["version"], response.json()["deploy"]) == (3, "updated")
    first, _, third = FunctionVersion.objects.order_by("number")
    assert first.content_hash == third.content_hash
    assert third.source_sha256 == sha256(RATES_SOURCE)


def test_it_stores_and_returns_the_alerts_in_seconds(api):
    response = api.put(
        URL,
        {**deploy_body(), "alerts": {"on_failure": ["ops-slack"], "late_after": 300}},
        format="json",
    )

    assert response.status_code == 201
    assert response.json()["alerts"] == {
        "on_failure": ["ops-slack"],
        "after_failures": None,
        "on_recovery": None,
        "late_after": 300.0,
        "running_after": None,
        "on_skip": None,
        "remind_every": None,
    }

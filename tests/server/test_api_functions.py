"""GET, list, DELETE, pause and resume of functions, and the API's 404/405 answers."""

from datetime import UTC, datetime, timedelta

import pytest
from django.test import Client

from scheduling.models import Function, FunctionVersion, Image
from tests.server.support import deploy_body, rates_document

URL = "/api/v1/functions/refresh-rates"
pytestmark = pytest.mark.usefixtures("clock")


@pytest.fixture
def rates(api):
    """refresh-rates, deployed at NOW by alice."""
    api.put(URL, deploy_body(), format="json")
    return Function.objects.get(name="refresh-rates")


def test_it_returns_a_function(api, rates):
    response = api.get(URL)

    assert response.status_code == 200
    assert response.json() == rates_document()


def test_it_answers_404_for_an_unknown_function(api):
    response = api.get("/api/v1/functions/nightly-rollup")

    assert response.status_code == 404
    assert response.json() == {
        "error": "not_found",
        "detail": "no function named 'nightly-rollup' is deployed here; list them with "
        "GET /api/v1/functions",
    }


def test_it_lists_functions_by_name(api, rates):
    api.put("/api/v1/functions/nightly-rollup", deploy_body(schedule=None), format="json")

    response = api.get("/api/v1/functions")

    assert response.status_code == 200
    rollup = rates_document(
        name="nightly-rollup",
        schedule=None,
        cron=None,
        schedule_description="on demand",
        next_fire_at=None,
        next_runs=[],
        console_url="https://chalk.example.com/functions/nightly-rollup",
    )
    assert response.json() == {
        "count": 2,
        "next": None,
        "previous": None,
        "results": [rollup, rates_document()],
    }


def test_it_pages_the_function_list(api, rates):
    api.put("/api/v1/functions/nightly-rollup", deploy_body(), format="json")

    response = api.get("/api/v1/functions?limit=1&offset=1")

    body = response.json()
    assert (body["count"], body["next"]) == (2, None)
    assert body["previous"] == "http://testserver/api/v1/functions?limit=1"
    assert [item["name"] for item in body["results"]] == ["refresh-rates"]


def test_it_deletes_a_function_and_its_versions(api, rates):
    api.put(URL, deploy_body(cpu="2"), format="json")

    response = api.delete(URL)

    assert response.status_code == 204
    assert response.content == b""
    assert not Function.objects.exists()
    assert not FunctionVersion.objects.exists()
    assert Image.objects.count() == 1  # images are shared between functions and kept


def test_it_pauses_a_function_with_a_reason(api, rates, clock):
    clock.shift(timedelta(minutes=5))

    response = api.post(f"{URL}/pause", {"reason": "vendor outage"}, format="json")

    assert response.status_code == 200
    assert response.json() == rates_document(
        next_fire_at=None,
        next_runs=[],
        paused=True,
        paused_at="2026-11-28T23:35:00Z",
        paused_by="alice-laptop",
        paused_reason="vendor outage",
        updated_at="2026-11-28T23:35:00Z",
    )
    rates.refresh_from_db()
    assert (rates.paused, rates.next_fire_at, rates.paused_by) == (True, None, "alice-laptop")


def test_it_pauses_without_a_body(api, rates):
    response = api.post(f"{URL}/pause")

    assert response.status_code == 200
    assert (response.json()["paused"], response.json()["paused_reason"]) == (True, None)


def test_it_keeps_the_first_pause_when_paused_again(api, rates, clock):
    api.post(f"{URL}/pause", {"reason": "vendor outage"}, format="json")
    clock.shift(timedelta(hours=1))

    response = api.post(f"{URL}/pause", {"reason": "still down"}, format="json")

    body = response.json()
    assert (body["paused_at"], body["paused_reason"]) == ("2026-11-28T23:30:00Z", "vendor outage")


def test_it_resumes_from_the_first_slot_after_now(api, rates, clock):
    api.post(f"{URL}/pause", {"reason": "vendor outage"}, format="json")
    clock.move_to(datetime(2026, 11, 29, 3, 20, tzinfo=UTC))  # 00:00 to 03:00 pass while paused

    response = api.post(f"{URL}/resume")

    assert response.status_code == 200
    assert response.json() == rates_document(
        next_fire_at="2026-11-29T04:00:00Z",
        next_runs=["2026-11-29T04:00:00Z", "2026-11-29T05:00:00Z", "2026-11-29T06:00:00Z"],
        updated_at="2026-11-29T03:20:00Z",
    )
    rates.refresh_from_db()
    assert rates.next_fire_at == datetime(2026, 11, 29, 4, 0, tzinfo=UTC)
    assert (rates.paused, rates.paused_at, rates.paused_by, rates.paused_reason) == (
        False,
        None,
        "",
        "",
    )


def test_it_rejects_an_unknown_field_when_pausing(api, rates):
    response = api.post(f"{URL}/pause", {"why": "outage"}, format="json")

    assert response.status_code == 400
    assert response.json() == {
        "error": "unknown_field",
        "detail": "unknown field 'why'; this endpoint accepts reason. Check the spelling, or "
        "upgrade the server if your SDK is newer",
    }
    rates.refresh_from_db()
    assert rates.paused is False


def test_it_answers_404_when_pausing_an_unknown_function(api):
    response = api.post("/api/v1/functions/nightly-rollup/pause")

    assert response.status_code == 404
    assert response.json()["error"] == "not_found"


def test_it_answers_405_naming_the_allowed_methods(api, rates):
    response = api.patch(URL, {"cpu": "2"}, format="json")

    assert response.status_code == 405
    assert response.json() == {
        "error": "method_not_allowed",
        "detail": "PATCH is not allowed on this URL; it accepts GET, PUT, DELETE",
    }


def test_it_answers_a_json_404_for_an_unknown_api_url(api):
    response = api.get("/api/v1/function/refresh-rates")

    assert response.status_code == 404
    assert response.json() == {
        "error": "not_found",
        "detail": "there is no API endpoint at /api/v1/function/refresh-rates; see /api/docs/ "
        "for the API",
    }


def test_it_answers_a_json_404_to_a_post_to_an_unknown_api_url(db):
    client = Client(enforce_csrf_checks=True)  # as curl or a generated client sends it

    response = client.post(
        "/api/v1/function/refresh-rates/pause", {}, content_type="application/json"
    )

    assert response.status_code == 404
    assert response.json() == {
        "error": "not_found",
        "detail": "there is no API endpoint at /api/v1/function/refresh-rates/pause; see "
        "/api/docs/ for the API",
    }


def test_it_refuses_to_trigger_a_function_with_no_deployed_version(api):
    now = datetime(2026, 11, 28, 23, 30, tzinfo=UTC)
    Function.objects.create(name="never-deployed", created_at=now, updated_at=now)

    response = api.post("/api/v1/functions/never-deployed/trigger", format="json")

    assert response.status_code == 409
    assert response.json() == {
        "error": "not_deployed",
        "detail": "never-deployed has no deployed version to run; deploy it first.",
    }
    assert not Function.objects.get(name="never-deployed").runs.exists()

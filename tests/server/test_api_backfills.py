"""POST /functions/{name}/backfill, GET /backfills/{id} and POST /backfills/{id}/cancel: the
backfill document field by field, and every bad input refused with a 400 that says what to
send instead, with nothing written."""

import pytest

from access.models import AuditEvent
from runs.models import Backfill, Run
from scheduling.models import Function
from tests.server.support import deploy_body, row_counts

URL = "/api/v1/functions/refresh-rates/backfill"
pytestmark = pytest.mark.usefixtures("clock")  # 2026-11-28 23:30 UTC


@pytest.fixture
def rates(api):
    """refresh-rates, hourly, deployed at NOW by alice."""
    api.put("/api/v1/functions/refresh-rates", deploy_body(), format="json")
    return Function.objects.get(name="refresh-rates")


def everything() -> dict[str, int]:
    return {
        **row_counts(),
        "Backfill": Backfill.objects.count(),
        "Run": Run.objects.count(),
        "AuditEvent": AuditEvent.objects.count(),
    }


def test_it_starts_a_backfill_with_its_first_slot(api, rates):
    response = api.post(
        URL, {"start": "2026-11-28T00:00:00Z", "end": "2026-11-28T03:00:00Z"}, format="json"
    )

    assert response.status_code == 201
    backfill = Backfill.objects.get()
    run = Run.objects.get()
    assert response.json() == {
        "id": backfill.id,
        "function": "refresh-rates",
        "version": 1,
        "start": "2026-11-28T00:00:00Z",
        "end": "2026-11-28T03:00:00Z",
        "slots": 4,
        "skipped_slots": 0,
        "rerun": False,
        "max_parallel": 1,
        "status": "running",
        "created_by": "alice-laptop",
        "created_at": "2026-11-28T23:30:00Z",
        "finished_at": None,
        "runs": [
            {
                "id": run.id,
                "scheduled_for": "2026-11-28T00:00:00Z",
                "status": "queued",
                "started_at": None,
                "finished_at": None,
            }
        ],
        "console_url": "https://chalk.example.com/functions/refresh-rates#backfills",
    }
    assert (run.trigger, run.backfill_id, run.triggered_by) == (
        "backfill", backfill.id, "alice-laptop",
    )  # fmt: skip
    assert api.get(f"/api/v1/runs/{run.id}").json()["trigger"] == "backfill"


def test_it_takes_every_option_and_an_offset(api, rates):
    response = api.post(
        "/api/v1/functions/refresh_rates/backfill",  # the Python name finds it too
        {
            "start": "2026-11-28T01:00:00+01:00",
            "end": "2026-11-28T02:30:00-01:00",
            "rerun": True,
            "max_parallel": 3,
            "confirm": True,
        },
        format="json",
    )

    assert response.status_code == 201
    document = response.json()
    assert (document["start"], document["end"], document["slots"]) == (
        "2026-11-28T00:00:00Z", "2026-11-28T03:30:00Z", 4,
    )  # fmt: skip
    assert (document["rerun"], document["max_parallel"]) == (True, 3)
    assert [run["scheduled_for"] for run in document["runs"]] == [
        "2026-11-28T00:00:00Z", "2026-11-28T01:00:00Z", "2026-11-28T02:00:00Z",
    ]  # fmt: skip


def test_it_reads_a_backfill(api, rates):
    created = api.post(
        URL, {"start": "2026-11-28T00:00:00Z", "end": "2026-11-28T01:00:00Z"}, format="json"
    ).json()

    response = api.get(f"/api/v1/backfills/{created['id']}")

    assert response.status_code == 200
    assert response.json() == created


def test_it_answers_404_for_an_unknown_backfill(api):
    for response in (api.get("/api/v1/backfills/404"), api.post("/api/v1/backfills/404/cancel")):
        assert response.status_code == 404
        assert response.json() == {"error": "not_found", "detail": "no backfill 404 here"}


def test_it_cancels_a_backfill_and_its_active_runs(api, rates):
    created = api.post(
        URL,
        {"start": "2026-11-28T00:00:00Z", "end": "2026-11-28T05:00:00Z", "max_parallel": 2},
        format="json",
    ).json()

    response = api.post(f"/api/v1/backfills/{created['id']}/cancel")

    assert response.status_code == 200
    document = response.json()
    assert (document["status"], document["finished_at"]) == ("cancelled", "2026-11-28T23:30:00Z")
    assert [run["status"] for run in document["runs"]] == ["cancelled", "cancelled"]
    again = api.post(f"/api/v1/backfills/{created['id']}/cancel")
    assert again.status_code == 409
    assert again.json() == {
        "error": "backfill_finished",
        "detail": f"backfill {created['id']} already ended (cancelled); there is nothing to cancel",
    }


def test_it_asks_for_a_confirmation_above_the_threshold(api, rates):
    body = {"start": "2026-11-24T00:00:00Z", "end": "2026-11-28T04:00:00Z"}  # 101 slots
    before = everything()

    response = api.post(URL, body, format="json")

    assert response.status_code == 400
    assert response.json() == {
        "error": "confirm_required",
        "detail": "this backfill would run 101 slots of refresh-rates from "
        "2026-11-24T00:00:00Z to 2026-11-28T04:00:00Z, more than the 100 "
        "(CHALK_BACKFILL_CONFIRM_SLOTS) that start without a confirmation; to go ahead, send "
        'it again with "confirm": true (or --yes)',
    }
    assert everything() == before
    confirmed = api.post(URL, {**body, "confirm": True}, format="json")
    assert (confirmed.status_code, confirmed.json()["slots"]) == (201, 101)


def test_it_refuses_a_function_without_a_schedule(api):
    api.put("/api/v1/functions/by-hand", deploy_body(schedule=None), format="json")
    before = everything()

    response = api.post(
        "/api/v1/functions/by-hand/backfill",
        {"start": "2026-11-28T00:00:00Z", "end": "2026-11-28T01:00:00Z"},
        format="json",
    )

    assert response.status_code == 400
    assert response.json() == {
        "error": "no_schedule",
        "detail": "by-hand has no schedule, so it has no slots to backfill; run it once with "
        "“Run now”, `chalkcompute run by-hand` or POST /api/v1/functions/by-hand/trigger",
    }
    assert everything() == before


def test_it_answers_404_for_an_unknown_function(api):
    response = api.post(
        "/api/v1/functions/nightly-rollup/backfill",
        {"start": "2026-11-28T00:00:00Z", "end": "2026-11-28T01:00:00Z"},
        format="json",
    )

    assert response.status_code == 404
    assert response.json()["error"] == "not_found"
    assert not Backfill.objects.exists()


GOOD = {"start": "2026-11-28T00:00:00Z", "end": "2026-11-28T03:00:00Z"}
ISO_HINT = "is not an ISO 8601 date and time; write it as 2026-12-01T00:00:00Z"


@pytest.mark.parametrize(
    ("body", "error", "detail"),
    [
        ({**GOOD, "start": "2026-11-28T00:00:00"}, "invalid_start",
         "start: '2026-11-28T00:00:00' has no time zone; give an offset or Z, e.g. "
         "2026-11-28T00:00:00Z"),
        ({**GOOD, "end": "2026-11-28T03:00"}, "invalid_end",
         "end: '2026-11-28T03:00' has no time zone; give an offset or Z, e.g. "
         "2026-11-28T03:00:00Z"),
        ({**GOOD, "start": "2026-11-28"}, "invalid_start",
         "start: '2026-11-28' has no time zone; give an offset or Z, e.g. "
         "2026-11-28T00:00:00Z"),
        ({**GOOD, "start": "yesterday"}, "invalid_start", f"start: 'yesterday' {ISO_HINT}"),
        ({**GOOD, "end": 1764374400}, "invalid_end",
         "end: must be a date and time as a string, not a number"),
        ({**GOOD, "start": None}, "invalid_start", "start: This field may not be null."),
        ({"end": GOOD["end"]}, "invalid_start",
         "start: is required: the first slot's date and time, e.g. 2026-12-01T00:00:00Z"),
        ({**GOOD, "end": "2026-11-29T00:00:00Z"}, "invalid_range",
         "end 2026-11-29T00:00:00Z is after now (2026-11-28T23:30:00Z): a backfill runs past "
         "slots, and the schedule runs the coming ones; give an end at or before now"),
        ({"start": "2026-11-28T03:00:00Z", "end": "2026-11-28T00:00:00Z"}, "invalid_range",
         "start 2026-11-28T03:00:00Z is after end 2026-11-28T00:00:00Z; give a start at or "
         "before the end"),
        ({"start": "2026-11-28T00:01:00Z", "end": "2026-11-28T00:59:00Z"}, "invalid_range",
         "0 * * * * has no slot from 2026-11-28T00:01:00Z to 2026-11-28T00:59:00Z; widen the "
         "range"),
        ({"start": "2025-01-01T00:00:00Z", "end": "2026-11-28T00:00:00Z", "confirm": True},
         "too_many_slots",
         "0 * * * * has more than 10000 slots from 2025-01-01T00:00:00Z to "
         "2026-11-28T00:00:00Z, the most one backfill runs (CHALK_BACKFILL_MAX_SLOTS); "
         "backfill a shorter range at a time"),
        ({**GOOD, "max_parallel": 0}, "invalid_max_parallel",
         "max_parallel is how many of the backfill's runs may be active at once: a whole "
         "number from 1 to 10, not 0"),
        ({**GOOD, "max_parallel": 11}, "invalid_max_parallel",
         "max_parallel is how many of the backfill's runs may be active at once: a whole "
         "number from 1 to 10, not 11"),
        ({**GOOD, "max_parallel": "2"}, "invalid_max_parallel",
         "max_parallel: must be a whole number, not a string"),
        ({**GOOD, "max_parallel": 2.0}, "invalid_max_parallel",
         "max_parallel: must be a whole number, not a number"),
        ({**GOOD, "max_parallel": True}, "invalid_max_parallel",
         "max_parallel: must be a whole number, not a boolean"),
        ({**GOOD, "rerun": "yes"}, "invalid_rerun", "rerun: Must be a valid boolean."),
        ({**GOOD, "confirm": 1}, "invalid_confirm", "confirm: Must be a valid boolean."),
        ({**GOOD, "parallel": 2}, "unknown_field",
         "unknown field 'parallel'; this endpoint accepts start, end, rerun, max_parallel, "
         "confirm. Check the spelling, or upgrade the server if your SDK is newer"),
    ],
)  # fmt: skip
def test_it_refuses_bad_input_and_writes_nothing(api, rates, body, error, detail):
    before = everything()

    response = api.post(URL, body, format="json")

    assert response.status_code == 400, response.content
    assert response.json() == {"error": error, "detail": detail}
    assert everything() == before


def test_it_refuses_a_body_that_is_not_an_object(api, rates):
    response = api.post(URL, [GOOD], format="json")

    assert response.status_code == 400
    assert response.json() == {
        "error": "invalid_request",
        "detail": "the request body must be a JSON object with the fields start, end, rerun, "
        "max_parallel, confirm; it is a list",
    }
    assert not Backfill.objects.exists()

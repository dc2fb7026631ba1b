"""Deploying a schedule in a time zone over the API: the zone is kept, shown and used for
every next run; a zone the server cannot read is a 400 that says what to write instead."""

from datetime import UTC, datetime, timedelta

import pytest

from scheduling.models import Function
from tests.server.support import deploy_body, row_counts

URL = "/api/v1/functions/refresh-rates"
pytestmark = pytest.mark.usefixtures("clock")


def deploy(api, **overrides):
    return api.put(URL, deploy_body(**overrides), format="json")


def test_a_schedule_in_a_zone_runs_at_that_zones_wall_clock(api):
    response = deploy(api, schedule="0 9 * * 1-5", timezone="Europe/Berlin")

    assert response.status_code == 201
    body = response.json()
    assert body["timezone"] == "Europe/Berlin"
    assert "Europe/Berlin" in body["schedule_description"]
    # Now is Saturday 2026-11-28 23:30 UTC; Berlin is on CET (UTC+1) until March.
    assert body["next_runs"] == [
        "2026-11-30T08:00:00Z",
        "2026-12-01T08:00:00Z",
        "2026-12-02T08:00:00Z",
    ]
    assert [fire["local"] for fire in body["upcoming"]] == [
        "2026-11-30T09:00:00+01:00",
        "2026-12-01T09:00:00+01:00",
        "2026-12-02T09:00:00+01:00",
    ]
    version = Function.objects.get().current_version
    assert (version.cron, version.timezone) == ("0 9 * * 1-5", "Europe/Berlin")


def test_utc_is_the_default_and_the_same_as_no_zone(api, clock):
    first = deploy(api)
    clock.shift(timedelta(minutes=1))

    again = deploy(api, timezone="UTC")

    assert first.json()["timezone"] is None
    assert again.json()["deploy"] == "unchanged"


def test_changing_only_the_zone_moves_the_next_slot(api, clock):
    deploy(api, schedule="0 9 * * *")
    assert Function.objects.get().next_fire_at == datetime(2026, 11, 29, 9, 0, tzinfo=UTC)

    response = deploy(api, schedule="0 9 * * *", timezone="Asia/Kolkata")

    assert response.json()["deploy"] == "updated"
    # 09:00 in Kolkata (UTC+05:30) on the 29th is 03:30 UTC.
    assert Function.objects.get().next_fire_at == datetime(2026, 11, 29, 3, 30, tzinfo=UTC)


def test_the_preview_says_what_a_change_of_clocks_does(api, clock):
    clock.move_to(datetime(2027, 3, 27, 12, 0, tzinfo=UTC))

    body = deploy(api, schedule="30 2 * * *", timezone="Europe/Berlin").json()

    # 02:30 does not exist in Berlin on 28 March 2027: the clocks go from 02:00 to 03:00.
    first, second = body["upcoming"][:2]
    assert (first["at"], first["local"]) == ("2027-03-28T01:00:00Z", "2027-03-28T03:00:00+02:00")
    assert first["note"] == "02:30 does not exist on 28 March: runs at 03:00"
    assert (second["at"], second["note"]) == ("2027-03-29T00:30:00Z", None)


@pytest.mark.parametrize(
    ("zone", "says"),
    [
        ("Europe/Berln", 'did you mean "Europe/Berlin"'),
        ("europe/berlin", '"Europe/Berlin"'),
        ("PST", "America/Los_Angeles"),
        ("CET", "abbreviation"),
        ("Mars/Olympus_Mons", "IANA"),
        (3, "IANA"),
        ("", "IANA"),
    ],
)
def test_a_zone_it_cannot_read_is_a_400_that_says_what_to_write(api, zone, says):
    before = row_counts()

    response = deploy(api, timezone=zone)

    assert response.status_code == 400, response.json()
    body = response.json()
    assert body["detail"].startswith("timezone: ")
    assert says in body["detail"]
    assert row_counts() == before


def test_a_zone_without_a_schedule_is_refused(api):
    response = deploy(api, schedule=None, timezone="Europe/Berlin")

    assert response.status_code == 400
    assert "there is no schedule" in response.json()["detail"]


def test_a_timeout_longer_than_the_time_between_slots_is_said_at_deploy(api):
    response = deploy(api, schedule="*/10 * * * *", timeout=3600)

    assert response.status_code == 201
    assert response.json()["warnings"] == [
        "timeout=3600 s is longer than the shortest time between two slots (10 min): the slot "
        'after a run that long is skipped (overlap="skip")'
    ]


def test_a_change_of_clocks_can_make_the_shortest_gap(api, clock):
    # "30 1,3 * * *" has 2 h between 01:30 and 03:30, but in New York on 14 March 2027 the
    # clocks skip from 02:00 to 03:00, and 01:30 EST and 03:30 EDT are an hour apart.
    clock.move_to(datetime(2027, 3, 1, tzinfo=UTC))

    response = deploy(api, schedule="30 1,3 * * *", timezone="America/New_York", timeout=5400)

    assert response.json()["warnings"][0].startswith(
        "timeout=5400 s is longer than the shortest time between two slots (1 h)"
    )
    assert deploy(api, schedule="30 1,3 * * *", timeout=5400).json()["warnings"] == []

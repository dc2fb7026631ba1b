"""The console's functions page and the minimal function page."""

import pytest

from tests.server.support import deploy_body

pytestmark = pytest.mark.usefixtures("clock")


@pytest.fixture
def alice_logged_in(client, alice):
    alice.is_staff = True  # the console is for staff (tests/console has the access matrix)
    alice.save()
    client.force_login(alice)
    return client


@pytest.fixture
def deployed(api):
    api.put("/api/v1/functions/refresh-rates", deploy_body(), format="json")
    api.put("/api/v1/functions/nightly-rollup", deploy_body(schedule="0 2 * * *"), format="json")
    api.post("/api/v1/functions/nightly-rollup/pause", {"reason": "migrating"}, format="json")


def test_it_lists_functions_on_the_functions_page(alice_logged_in, deployed):
    response = alice_logged_in.get("/")

    assert response.status_code == 200
    html = response.content.decode()
    assert '<a href="/functions/refresh-rates">refresh-rates</a>' in html
    assert "every hour, on the hour <code>0 * * * *</code>" in html
    assert "2026-11-29 00:00" in html
    assert "every day at 02:00 UTC <code>0 2 * * *</code>" in html
    assert html.count("<td>paused</td>") == 1


def test_it_shows_a_functions_schedule_and_next_five_fire_times(alice_logged_in, deployed):
    response = alice_logged_in.get("/functions/refresh-rates")

    assert response.status_code == 200
    html = response.content.decode()
    assert "Every hour, on the hour: <code>0 * * * *</code>, in UTC." in html
    for hour in ("2026-11-29 00:00", "01:00", "02:00", "03:00", "2026-11-29 04:00"):
        assert hour in html
    assert "Version 1" in html
    assert "<code>refresh_rates</code> in <code>refresh_rates.py</code>" in html


def test_it_shows_who_paused_a_function_and_why(alice_logged_in, deployed):
    response = alice_logged_in.get("/functions/nightly-rollup")

    assert "Paused by alice-laptop at 2026-11-28 23:30 UTC: migrating." in response.content.decode()


def test_it_asks_for_a_login_before_showing_a_function(client, deployed):
    response = client.get("/functions/refresh-rates")

    assert response.status_code == 302
    assert response["Location"] == "/login/?next=/functions/refresh-rates"


def test_it_answers_404_for_an_unknown_function_page(alice_logged_in):
    assert alice_logged_in.get("/functions/nightly-rollup").status_code == 404

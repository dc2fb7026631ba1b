"""Backfills on a function's page: the form, the confirm step of a large one, the progress of
a running one (polled while it runs) and its Cancel button."""

import datetime as dt

import pytest
from django.utils import timezone

from runs.backfills import backfill_advance
from runs.models import Backfill, Run
from runs.services import attempt_begin, attempt_claim, attempt_finish
from tests.console.support import html
from tests.runs.support import deploy

PAGE = "/functions/refresh-rates"


def yesterday(hour: int) -> dt.datetime:
    midnight = (timezone.now() - dt.timedelta(days=1)).replace(
        hour=0, minute=0, second=0, microsecond=0
    )
    return midnight + dt.timedelta(hours=hour)


def form(first: int = 0, last: int = 2, **fields) -> dict:
    """The form as a browser posts it: datetime-local values, read as UTC."""
    return {
        "action": "backfill",
        "name": "refresh-rates",
        "start": f"{yesterday(first):%Y-%m-%dT%H:%M}",
        "end": f"{yesterday(last):%Y-%m-%dT%H:%M}",
        "parallel": "1",
        **fields,
    }


def test_it_offers_the_form_on_a_scheduled_functions_page(console, rates):
    page = html(console.get(PAGE))

    assert '<h2 id="backfills">Backfills</h2>' in page
    assert 'name="start" type="datetime-local"' in page
    assert 'type="number" min="1" max="10"' in page
    assert 'value="backfill"' in page
    assert "No backfills yet." in page


def test_it_offers_no_form_for_a_function_without_a_schedule(console, db):
    deploy("by-hand", "pass")

    assert 'id="backfills"' not in html(console.get("/functions/by-hand"))


def test_it_starts_a_backfill_and_shows_its_progress(console, rates):
    response = console.post(PAGE, form(0, 2, rerun="1", parallel="2"))

    backfill = Backfill.objects.get()
    assert response.status_code == 303
    assert response["Location"] == f"{PAGE}#backfills"
    assert (backfill.start, backfill.end, backfill.rerun, backfill.max_parallel) == (
        yesterday(0), yesterday(2), True, 2,
    )  # fmt: skip
    assert backfill.created_by == "olivia"
    page = html(console.get(PAGE))
    assert f"Started backfill {backfill.id} of refresh-rates: 3 slots, 2 at a time." in page
    assert "0 of 3 slots run (0 succeeded), 2 running." in page
    assert f'value="{backfill.id}"' in page and 'value="cancel-backfill"' in page


def test_it_shows_a_finished_backfills_outcome(console, rates):
    console.post(PAGE, form(0, 1))
    backfill = Backfill.objects.get()
    for _ in range(2):
        run = backfill.runs.get(status="queued")
        attempt, _ = attempt_claim(
            attempt_id=run.attempts.get().id, executor="local", executor_ref="t",
            now=timezone.now(),
        )  # fmt: skip
        attempt_begin(attempt=attempt, now=timezone.now())
        attempt_finish(attempt=attempt, status="succeeded", now=timezone.now())
        backfill_advance(backfill_id=backfill.id, now=timezone.now())

    page = html(console.get(PAGE))

    assert f"Backfill {backfill.id} " in page and "status-done" in page
    assert "2 of 2 slots run (2 succeeded)." in page
    assert 'value="cancel-backfill"' not in page


def test_it_asks_before_a_large_backfill_and_starts_it_once_confirmed(console, rates, settings):
    settings.CHALK_BACKFILL_CONFIRM_SLOTS = 2

    asked = console.post(PAGE, form(0, 2))

    assert asked.status_code == 200
    page = html(asked)
    start, end = f"{yesterday(0):%Y-%m-%d %H:%M}", f"{yesterday(2):%Y-%m-%d %H:%M}"
    assert f"This backfill runs 3 slots of refresh-rates, from {start} to {end} UTC. Start it?" in (
        page
    )
    assert '<input type="hidden" name="confirm" value="1">' in page
    assert f'<input type="hidden" name="start" value="{yesterday(0):%Y-%m-%dT%H:%M}">' in page
    assert not Backfill.objects.exists()

    confirmed = console.post(PAGE, form(0, 2, confirm="1"))

    assert confirmed.status_code == 303
    assert Backfill.objects.get().slots == 3


@pytest.mark.parametrize(
    ("fields", "message"),
    [
        ({"start": ""}, "Give the start as a date and time in UTC, e.g. 2026-12-01 00:00."),
        ({"end": "soon"}, "Give the end as a date and time in UTC, e.g. 2026-12-01 00:00."),
        ({"parallel": "two"}, "Runs at once is a whole number, e.g. 1."),
        ({"parallel": "11"}, "max_parallel is how many of the backfill&#x27;s runs may be active "
                             "at once: a whole number from 1 to 10, not 11"),
    ],
)  # fmt: skip
def test_it_refuses_bad_input_keeping_what_was_typed(console, rates, fields, message):
    response = console.post(PAGE, form(0, 2, **fields))

    assert response.status_code == 400
    page = html(response)
    assert message in page
    assert f'value="{yesterday(0):%Y-%m-%dT%H:%M}"' in page or "start" in fields
    assert not Backfill.objects.exists() and not Run.objects.exists()


def test_it_refuses_an_end_after_now(console, rates):
    later = timezone.now() + dt.timedelta(hours=2)

    response = console.post(PAGE, form(0, 2, end=f"{later:%Y-%m-%dT%H:%M}"))

    assert response.status_code == 400
    assert "a backfill runs past slots, and the schedule runs the coming ones" in html(response)
    assert not Backfill.objects.exists()


def test_it_cancels_a_running_backfill(console, rates):
    console.post(PAGE, form(0, 5, parallel="2"))
    backfill = Backfill.objects.get()

    response = console.post(
        PAGE, {"action": "cancel-backfill", "name": "refresh-rates", "backfill": backfill.id}
    )

    assert response.status_code == 303
    backfill.refresh_from_db()
    assert backfill.status == "cancelled"
    assert set(backfill.runs.values_list("status", flat=True)) == {"cancelled"}
    page = html(console.get(PAGE))
    assert f"Cancelled backfill {backfill.id} of refresh-rates." in page
    assert 'value="cancel-backfill"' not in page


def test_it_refuses_to_cancel_a_backfill_of_another_function(console, rates):
    response = console.post(
        PAGE, {"action": "cancel-backfill", "name": "refresh-rates", "backfill": "999"}
    )

    assert response.status_code == 400
    assert "refresh-rates has no backfill &#x27;999&#x27;. Reload." in html(response)


def test_the_progress_polls_while_a_backfill_runs_and_stops_after(console, rates):
    console.post(PAGE, form(0, 0))
    headers = {"HX-Request": "true", "HX-Target": "function-backfills"}

    running = html(console.get(PAGE, headers=headers))

    assert running.startswith('\n  <div id="function-backfills" hx-get="/functions/refresh-rates"')
    assert 'hx-trigger="every 2s' in running and "<h2" not in running
    Backfill.objects.update(status="done")
    assert "hx-trigger" not in html(console.get(PAGE, headers=headers))

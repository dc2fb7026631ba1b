"""The functions page: every function with its schedule, next run, last runs and state, and
the actions on it (pause with a reason, resume, run now, several at once)."""

import datetime as dt

import pytest
from django.utils import timezone

from runs.models import Run
from scheduling.models import Function
from scheduling.services import function_pause
from tests.console.support import html
from tests.personas import acting
from tests.runs.support import deploy, finish_run
from tests.support import NOW


@pytest.fixture
def rollup(db):
    return deploy("nightly-rollup", "pass", schedule="0 2 * * *")


def test_it_lists_functions_with_their_schedule_in_words_and_cron(console, rates, rollup):
    page = html(console.get("/"))

    assert '<a href="/functions/refresh-rates">refresh-rates</a>' in page
    assert "every hour, on the hour <code>0 * * * *</code>" in page
    assert "every day at 02:00 UTC <code>0 2 * * *</code>" in page


def test_it_shows_the_next_run_relative_and_in_utc(clock, console):
    deploy("refresh-rates", "pass", schedule="0 * * * *", now=NOW)

    page = html(console.get("/"))

    assert "in 30 min" in page
    assert (
        '<time class="muted" datetime="2026-11-29T00:00:00+00:00">2026-11-29 00:00 UTC</time>'
        in page
    )


def test_it_shows_the_last_runs_as_marks_with_words_not_only_colour(console, rates):
    succeeded = finish_run(rates)
    failed = finish_run(deploy("flaky", "pass"), status="failed", error=("KeyError", "x", ""))

    page = html(console.get("/"))

    assert f'href="/runs/{succeeded.id}"' in page
    assert f'<span class="visually-hidden">run {succeeded.id} succeeded</span>' in page
    assert f'<span class="visually-hidden">run {failed.id} failed</span>' in page
    assert f'title="Run {failed.id}: failed,' in page


def test_it_shows_at_most_ten_last_runs_per_function(console, rates):
    runs = [finish_run(rates) for _ in range(12)]

    page = html(console.get("/"))

    assert f"run {runs[1].id} succeeded" not in page
    assert all(f"run {run.id} succeeded" in page for run in runs[2:])


def test_it_shows_who_paused_a_function_and_why(clock, console, rates):
    function_pause(function=rates, actor=acting("alice"), reason="vendor outage", now=NOW)

    page = html(console.get("/"))

    assert "Paused by alice now: vendor outage" in page
    assert page.count("<td>paused</td>") == 1


def test_it_pauses_a_function_with_a_reason(clock, console, rates):
    response = console.post(
        "/", {"action": "pause", "name": "refresh-rates", "reason": "vendor outage"}
    )

    assert (response.status_code, response["Location"]) == (303, "/")
    rates.refresh_from_db()
    assert (rates.paused, rates.paused_by, rates.paused_reason, rates.paused_at) == (
        True, "olivia", "vendor outage", NOW,
    )  # fmt: skip
    assert rates.next_fire_at is None
    assert "Paused refresh-rates: vendor outage." in html(console.get("/"))


def test_it_resumes_a_paused_function(clock, console, rates):
    function_pause(function=rates, actor=acting("alice"), reason="", now=NOW)

    response = console.post("/", {"action": "resume", "name": "refresh-rates"})

    assert response.status_code == 303
    rates.refresh_from_db()
    assert (rates.paused, rates.next_fire_at) == (False, dt.datetime(2026, 11, 29, tzinfo=dt.UTC))


def test_it_runs_a_function_now_and_goes_to_its_run(console, rates):
    response = console.post("/", {"action": "run", "name": "refresh-rates"})

    run = Run.objects.get()
    assert (response.status_code, response["Location"]) == (303, f"/runs/{run.id}")
    assert (run.function, run.trigger, run.triggered_by, run.status) == (
        rates,
        "manual",
        "olivia",
        "queued",
    )


def test_it_sends_htmx_to_the_run_page_after_run_now(console, rates):
    response = console.post("/", {"action": "run", "name": "refresh-rates"}, HTTP_HX_REQUEST="true")

    assert response["HX-Redirect"] == f"/runs/{Run.objects.get().id}"


def test_it_pauses_the_selected_functions_together(console, rates, rollup):
    deploy("untouched", "pass", schedule="10m")

    response = console.post(
        "/",
        {
            "action": "pause-selected",
            "names": ["refresh-rates", "nightly-rollup"],
            "reason": "migration",
        },
    )

    assert response.status_code == 303
    paused = Function.objects.filter(paused=True).values_list("name", "paused_reason")
    assert sorted(paused) == [("nightly-rollup", "migration"), ("refresh-rates", "migration")]


def test_it_resumes_the_selected_functions_together(console, rates, rollup):
    now = timezone.now()
    for function in (rates, rollup):
        function_pause(function=function, actor=acting("alice"), reason="", now=now)

    console.post("/", {"action": "resume-selected", "names": ["refresh-rates", "nightly-rollup"]})

    assert not Function.objects.filter(paused=True).exists()


def test_it_refuses_a_pause_reason_longer_than_500_characters(console, rates):
    response = console.post("/", {"action": "pause", "name": "refresh-rates", "reason": "x" * 501})

    assert response.status_code == 400
    assert "A reason is at most 500 characters; this one is 501. Shorten it." in html(response)
    rates.refresh_from_db()
    assert not rates.paused


def test_it_refuses_to_pause_an_unknown_function(console, rates):
    response = console.post("/", {"action": "pause", "name": "nightly-rollup", "reason": ""})

    assert response.status_code == 400
    assert "There is no function named &#x27;nightly-rollup&#x27;" in html(response)


def test_it_pauses_none_of_the_selection_when_one_is_unknown(console, rates):
    response = console.post("/", {"action": "pause-selected", "names": ["refresh-rates", "gone"]})

    assert response.status_code == 400
    assert not Function.objects.filter(paused=True).exists()


def test_it_asks_to_select_functions_before_pausing_several(console, rates):
    response = console.post("/", {"action": "pause-selected", "reason": "x"})

    assert response.status_code == 400
    assert "Select one or more functions first" in html(response)


def test_it_refuses_an_unknown_action(console, rates):
    response = console.post("/", {"action": "delete", "name": "refresh-rates"})

    assert response.status_code == 400
    assert Function.objects.filter(name="refresh-rates").exists()


def test_it_answers_an_htmx_pause_with_the_list_fragment_and_its_message(console, rates):
    response = console.post(
        "/", {"action": "pause", "name": "refresh-rates", "reason": "later"}, HTTP_HX_REQUEST="true"
    )

    page = html(response)
    assert response.status_code == 200
    assert page.startswith('\n<div id="function-list"')
    assert "<html" not in page
    assert (
        '<div id="flash" hx-swap-oob="true"><p class="message success" role="status">'
        "Paused refresh-rates: later." in page
    )
    assert "<td>paused</td>" in page


def test_it_answers_an_htmx_pause_error_with_status_400_and_the_error_in_its_row(console, rates):
    response = console.post(
        "/",
        {"action": "pause", "name": "refresh-rates", "reason": "y" * 501},
        HTTP_HX_REQUEST="true",
    )

    assert response.status_code == 400
    assert 'id="error-refresh-rates" role="alert">A reason is at most 500' in html(response)


def test_it_filters_functions_by_part_of_their_name(console, rates, rollup):
    page = html(console.get("/?q=rollup"))

    assert "/functions/nightly-rollup" in page
    assert "/functions/refresh-rates" not in page


def test_it_filters_functions_by_state(console, rates, rollup):
    function_pause(function=rollup, actor=acting("alice"), reason="", now=timezone.now())

    page = html(console.get("/?state=paused"))

    assert "/functions/nightly-rollup" in page
    assert "/functions/refresh-rates" not in page


def test_it_pages_through_functions_by_name(console):
    for number in range(55):
        deploy(f"job-{number:02}", "pass")

    first = html(console.get("/"))
    second = html(console.get("/?after=job-49"))

    assert "/functions/job-49" in first and "/functions/job-50" not in first
    assert 'href="?after=job-49"' in first
    assert "/functions/job-50" in second and "/functions/job-54" in second
    assert "/functions/job-49" not in second
    assert 'href="?before=job-50"' in second


def test_it_explains_how_to_deploy_a_first_function(console):
    page = html(console.get("/"))

    assert "No functions yet" in page
    assert '@chalkcompute.function(schedule="10m")' in page
    assert 'href="/tokens"' in page


def test_it_says_when_no_function_matches_the_filter(console, rates):
    page = html(console.get("/?q=nothing-like-this"))

    assert "No functions match these filters." in page


def test_it_reads_the_same_number_of_queries_for_five_or_fifty_functions(
    console, django_assert_max_num_queries
):
    for number in range(5):
        finish_run(deploy(f"small-{number}", "pass"))
    with django_assert_max_num_queries(7) as five:  # one of them reads the role
        console.get("/")
    for number in range(45):
        finish_run(deploy(f"more-{number}", "pass"))

    with django_assert_max_num_queries(len(five.captured_queries)):
        console.get("/")

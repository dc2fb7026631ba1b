"""A run's page: status, timings, attempts and their errors, the log (filtered, live while
the run is active), CPU and memory; and cancelling it."""

import pytest
from django.utils import timezone

from runs.logs import log_append
from runs.services import run_trigger
from tests.console.support import html
from tests.personas import acting
from tests.runs.support import deploy, finish_run

TRACEBACK = (
    "Traceback (most recent call last):\n  File \"flaky.py\", line 3, in flaky\nKeyError: 'EUR'\n"
)


@pytest.fixture
def failed(db):
    return finish_run(
        deploy("flaky", "pass"),
        status="failed",
        error=("KeyError", "'EUR'", TRACEBACK),
        lines=[
            ("INFO", "fetching rates"),
            ("", "plain print"),
            ("WARNING", "slow upstream"),
            ("ERROR", "no EUR rate"),
        ],
        samples=[(0.5, 50 * 2**20), (1.2, 80 * 2**20), (1.5, 60 * 2**20)],
    )


@pytest.fixture
def active(rates):
    return finish_run(rates, lines=[("INFO", "first")], active=True)


def test_it_shows_the_status_trigger_slot_and_timings(console, failed):
    page = html(console.get(f"/runs/{failed.id}"))

    assert (
        '<span class="symbol" aria-hidden="true">✗</span> failed</span> '
        '<span class="reason">— KeyError: &#x27;EUR&#x27;</span>' in page
    )
    assert "<dt>Trigger</dt><dd>manual by olivia</dd>" in page
    assert f'<time datetime="{failed.scheduled_for.isoformat()}"' in page
    assert '<dd id="run-duration">4.0 s</dd>' in page


def test_it_shows_what_the_function_returned_as_indented_json_escaped(console, rates):
    run = finish_run(rates, returned=({"EUR": 0.9, "note": "<b>fresh</b>"}, "json"))

    page = html(console.get(f"/runs/{run.id}"))

    assert (
        '<figcaption>Returned</figcaption>\n    <pre tabindex="0">{\n  &quot;EUR&quot;: 0.9,\n'
        "  &quot;note&quot;: &quot;&lt;b&gt;fresh&lt;/b&gt;&quot;\n}</pre>" in page
    )


def test_it_shows_the_repr_of_a_value_that_is_not_json_as_text(console, rates):
    run = finish_run(rates, returned=("{'EUR', 'USD'}", "repr"))

    page = html(console.get(f"/runs/{run.id}"))

    assert "Returned: its repr(), as the value is not JSON" in page
    assert '<pre tabindex="0">{&#x27;EUR&#x27;, &#x27;USD&#x27;}</pre>' in page


def test_it_shows_no_return_value_for_a_function_that_returned_none(console, failed):
    assert 'id="return-value"' not in html(console.get(f"/runs/{failed.id}"))


def test_it_shows_each_attempt_with_its_exit_code_and_error(console, failed):
    page = html(console.get(f"/runs/{failed.id}"))

    assert "Attempt 1:" in page
    assert "<dt>Exit code</dt><dd>1</dd>" in page
    assert "<strong>KeyError</strong>: &#x27;EUR&#x27;" in page
    assert "KeyError: &#x27;EUR&#x27;\n</pre>" in page
    assert "local <code>4242@worker-1</code>" in page


def test_it_shows_the_log_lines_in_order(console, failed):
    page = html(console.get(f"/runs/{failed.id}"))

    texts = ["fetching rates", "plain print", "slow upstream", "no EUR rate"]
    positions = [page.index(f'<span class="text">{text}</span>') for text in texts]
    assert positions == sorted(positions)


def test_it_filters_the_log_by_level(console, failed):
    page = html(console.get(f"/runs/{failed.id}?level=warning"))

    assert '<span class="text">slow upstream</span>' in page
    assert '<span class="text">no EUR rate</span>' in page
    assert "fetching rates</span>" not in page and "plain print</span>" not in page


def test_it_searches_the_log_for_text(console, failed):
    page = html(console.get(f"/runs/{failed.id}?q=eur"))

    assert '<span class="text">no EUR rate</span>' in page
    assert "slow upstream</span>" not in page


def test_it_answers_an_htmx_log_filter_with_the_log_fragment_only(console, failed):
    response = console.get(
        f"/runs/{failed.id}?level=error", HTTP_HX_REQUEST="true", HTTP_HX_TARGET="log"
    )

    assert html(response).lstrip().startswith('<div id="log">')
    assert "no EUR rate" in html(response)


def test_it_refuses_an_unknown_log_level(console, failed):
    response = console.get(f"/runs/{failed.id}?level=loud")

    assert response.status_code == 400
    assert "Unknown log level &#x27;loud&#x27;" in html(response)


def test_it_draws_cpu_and_memory_with_the_peak_and_totals(console, failed):
    page = html(console.get(f"/runs/{failed.id}"))

    assert (
        "Peak memory <strong>80.0 MiB</strong> · CPU time <strong>1.5 s</strong> · 3 points" in page
    )
    assert page.count('<polyline points="') == 2
    assert 'aria-label="Memory from' in page and "peaking at 80.0 MiB" in page


def test_it_polls_the_log_of_an_active_run_while_the_tab_is_visible(console, active):
    page = html(console.get(f"/runs/{active.id}"))

    last = active.attempts.get().log_lines_set.get().id
    assert f'hx-get="/runs/{active.id}?after={last}"' in page
    # console.js drops the polls of a hidden tab (a trigger filter would need eval: see the CSP)
    assert 'hx-trigger="every 1s, visibilitychange from:document" data-only-while-visible' in page


def test_it_does_not_poll_a_finished_run(console, failed):
    page = html(console.get(f"/runs/{failed.id}"))

    assert '<div id="poller"></div>' in page
    assert "every 1s" not in page


def test_it_answers_a_poll_with_only_the_lines_after_the_last_one_shown(console, active):
    attempt = active.attempts.get()
    seen = attempt.log_lines_set.get().id
    log_append(
        attempt=attempt,
        first_seq=1,
        lines=[{"text": "second"}, {"text": "third"}],
        now=timezone.now(),
    )

    response = console.get(
        f"/runs/{active.id}?after={seen}", HTTP_HX_REQUEST="true", HTTP_HX_TARGET="poller"
    )

    fragment = html(response)
    assert '<div id="log-lines" hx-swap-oob="beforeend">' in fragment
    assert "second</span>" in fragment and "third</span>" in fragment
    assert "first</span>" not in fragment
    newest = attempt.log_lines_set.order_by("-id").first().id
    assert f'hx-get="/runs/{active.id}?after={newest}"' in fragment
    assert (
        '<section id="run-summary" aria-labelledby="summary-heading" hx-swap-oob="true">'
        in fragment
    )


def test_it_stops_polling_by_answering_without_a_trigger_once_the_run_ended(console, failed):
    seen = failed.attempts.get().log_lines_set.order_by("-id").first().id

    fragment = html(console.get(f"/runs/{failed.id}?after={seen}", HTTP_HX_REQUEST="true"))

    assert fragment.startswith('\n<div id="poller"></div>')
    assert "hx-trigger" not in fragment
    assert 'failed</span> <span class="reason">' in fragment


def test_it_cancels_an_active_run(console, rates):
    queued = run_trigger(
        function=rates, trigger="manual", actor=acting("olivia"), now=timezone.now()
    )

    response = console.post(f"/runs/{queued.id}", {"action": "cancel"})

    assert (response.status_code, response["Location"]) == (303, f"/runs/{queued.id}")
    queued.refresh_from_db()
    assert (queued.status, queued.status_reason) == ("cancelled", "cancelled by olivia")


def test_it_asks_a_running_run_to_stop_when_cancelled(console, active):
    console.post(f"/runs/{active.id}", {"action": "cancel"})

    active.refresh_from_db()
    assert active.cancel_requested_at is not None
    assert active.status_reason == "cancel requested by olivia"
    assert "Cancel requested at" in html(console.get(f"/runs/{active.id}"))


def test_it_says_a_finished_run_has_nothing_to_cancel(console, failed):
    response = console.post(f"/runs/{failed.id}", {"action": "cancel"}, follow=True)

    assert f"Run {failed.id} had already ended: nothing to cancel." in html(response)
    failed.refresh_from_db()
    assert failed.status == "failed"


def test_it_offers_to_cancel_only_while_the_run_is_active(console, active, failed):
    assert "Cancel run</button>" in html(console.get(f"/runs/{active.id}"))
    assert "Cancel run</button>" not in html(console.get(f"/runs/{failed.id}"))


def test_it_refuses_an_unknown_action(console, active):
    response = console.post(f"/runs/{active.id}", {"action": "explode"})

    assert response.status_code == 400
    active.refresh_from_db()
    assert active.status == "running"


def test_it_answers_404_for_an_unknown_run(console):
    assert console.get("/runs/999999").status_code == 404


def test_it_shows_the_last_500_lines_with_a_link_to_earlier_ones(console, rates):
    run = finish_run(rates, lines=[("INFO", f"line {n}") for n in range(520)])

    page = html(console.get(f"/runs/{run.id}"))

    assert (
        '<span class="text">line 519</span>' in page and '<span class="text">line 20</span>' in page
    )
    assert '<span class="text">line 19</span>' not in page
    first_shown = run.attempts.get().log_lines_set.get(seq=20).id
    earlier = html(console.get(f"/runs/{run.id}?before={first_shown}"))
    assert (
        '<span class="text">line 0</span>' in earlier
        and '<span class="text">line 19</span>' in earlier
    )
    assert '<span class="text">line 20</span>' not in earlier


def test_it_reads_the_same_number_of_queries_for_short_or_long_logs(
    console, rates, django_assert_max_num_queries
):
    short = finish_run(rates, lines=[("INFO", "x")], samples=[(0.1, 1000)])
    with django_assert_max_num_queries(10) as few:
        console.get(f"/runs/{short.id}")
    long = finish_run(
        rates, lines=[("INFO", "x")] * 800, samples=[(0.1 * n, 1000) for n in range(900)]
    )

    with django_assert_max_num_queries(len(few.captured_queries)):
        console.get(f"/runs/{long.id}")


def test_it_draws_cpu_use_from_the_cpu_time_spent_between_samples(console, failed):
    page = html(console.get(f"/runs/{failed.id}"))

    # 0.5 → 1.2 → 1.5 CPU seconds, a second apart: 70% then 30% of one core.
    assert "peaking at 70% of one core" in page
    assert "CPU, % of one core (peak 70%, top of the chart 100%)" in page


def test_it_says_a_run_with_one_sample_was_too_short_to_chart(console, rates):
    short = finish_run(rates, samples=[(0.1, 30 * 2**20)])

    page = html(console.get(f"/runs/{short.id}"))

    assert (
        "Too short to chart: the run lasted 1.0 s and the runner took 1 sample (one a second)"
        in page
    )
    assert "the function did not start" not in page


def test_it_says_a_run_shorter_than_the_first_sample_was_too_short_to_chart(console, rates):
    quick = finish_run(rates)

    page = html(console.get(f"/runs/{quick.id}"))

    assert "less than the runner's first sample (it samples once a second)." in page
    assert "the function did not start" not in page

"""The runs page: every run newest first, by function, status and text in their logs."""

import pytest

from tests.console.support import html
from tests.runs.support import deploy, finish_run


@pytest.fixture
def history(db):
    """Three runs of refresh-rates (no retries) and one failed run of flaky, newest last."""
    rates = deploy("refresh-rates", "pass", schedule="0 * * * *")
    flaky = deploy("flaky", "pass")
    return {
        "ok": finish_run(rates, lines=[("INFO", "fetched 3 rates")]),
        "ok2": finish_run(rates, lines=[("INFO", "fetched 4 rates")]),
        "timeout": finish_run(rates, status="timed_out", lines=[("WARNING", "slow upstream")]),
        "failed": finish_run(
            flaky,
            status="failed",
            error=("KeyError", "'EUR'", ""),
            lines=[("ERROR", "no EUR rate")],
        ),
    }


def run_links(page: str, history: dict) -> list[str]:
    """The fixture's runs listed on `page`, in page order."""
    found = [(page.find(f'<a href="/runs/{run.id}">'), name) for name, run in history.items()]
    return [name for position, name in sorted(found) if position >= 0]


def test_it_lists_every_run_newest_first(console, history):
    page = html(console.get("/runs"))

    assert run_links(page, history) == ["failed", "timeout", "ok2", "ok"]
    assert '<a href="/functions/flaky">flaky</a> <span class="muted">v1</span>' in page
    assert "KeyError: &#x27;EUR&#x27;" in page


def test_it_shows_each_status_as_a_symbol_and_a_word(console, history):
    page = html(console.get("/runs"))

    assert '<span class="symbol" aria-hidden="true">⧗</span> timed out</span>' in page
    assert '<span class="symbol" aria-hidden="true">✗</span> failed</span>' in page


def test_it_filters_runs_by_status(console, history):
    assert run_links(html(console.get("/runs?status=failed")), history) == ["failed"]


def test_it_filters_runs_by_function(console, history):
    assert run_links(html(console.get("/runs?function=refresh-rates")), history) == [
        "timeout",
        "ok2",
        "ok",
    ]


def test_it_filters_runs_by_function_and_status_together(console, history):
    page = html(console.get("/runs?function=refresh-rates&status=timed_out"))

    assert run_links(page, history) == ["timeout"]


def test_it_finds_runs_by_text_in_their_logs(console, history):
    assert run_links(html(console.get("/runs?q=RATES")), history) == ["ok2", "ok"]


def test_it_combines_log_search_with_the_other_filters(console, history):
    assert run_links(html(console.get("/runs?q=rate&status=failed")), history) == ["failed"]


def test_it_says_what_the_log_search_reads(console, history):
    page = html(console.get("/runs"))

    assert (
        "Log search reads the newest 100,000 log lines and lists up to 1,000 matching runs" in page
    )


def test_it_says_when_no_run_matches(console, history):
    page = html(console.get("/runs?q=nothing-like-this"))

    assert "No runs match these filters." in page


def test_it_explains_an_unknown_function_with_status_400(console, history):
    response = console.get("/runs?function=nightly-rollup")

    assert response.status_code == 400
    assert "There is no function named &#x27;nightly-rollup&#x27;; check the name." in html(
        response
    )


def test_it_explains_an_unknown_status_with_status_400(console, history):
    response = console.get("/runs?status=exploded")

    assert response.status_code == 400
    assert "Unknown status &#x27;exploded&#x27;: pick one from the list." in html(response)


def test_it_refuses_a_search_longer_than_200_characters(console, history):
    assert console.get("/runs?q=" + "a" * 201).status_code == 400


def test_it_pages_through_runs_with_older_and_newer_links(console, rates):
    runs = [finish_run(rates) for _ in range(52)]

    first = html(console.get("/runs"))
    older = html(console.get(f"/runs?after={runs[2].id}"))

    assert f'href="/runs/{runs[2].id}"' in first and f'href="/runs/{runs[1].id}"' not in first
    assert f'<a rel="next" href="?after={runs[2].id}">Older →</a>' in first
    assert f'href="/runs/{runs[0].id}"' in older
    assert f'<a rel="prev" href="?before={runs[1].id}">← Newer</a>' in older


def test_it_keeps_the_filters_in_the_paging_links(console, rates):
    runs = [finish_run(rates) for _ in range(51)]

    page = html(console.get("/runs?function=refresh-rates&status=succeeded"))

    assert f'href="?function=refresh-rates&amp;status=succeeded&amp;after={runs[1].id}"' in page


def test_it_answers_400_for_a_malformed_cursor(console, history):
    assert console.get("/runs?before=12abc").status_code == 400


def test_it_says_how_runs_come_about_when_there_are_none(console):
    page = html(console.get("/runs"))

    assert "No runs yet. Functions run on their schedule" in page


def test_it_reads_the_same_number_of_queries_for_few_or_many_runs(
    console, rates, django_assert_max_num_queries
):
    finish_run(rates, lines=[("INFO", "x")])
    with django_assert_max_num_queries(9) as few:  # one of them reads the role
        console.get("/runs?q=x")
    for _ in range(60):
        finish_run(rates, lines=[("INFO", "x")])

    with django_assert_max_num_queries(len(few.captured_queries)):
        console.get("/runs?q=x")

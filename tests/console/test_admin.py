"""The operators' admin for what happened: runs filterable by status and function, searchable,
with cancel and re-run actions and a link to the run's page; "run now" on functions; every
model of runs/ readable."""

import datetime as dt

import pytest
from django.utils import timezone

from runs.backfills import backfill_start
from runs.models import ImageBuild, Run
from runs.services import run_trigger
from tests.console.support import html
from tests.personas import acting
from tests.runs.support import deploy, finish_run


@pytest.fixture
def operator(client, django_user_model):
    client.force_login(django_user_model.objects.create_superuser("root", "root@example.com", None))
    return client


@pytest.fixture
def runs(db):
    rates = deploy("refresh-rates", "pass", schedule="0 * * * *")
    flaky = deploy("flaky", "pass")
    return {
        "ok": finish_run(rates, lines=[("INFO", "hello")], samples=[(0.1, 1000)]),
        "failed": finish_run(flaky, status="failed", error=("KeyError", "EUR", "")),
        "queued": run_trigger(
            function=rates, trigger="manual", actor=acting("t"), now=timezone.now()
        ),
    }


def listed(page: str, runs: dict) -> list[str]:
    return sorted(name for name, run in runs.items() if f"/admin/runs/run/{run.id}/change/" in page)


def test_it_lists_runs_with_a_link_to_each_runs_page(operator, runs):
    page = html(operator.get("/admin/runs/run/"))

    assert listed(page, runs) == ["failed", "ok", "queued"]
    assert f'<a href="/runs/{runs["ok"].id}">run page</a>' in page


def test_it_filters_runs_by_status(operator, runs):
    assert listed(html(operator.get("/admin/runs/run/?status__exact=failed")), runs) == ["failed"]


def test_it_filters_runs_by_function(operator, runs):
    page = html(operator.get("/admin/runs/run/?function=refresh-rates"))

    assert listed(page, runs) == ["ok", "queued"]


def test_it_searches_runs_by_function_name(operator, runs):
    assert listed(html(operator.get("/admin/runs/run/?q=flaky")), runs) == ["failed"]


def test_it_cancels_the_selected_runs(operator, runs):
    response = operator.post(
        "/admin/runs/run/",
        {"action": "cancel", "_selected_action": [runs["queued"].id, runs["ok"].id]},
        follow=True,
    )

    assert "Cancelled 1 run(s). 1 had already ended." in html(response)
    runs["queued"].refresh_from_db()
    assert (runs["queued"].status, runs["queued"].status_reason) == (
        "cancelled",
        "cancelled by root",
    )


def test_it_reruns_the_selected_runs_with_the_current_version(operator, runs):
    current = deploy("flaky", "print('fixed')")

    operator.post("/admin/runs/run/", {"action": "rerun", "_selected_action": [runs["failed"].id]})

    rerun = Run.objects.filter(function=current).order_by("-id").first()
    assert rerun.id != runs["failed"].id
    assert (rerun.version, rerun.trigger, rerun.triggered_by, rerun.status) == (
        current.current_version, "manual", "root", "queued",
    )  # fmt: skip


def test_it_runs_the_selected_functions_now(operator, runs):
    rates = runs["ok"].function

    response = operator.post(
        "/admin/scheduling/function/",
        {"action": "run_now", "_selected_action": [rates.id]},
        follow=True,
    )

    newest = Run.objects.filter(function=rates).order_by("-id").first()
    assert f"Started 1 run(s): {newest.id}." in html(response)
    assert (newest.trigger, newest.triggered_by) == ("manual", "root")


def test_it_keeps_pause_and_resume_on_functions(operator, runs):
    page = html(operator.get("/admin/scheduling/function/"))

    assert '<option value="pause">' in page
    assert '<option value="resume">' in page
    assert '<option value="run_now">Run selected functions now</option>' in page


def test_it_shows_a_runs_attempts_read_only(operator, runs):
    page = html(operator.get(f"/admin/runs/run/{runs['failed'].id}/change/"))

    assert "KeyError" in page
    assert 'name="status"' not in page


@pytest.mark.parametrize("model", ["attempt", "logline", "usagesample", "imagebuild"])
def test_it_lists_every_model_of_what_happened(operator, runs, model):
    ImageBuild.objects.create(
        image=runs["ok"].version.image, executor="local", status="ready", started_at=timezone.now()
    )

    response = operator.get(f"/admin/runs/{model}/")

    assert response.status_code == 200
    assert 'class="action-select"' in html(response)  # at least one row


def test_it_links_an_attempt_to_its_runs_page(operator, runs):
    page = html(operator.get("/admin/runs/attempt/"))

    assert f'<a href="/runs/{runs["ok"].id}">run {runs["ok"].id}</a>' in page


def test_it_shows_backfills_read_only(operator, runs):
    now = timezone.now()
    backfill = backfill_start(
        function=runs["ok"].function, start=now - dt.timedelta(hours=2), end=now,
        actor=acting("t"), now=now,
    )  # fmt: skip

    listing = html(operator.get("/admin/runs/backfill/"))
    page = html(operator.get(f"/admin/runs/backfill/{backfill.id}/change/"))

    assert f"/admin/runs/backfill/{backfill.id}/change/" in listing
    assert "refresh-rates" in page
    assert 'name="status"' not in page and 'name="_save"' not in page

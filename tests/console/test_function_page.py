"""A function's page: configuration, next fire times, missed and skipped slots, versions with
a diff and a rollback, its runs; and the actions on it."""

import datetime as dt

import pytest
from django.utils import timezone

from chalkcompute.spec import FunctionSpec
from runs.models import OVERLAP_SKIP_REASON, ImageBuild, Run
from scheduling.models import Secret
from scheduling.services import function_deploy, function_pause, secret_delete, secret_set
from tests.console.support import html
from tests.personas import PLATFORM, acting
from tests.runs.support import deploy, finish_run


@pytest.fixture
def rates_v2(rates):
    """refresh-rates redeployed every 15 minutes with a second line of code."""
    return deploy(
        "refresh-rates",
        'chalk_logger.info("refreshing")\nprint("fetched 3 rates")',
        schedule="*/15 * * * *",
        retries=3,
        timeout=600,
        memory="1Gi",
    )


def test_it_shows_the_configuration_of_the_current_version(console, rates):
    page = html(console.get("/functions/refresh-rates"))

    assert '<h2 id="config">Version 1</h2>' in page
    assert "<code>refresh_rates</code> in <code>refresh_rates.py</code>" in page
    assert "cpu default, memory 1Gi, no gpu" in page
    assert "3 (backoff ×2.0, 1.0–60.0 s)" in page
    assert "<dt>Timeout</dt><dd>10 min</dd>" in page
    assert (
        "Not built yet: a runs worker builds it once it is deployed (else its first run does)."
        in page
    )


def test_it_shows_the_image_build_state(console, rates):
    ImageBuild.objects.create(
        image=rates.current_version.image,
        executor="local",
        status="ready",
        started_at=timezone.now(),
    )

    page = html(console.get("/functions/refresh-rates"))

    assert (
        'local build: <span class="status status-ready">'
        '<span class="symbol" aria-hidden="true">✓</span> ready</span>' in page
    )


def test_it_shows_the_image_build_log(console, rates):
    ImageBuild.objects.create(
        image=rates.current_version.image,
        executor="local",
        status="failed",
        log="$ pip install ratesclient\nERROR: No matching distribution found for ratesclient\n",
        started_at=timezone.now(),
    )

    page = html(console.get("/functions/refresh-rates"))

    assert "<summary>Build log</summary>" in page
    assert "ERROR: No matching distribution found for ratesclient" in page


def test_it_says_when_kubernetes_runs_install_the_image_as_they_start(console, rates, settings):
    notice = "No image registry is configured: on Kubernetes each run installs"
    assert notice not in html(console.get("/functions/refresh-rates"))

    settings.CHALK_EXECUTOR = "kubernetes"
    settings.CHALK_K8S_REGISTRY = ""
    settings.CHALK_K8S_INSTALL_AT_START = True

    assert notice in html(console.get("/functions/refresh-rates"))


def test_it_shows_the_secret_names_but_no_values(console):
    secret_set(actor=PLATFORM, name="EXCHANGE_API_KEY", value="never-on-a-page", now=timezone.now())
    deploy("refresh-rates", "pass", secrets=["EXCHANGE_API_KEY"])

    page = html(console.get("/functions/refresh-rates"))

    assert "<code>EXCHANGE_API_KEY</code>" in page
    assert "never-on-a-page" not in page


def test_it_shows_the_next_five_fire_times(console):
    deploy(
        "refresh-rates",
        "pass",
        schedule="0 * * * *",
        now=dt.datetime(2026, 11, 28, 23, 30, tzinfo=dt.UTC),
    )

    page = html(console.get("/functions/refresh-rates"))

    for hour in ("00:00", "01:00", "02:00", "03:00", "04:00"):
        assert f'<time datetime="2026-11-29T{hour}:00+00:00">2026-11-29 {hour}</time>' in page
    assert "2026-11-29 05:00" not in page


def test_it_shows_who_paused_it_and_why_instead_of_fire_times(console, rates):
    function_pause(
        function=rates,
        actor=acting("alice"),
        reason="migrating",
        now=dt.datetime(2026, 11, 28, 23, 30, tzinfo=dt.UTC),
    )

    page = html(console.get("/functions/refresh-rates"))

    assert (
        "Paused by alice at 2026-11-28 23:30 UTC: migrating. No slots run until it is resumed."
        in page
    )
    assert "Next runs" not in page


def test_it_lists_missed_and_skipped_slots(console, rates):
    slot = dt.datetime(2026, 11, 28, 22, tzinfo=dt.UTC)
    skipped = Run.objects.create(
        function=rates, version=rates.current_version, trigger="schedule", scheduled_for=slot,
        status="skipped", status_reason='the previous run was still active (overlap="skip")',
        created_at=slot, finished_at=slot,
    )  # fmt: skip
    late = Run.objects.create(
        function=rates, version=rates.current_version, trigger="schedule",
        scheduled_for=slot + dt.timedelta(hours=1), missed_slots=4, created_at=slot,
        status_reason="ran the latest slot after downtime; 4 earlier slots were missed",
    )  # fmt: skip
    finish_run(rates)  # ran as planned: not listed

    page = html(console.get("/functions/refresh-rates"))
    listed = page.split("Missed and skipped slots")[1].split("</table>")[0]

    assert f'<a href="/runs/{skipped.id}">{skipped.id}</a>' in listed
    assert "the previous run was still active (overlap=&quot;skip&quot;)" in listed
    assert f'<a href="/runs/{late.id}">{late.id}</a>' in listed
    assert "(4 earlier slots missed)" in listed
    assert listed.count('<td><a href="/runs/') == 2


def test_it_says_when_no_slot_was_missed(console, rates):
    assert "None among its last 1000 runs: every slot ran." in html(
        console.get("/functions/refresh-rates")
    )


def test_it_lists_its_runs_newest_first(console, rates):
    first, second = (
        finish_run(rates),
        finish_run(rates, status="failed", error=("KeyError", "rate", "")),
    )

    page = html(console.get("/functions/refresh-rates"))

    assert page.index(f'<a href="/runs/{second.id}">') < page.index(f'<a href="/runs/{first.id}">')


def test_it_pages_through_its_runs_with_older_and_newer_links(console, rates):
    runs = [finish_run(rates) for _ in range(27)]

    first_page = html(console.get("/functions/refresh-rates"))
    older = html(console.get(f"/functions/refresh-rates?after={runs[2].id}"))

    assert (
        f'href="/runs/{runs[2].id}"' in first_page
        and f'href="/runs/{runs[1].id}"' not in first_page
    )
    assert f'href="?after={runs[2].id}"' in first_page
    assert f'href="/runs/{runs[1].id}"' in older and f'href="/runs/{runs[0].id}"' in older
    assert f'href="?before={runs[1].id}"' in older


def test_it_answers_htmx_paging_with_the_runs_fragment_only(console, rates):
    finish_run(rates)

    response = console.get(
        "/functions/refresh-rates", HTTP_HX_REQUEST="true", HTTP_HX_TARGET="function-runs"
    )

    assert html(response).lstrip().startswith('<div id="function-runs">')
    assert "<html" not in html(response)


def test_it_says_how_to_start_a_first_run(console, rates):
    page = html(console.get("/functions/refresh-rates"))

    assert "No runs yet. The first runs at its next slot" in page


def test_it_lists_its_versions_with_a_rollback_button_for_older_ones(console, rates_v2):
    page = html(console.get("/functions/refresh-rates"))

    assert '2 <span class="badge">current</span>' in page
    assert "Roll back to version 1" in page
    assert "Roll back to version 2" not in page


def test_it_shows_the_difference_between_two_versions(console, rates_v2):
    page = html(console.get("/functions/refresh-rates?from=1&to=2"))

    assert (
        '<span class="diff-remove"><span class="visually-hidden">removed: </span>'
        "-schedule:   0 * * * *</span>" in page
    )
    assert (
        '<span class="diff-add"><span class="visually-hidden">added: </span>'
        "+schedule:   */15 * * * *</span>" in page
    )
    assert "+    print(&quot;fetched 3 rates&quot;)" in page


def test_it_answers_an_htmx_diff_with_the_diff_fragment_only(console, rates_v2):
    response = console.get(
        "/functions/refresh-rates?from=2&to=1",
        HTTP_HX_REQUEST="true",
        HTTP_HX_TARGET="version-diff",
    )

    assert html(response).lstrip().startswith('<div id="version-diff"')
    assert "-schedule:   */15 * * * *" in html(response)


def test_it_says_two_versions_with_equal_content_have_no_differences(console, rates_v2):
    deploy(
        "refresh-rates",
        'chalk_logger.info("refreshing")',
        schedule="0 * * * *",
        retries=3,
        timeout=600,
        memory="1Gi",
    )

    page = html(console.get("/functions/refresh-rates?from=1&to=3"))

    assert "Version 1 and version 3 have the same content." in page


def test_it_explains_a_diff_with_an_unknown_version(console, rates_v2):
    page = html(console.get("/functions/refresh-rates?from=1&to=9"))

    assert "refresh-rates has no version 9; versions are numbered 1 to 2." in page


def test_it_rolls_back_by_deploying_an_older_version_as_a_new_one(console, rates_v2):
    response = console.post(
        "/functions/refresh-rates", {"action": "rollback", "name": "refresh-rates", "version": "1"}
    )

    assert (response.status_code, response["Location"]) == (303, "/functions/refresh-rates")
    rates_v2.refresh_from_db()
    current = rates_v2.current_version
    assert (current.number, current.schedule, current.created_by) == (3, "0 * * * *", "olivia")
    assert current.content_hash == rates_v2.versions.get(number=1).content_hash
    assert "Rolled back: version 3 now has the content of version 1." in html(
        console.get("/functions/refresh-rates")
    )


def test_it_says_a_rollback_to_the_current_content_changes_nothing(console, rates_v2):
    console.post(
        "/functions/refresh-rates", {"action": "rollback", "name": "refresh-rates", "version": "2"}
    )

    assert rates_v2.versions.count() == 2


def test_it_refuses_a_rollback_to_a_version_whose_secret_was_deleted(console):
    secret = secret_set(actor=PLATFORM, name="OLD_KEY", value="x", now=timezone.now())[0]
    deploy("refresh-rates", "pass", secrets=["OLD_KEY"])
    function = deploy("refresh-rates", "print(2)")
    secret_delete(secret=secret, actor=PLATFORM, now=timezone.now())

    response = console.post(
        "/functions/refresh-rates", {"action": "rollback", "name": "refresh-rates", "version": "1"}
    )

    assert response.status_code == 400
    assert "secret OLD_KEY is not stored on this server" in html(response)
    assert function.versions.count() == 2
    assert not Secret.objects.exists()


def test_it_refuses_a_rollback_to_a_version_that_does_not_exist(console, rates):
    response = console.post(
        "/functions/refresh-rates", {"action": "rollback", "name": "refresh-rates", "version": "7"}
    )

    assert response.status_code == 400
    assert "refresh-rates has no version 7; pick one from its version history" in html(response)


def test_it_pauses_it_with_a_reason(console, rates):
    response = console.post(
        "/functions/refresh-rates", {"action": "pause", "name": "refresh-rates", "reason": "quota"}
    )

    assert response.status_code == 303
    rates.refresh_from_db()
    assert (rates.paused, rates.paused_reason, rates.paused_by) == (True, "quota", "olivia")


def test_it_keeps_a_too_long_reason_in_the_form_with_the_error(console, rates):
    response = console.post(
        "/functions/refresh-rates",
        {"action": "pause", "name": "refresh-rates", "reason": "z" * 600},
    )

    assert response.status_code == 400
    assert f'value="{"z" * 600}" aria-invalid="true"' in html(response)
    rates.refresh_from_db()
    assert not rates.paused


def test_it_resumes_it(console, rates):
    function_pause(function=rates, actor=acting("alice"), reason="", now=timezone.now())

    console.post("/functions/refresh-rates", {"action": "resume", "name": "refresh-rates"})

    rates.refresh_from_db()
    assert not rates.paused and rates.next_fire_at is not None


def test_it_runs_it_now_and_goes_to_the_run(console, rates):
    response = console.post("/functions/refresh-rates", {"action": "run", "name": "refresh-rates"})

    assert response["Location"] == f"/runs/{Run.objects.get().id}"


def test_it_answers_404_for_an_unknown_function(console):
    response = console.get("/functions/nightly-rollup")

    assert response.status_code == 404
    assert "No function named nightly-rollup" in html(response)


def test_it_answers_400_for_a_malformed_runs_cursor(console, rates):
    response = console.get("/functions/refresh-rates?after=abc")

    assert response.status_code == 400
    assert "after must be a whole number" in html(response)


def test_it_reads_the_same_number_of_queries_for_few_or_many_runs_and_versions(
    console, rates, django_assert_max_num_queries
):
    finish_run(rates)
    with django_assert_max_num_queries(17) as few:  # files, alerts, backfills, run times
        console.get("/functions/refresh-rates?from=1&to=1")
    for number in range(30):
        finish_run(rates)
        deploy("refresh-rates", f"print({number})")

    with django_assert_max_num_queries(len(few.captured_queries)):
        console.get("/functions/refresh-rates?from=1&to=20")


def test_it_shows_env_tags_and_shipped_files_but_no_secret_value(console):
    secret_set(actor=PLATFORM, name="API_TOKEN", value="never-on-a-page", now=timezone.now())
    function_deploy(
        name="refresh-rates",
        source="def refresh_rates():\n    pass\n",
        source_filename="refresh_rates.py",
        entrypoint="refresh_rates",
        spec=FunctionSpec(
            env={"MODE": "prod", "TOKEN": {"secret": "API_TOKEN"}}, tags={"team": "data"}
        ),
        files={"helpers/rates.py": b"RATE = 1\n"},
        actor=PLATFORM,
        now=timezone.now(),
    )

    page = html(console.get("/functions/refresh-rates"))

    assert "<code>MODE</code>=<code>prod</code>" in page
    assert "<code>TOKEN</code>=secret <code>API_TOKEN</code>" in page
    assert '<a class="tag" href="/?tag=team:data">team=data</a>' in page
    assert '<code>helpers/rates.py</code> <span class="muted">9 bytes' in page
    assert "never-on-a-page" not in page
    listed = html(console.get("/?tag=team:data"))
    assert 'href="/functions/refresh-rates"' in listed
    assert 'href="/functions/refresh-rates"' not in html(console.get("/?tag=team:web"))
    refused = console.get("/?tag=has space")
    assert refused.status_code == 400
    assert "tag &#x27;has space&#x27;: tag name" in html(refused)


def test_it_shows_how_long_runs_take_beside_the_time_between_slots(console, rates):
    hour = dt.datetime(2026, 11, 28, 12, tzinfo=dt.UTC)
    for n, took in enumerate([10, 20, 30, 40, 100]):
        slot = hour + dt.timedelta(hours=n)
        Run.objects.create(
            function=rates, version=rates.current_version, trigger="schedule",
            scheduled_for=slot, status="succeeded", created_at=slot, started_at=slot,
            finished_at=slot + dt.timedelta(seconds=took),
        )  # fmt: skip
    slot = hour + dt.timedelta(hours=5)
    Run.objects.create(
        function=rates, version=rates.current_version, trigger="schedule", scheduled_for=slot,
        status="skipped", status_reason=OVERLAP_SKIP_REASON, created_at=slot, finished_at=slot,
    )  # fmt: skip

    page = html(console.get("/functions/refresh-rates"))

    assert (
        "Its last 5 successful runs took 30 s (median) and 1 min 40 s (90th percentile); "
        "slots are at least 1 h apart, and an attempt may take 10 min."
    ) in page
    assert "Skipped because the previous run was still running: 1 of the last" in page


def test_next_runs_are_shown_in_the_schedules_zone_and_in_utc(console, db):
    # Deployed a day before the clocks change in Amsterdam: 02:30 on 28 March does not exist.
    deploy("standup", "pass", schedule="30 2 * * *", zone="Europe/Amsterdam",
           now=dt.datetime(2027, 3, 27, 12, tzinfo=dt.UTC))  # fmt: skip

    page = html(console.get("/functions/standup"))

    assert (
        "Every day at 02:30, Europe/Amsterdam time: <code>30 2 * * *</code>; when the clocks "
        "change, as Debian's cron does."
    ) in page
    listed = page.split('<ol class="next-runs">')[1].split("</ol>")[0]
    assert "2027-03-28 03:00 CEST</time>" in listed
    assert "01:00 UTC" in listed
    assert "02:30 does not exist on 28 March" in listed

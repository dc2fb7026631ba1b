"""The console in a real browser: Debian's Chromium driven by Playwright against the live
server, with real celery workers running the functions (the platform fixture, tests/conftest.py).

Each test saves a screenshot of the page it is about under test-output/screenshots/. Every tab
reports what the Content-Security-Policy blocks, and a test fails on any such violation.
"""

import datetime as dt
import os
import re
import textwrap
from pathlib import Path

import pytest
from django.utils import timezone
from playwright.sync_api import Page, expect, sync_playwright

from access.models import ApiToken
from common import crypto
from runs.models import Run
from scheduling.models import Function, Secret
from tests.personas import OLIVIA_PASSWORD, make_token
from tests.runs.support import deploy, finish_run
from tests.server.support import ChalkServer

pytestmark = pytest.mark.slow

REPO = Path(__file__).resolve().parents[2]
SCREENSHOTS = REPO / "test-output" / "screenshots"
CHROMIUM = "/usr/bin/chromium"
CHROMIUM_ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
]
# Runs are real processes: starting one, building its image once and reporting take seconds.
RUN_TIMEOUT_MS = 90_000
# chalkweb/settings.py's CONTENT_SECURITY_POLICY, as every page must carry it.
POLICY = {
    "default-src 'self'",
    "script-src 'self'",
    "style-src 'self'",
    "img-src 'self' data:",
    "connect-src 'self'",
    "frame-ancestors 'none'",
    "form-action 'self'",
    "base-uri 'self'",
    "object-src 'none'",
}


def directives(header: str | None) -> set[str]:
    return {directive.strip() for directive in (header or "").split(";") if directive.strip()}


# Runs in every document before its own scripts: reports each securitypolicyviolation event,
# and each eval htmx refuses (base.html's allowEval: false, e.g. an hx-trigger filter), which
# the policy would block.
REPORT_VIOLATIONS = """
document.addEventListener("securitypolicyviolation", (event) => {
  window.__cspViolation(
    `${location.pathname}${location.search}: ${event.effectiveDirective} blocked `
    + `${event.blockedURI || "?"} (${event.sourceFile || "page"}:${event.lineNumber}`
    + `${event.sample ? " " + JSON.stringify(event.sample) : ""})`
  );
}, true);
document.addEventListener("htmx:evalDisallowedError", (event) => {
  window.__cspViolation(
    `${location.pathname}${location.search}: htmx would eval (script-src 'unsafe-eval') for `
    + event.target.outerHTML.slice(0, 160)
  );
}, true);
"""

HELLO = """
import time

import chalkcompute
from chalk import chalk_logger


@chalkcompute.function(name="hello-console", schedule="0 0 1 1 *")
def hello_console() -> dict:
    chalk_logger.info("step one: fetching")
    time.sleep(3)
    chalk_logger.warning("step two: 3 rates are stale")
    time.sleep(1)
    return {"stale": 3}
"""


@pytest.fixture(scope="module")
def chromium():
    if not Path(CHROMIUM).exists():
        pytest.fail(f"{CHROMIUM} is missing: apt-get install -y chromium (.ci/run does)")
    # Playwright's sync API keeps an event loop in this thread; the ORM calls the tests make
    # between browser steps are still synchronous, one at a time.
    os.environ["DJANGO_ALLOW_ASYNC_UNSAFE"] = "true"
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        yield browser
        browser.close()
    os.environ.pop("DJANGO_ALLOW_ASYNC_UNSAFE", None)


@pytest.fixture
def page(chromium, live_server, olivia, settings) -> Page:
    """olivia's browser tab, logged in through the login form."""
    settings.CHALK_PUBLIC_URL = live_server.url
    context = chromium.new_context(
        base_url=live_server.url, viewport={"width": 1280, "height": 900}
    )
    context.set_default_timeout(15_000)
    violations = watch_csp(context)
    tab = context.new_page()
    tab.on("dialog", lambda dialog: dialog.accept())  # "Revoke ci?" and the like
    tab.goto("/runs")
    expect(tab).to_have_url(re.compile(r"/login/\?next=/runs$"))
    tab.get_by_label("Username").fill("olivia")
    tab.get_by_label("Password").fill(OLIVIA_PASSWORD)
    tab.get_by_role("button", name="Log in").click()
    expect(tab).to_have_url(f"{live_server.url}/runs")
    yield tab
    tab.wait_for_timeout(200)  # a violation is reported a moment after it happens
    context.close()
    assert not violations, "the Content-Security-Policy blocked:\n" + "\n".join(violations)


def watch_csp(context) -> list[str]:
    """Collects, for every tab of `context`, what the Content-Security-Policy blocks: the
    securitypolicyviolation events and Chromium's "Refused to ..." console errors."""
    violations: list[str] = []
    context.expose_function("__cspViolation", lambda violation: violations.append(violation))
    context.add_init_script(REPORT_VIOLATIONS)
    context.on(
        "console",
        lambda message: (
            "Content Security Policy" in message.text
            and violations.append(f"console: {message.text}")
        ),
    )
    return violations


def screenshot(tab: Page, name: str) -> None:
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    tab.screenshot(path=SCREENSHOTS / f"{name}.png", full_page=True)


def nav(tab: Page, name: str):
    return tab.get_by_role("navigation", name="Main").get_by_role("link", name=name)


def mark_document(tab: Page) -> None:
    """Marks the loaded document: the mark survives htmx swaps but not a reload."""
    tab.evaluate("window.notReloaded = true")


def assert_not_reloaded(tab: Page) -> None:
    assert tab.evaluate("window.notReloaded === true"), "the page was reloaded"


def test_it_deploys_with_the_sdk_and_shows_a_run_succeed_live(
    platform, page, live_server, tmp_path
):
    platform.start_workers()
    _, token = make_token("laptop")
    script = tmp_path / "hello_console.py"
    script.write_text(textwrap.dedent(HELLO))
    deployed = ChalkServer(live_server.url, token).python(str(script))
    assert deployed.returncode == 0, deployed.stderr

    nav(page, "Functions").click()
    row = page.locator("#function-hello-console")
    expect(row).to_contain_text("at 00:00 UTC on January 1 0 0 1 1 *")
    expect(row).to_contain_text("no runs yet")

    row.get_by_role("button", name="Run now").click()
    run = Run.objects.get(function__name="hello-console")
    expect(page).to_have_url(f"{live_server.url}/runs/{run.id}")
    mark_document(page)
    log = page.locator("#log-lines")
    expect(log).to_contain_text("step one: fetching", timeout=RUN_TIMEOUT_MS)
    expect(page.locator("#run-status")).to_contain_text("running")
    expect(log).not_to_contain_text("step two")
    expect(log).to_contain_text("step two: 3 rates are stale", timeout=RUN_TIMEOUT_MS)
    expect(page.locator("#run-status")).to_contain_text("succeeded", timeout=RUN_TIMEOUT_MS)
    expect(page.locator("#return-value pre")).to_have_text('{\n  "stale": 3\n}')
    assert_not_reloaded(page)
    expect(page.locator("#poller")).not_to_have_attribute("hx-trigger", re.compile(".+"))
    expect(page.locator("#usage")).to_contain_text("Peak memory")
    expect(page.locator("#attempts h3")).to_contain_text("Attempt 1: ✓ succeeded")
    screenshot(page, "run")

    page.goto("/")
    expect(page.locator("#function-hello-console .marks a")).to_have_attribute(
        "title", re.compile(f"^Run {run.id}: succeeded")
    )
    screenshot(page, "functions")


def test_it_pauses_a_function_with_a_reason_and_resumes_it(page):
    deploy("refresh-rates", 'chalk_logger.info("refreshing")', schedule="0 * * * *", retries=3)
    page.goto("/")
    mark_document(page)
    row = page.locator("#function-refresh-rates")

    row.get_by_text("Pause…").click()
    row.get_by_label("Reason (optional)").fill("vendor outage until Monday")
    row.get_by_role("button", name="Pause refresh-rates").click()

    row = page.locator("#function-refresh-rates")
    expect(row).to_contain_text("Paused by olivia now: vendor outage until Monday")
    expect(page.locator("#flash")).to_contain_text("Paused refresh-rates")
    assert_not_reloaded(page)
    assert Function.objects.get(name="refresh-rates").paused_reason == "vendor outage until Monday"

    page.get_by_role("link", name="refresh-rates").click()
    expect(page.locator("p.paused")).to_contain_text(
        re.compile(r"Paused by olivia at .* UTC: vendor outage until Monday\.")
    )
    screenshot(page, "function")

    page.get_by_role("button", name="Resume").click()
    expect(page.locator("h1 .badge")).to_have_text("active")
    expect(page.locator("ol.next-runs li")).to_have_count(5)
    assert not Function.objects.get(name="refresh-rates").paused


def test_it_pauses_the_selected_functions_together_and_resumes_them(page):
    for name in ("refresh-rates", "nightly-rollup", "send-digest"):
        deploy(name, "pass", schedule="0 * * * *")
    page.goto("/")

    page.get_by_label("Select refresh-rates").check()
    page.get_by_label("Select nightly-rollup").check()
    page.get_by_label("Reason for pausing").fill("warehouse migration")
    page.get_by_role("button", name="Pause selected").click()

    expect(page.locator("#flash")).to_contain_text("Paused 2 function(s)")
    expect(page.locator("td", has_text=re.compile("^paused$"))).to_have_count(2)
    assert sorted(Function.objects.filter(paused=True).values_list("name", flat=True)) == [
        "nightly-rollup",
        "refresh-rates",
    ]

    page.get_by_label("Select every function on this page").check()
    page.get_by_role("button", name="Resume selected").click()
    expect(page.locator("#flash")).to_contain_text("Resumed 3 function(s)")
    assert not Function.objects.filter(paused=True).exists()


def test_it_cancels_a_long_run(platform, page):
    platform.start_workers()
    function = deploy(
        "long-export",
        """
        import time
        chalk_logger.info("exporting")
        time.sleep(120)
        """,
    )
    page.goto("/functions/long-export")

    page.get_by_role("button", name="Run now").click()
    expect(page.locator("#log-lines")).to_contain_text("exporting", timeout=RUN_TIMEOUT_MS)
    page.get_by_role("button", name="Cancel run").click()

    expect(page.locator("#run-status")).to_contain_text("cancelled", timeout=30_000)
    run = Run.objects.get(function=function)
    assert (run.status, run.attempts.get().status) == ("cancelled", "cancelled")

    nav(page, "Runs").click()
    expect(page.locator("table.runs")).to_contain_text("cancelled")
    screenshot(page, "runs")


def test_it_backfills_a_range_after_confirming_it_shows_its_progress_and_cancels_it(page, settings):
    settings.CHALK_BACKFILL_CONFIRM_SLOTS = 2
    deploy("refresh-rates", "pass", schedule="0 * * * *")
    midnight = (timezone.now() - dt.timedelta(days=1)).replace(hour=0, minute=0, second=0)
    page.goto("/functions/refresh-rates")

    page.get_by_label("From (UTC)").fill(f"{midnight:%Y-%m-%dT%H:%M}")
    page.get_by_label("to (UTC)").fill(f"{midnight + dt.timedelta(hours=2):%Y-%m-%dT%H:%M}")
    page.get_by_label("Runs at once").fill("2")
    page.get_by_role("button", name="Backfill", exact=True).click()
    expect(page.locator("#backfill-confirm")).to_contain_text(
        "This backfill runs 3 slots of refresh-rates"
    )
    page.get_by_role("button", name="Start the backfill").click()

    progress = page.locator("#function-backfills")
    expect(progress).to_contain_text("0 of 3 slots run (0 succeeded), 2 running.")
    with page.expect_response(lambda response: "/functions/refresh-rates" in response.url):
        pass  # the progress polls while the backfill runs
    screenshot(page, "backfill")
    page.get_by_role("button", name=re.compile(r"^Cancel backfill \d+$")).click()
    expect(page.locator(".message.success")).to_contain_text("Cancelled backfill")
    expect(progress).to_contain_text("cancelled")
    assert set(Run.objects.values_list("trigger", "status")) == {("backfill", "cancelled")}


def test_it_sets_a_secret_and_never_shows_its_value_again(page):
    page.goto("/secrets")

    page.get_by_label("Name", exact=True).fill("EXCHANGE_API_KEY")
    page.get_by_label("Value", exact=True).fill("s3cr3t-typed-in-the-console")
    page.get_by_role("button", name="Save secret").click()

    expect(page.locator("#flash")).to_contain_text("Secret EXCHANGE_API_KEY stored")
    expect(page.locator("#secret-EXCHANGE_API_KEY")).to_be_visible()
    assert "s3cr3t-typed-in-the-console" not in page.content()
    expect(page.get_by_label("Value", exact=True)).to_have_value("")
    page.reload()
    assert "s3cr3t-typed-in-the-console" not in page.content()
    secret = Secret.objects.get(name="EXCHANGE_API_KEY")
    assert crypto.decrypt(secret.ciphertext) == "s3cr3t-typed-in-the-console"
    screenshot(page, "secrets")


def test_it_creates_a_token_shows_it_once_and_revokes_it(page):
    page.goto("/tokens")

    page.get_by_label("Name: who or what uses it").fill("ci")
    page.get_by_role("button", name="Create token").click()

    shown = page.get_by_label("Token", exact=True).input_value()
    assert shown.startswith("chalk_")
    screenshot(page, "tokens")
    page.goto("/tokens")
    assert shown not in page.content()
    expect(page.locator("tbody")).to_contain_text(shown[:12])

    page.get_by_role("button", name="Revoke ci").click()
    expect(page.locator("tbody")).to_contain_text("revoked")
    assert ApiToken.objects.get(name="ci").revoked_at is not None


def test_it_compares_two_versions_without_a_reload(page):
    deploy("refresh-rates", 'chalk_logger.info("v1")', schedule="0 * * * *")
    deploy("refresh-rates", 'chalk_logger.info("v2")', schedule="*/15 * * * *")
    page.goto("/functions/refresh-rates")
    mark_document(page)

    page.get_by_label("From version").fill("1")
    page.get_by_label("to version").fill("2")
    page.get_by_role("button", name="Show differences").click()

    diff = page.locator("#version-diff pre.diff")
    expect(diff.locator(".diff-remove").first).to_contain_text("-schedule:   0 * * * *")
    expect(diff.locator(".diff-add").first).to_contain_text("+schedule:   */15 * * * *")
    assert_not_reloaded(page)


def test_it_filters_a_runs_log_by_level_and_text_without_a_reload(page):
    run = finish_run(
        deploy("flaky", "pass"),
        status="failed",
        error=("KeyError", "'EUR'", "Traceback ...\nKeyError: 'EUR'\n"),
        lines=[("INFO", "fetching rates"), ("WARNING", "slow upstream"), ("ERROR", "no EUR rate")],
    )
    page.goto(f"/runs/{run.id}")
    mark_document(page)
    lines = page.locator("#log-lines .line")
    expect(lines).to_have_count(3)

    page.get_by_label("Level").select_option("warning")
    page.get_by_role("button", name="Filter log").click()
    expect(lines).to_have_count(2)
    page.get_by_label("Contains").fill("eur")
    page.get_by_role("button", name="Filter log").click()

    expect(lines).to_have_count(1)
    expect(lines).to_contain_text("no EUR rate")
    expect(page).to_have_url(re.compile(rf"/runs/{run.id}\?level=warning&q=eur$"))
    assert_not_reloaded(page)


def visit(tab: Page, path: str, status: int = 200) -> None:
    """Opens `path`, checks that it carries the policy (no header, nothing checked) and waits
    until it has loaded everything it loads."""
    response = tab.goto(path)
    assert response.status == status, path
    assert directives(response.headers.get("content-security-policy")) == POLICY, path
    tab.wait_for_load_state("networkidle")


def test_no_page_breaks_the_content_security_policy(page, chromium, live_server, olivia):
    """Every console page, what htmx swaps into them, the login and lockout pages, the admin
    and the API reference, with no inline script, style or handler and no eval: the `page`
    fixture fails the test on anything the policy blocks."""
    deploy("refresh-rates", 'chalk_logger.info("v1")', schedule="0 * * * *")
    function = deploy("refresh-rates", 'chalk_logger.info("v2")', schedule="*/15 * * * *")
    an_hour_ago = timezone.now() - dt.timedelta(hours=1)
    samples = [(0.4 * second, (40 + second) * 2**20) for second in range(8)]
    finished = finish_run(
        function,
        status="failed",
        lines=[("INFO", "fetching rates"), ("ERROR", "no EUR rate")],
        error=("KeyError", "'EUR'", "Traceback ...\nKeyError: 'EUR'\n"),
        samples=samples,
        at=an_hour_ago,
    )
    live = finish_run(function, lines=[("INFO", "still fetching")], samples=samples, active=True)

    for path in ("/", "/functions/refresh-rates", "/runs", "/runs?q=EUR", "/secrets", "/tokens"):
        visit(page, path)
    visit(page, "/no-such-page", status=404)
    # Whatever the main navigation links to, pages added later included.
    visit(page, "/")
    links = page.get_by_role("navigation", name="Main").get_by_role("link")
    for path in links.evaluate_all("links => links.map(link => link.getAttribute('href'))"):
        visit(page, path)
    visit(page, "/secrets")
    page.get_by_label("Name", exact=True).fill("EXCHANGE_API_KEY")
    page.get_by_label("Value", exact=True).fill("demo-key")
    page.get_by_role("button", name="Save secret").click()
    expect(page.locator("#secret-EXCHANGE_API_KEY")).to_be_visible()
    visit(page, "/secrets")

    # What htmx swaps in: a version diff, a filtered log, a live log's polls.
    visit(page, "/functions/refresh-rates")
    page.get_by_label("From version").fill("1")
    page.get_by_label("to version").fill("2")
    page.get_by_role("button", name="Show differences").click()
    expect(page.locator("#version-diff pre.diff .diff-add").first).to_be_visible()
    visit(page, f"/runs/{finished.id}")
    expect(page.locator("#usage svg polyline")).to_have_count(2)
    page.get_by_label("Level").select_option("error")
    page.get_by_role("button", name="Filter log").click()
    expect(page.locator("#log-lines .line")).to_have_count(1)
    visit(page, f"/runs/{live.id}")
    polls = f"/runs/{live.id}?after="
    for _ in range(2):
        with page.expect_response(lambda response: polls in response.url):
            pass
    # A hidden tab does not poll (console.js, in place of an htmx trigger filter's eval).
    sent = []
    page.on("request", lambda request: polls in request.url and sent.append(request.url))
    page.evaluate(
        "Object.defineProperty(document, 'visibilityState', {value: 'hidden', configurable: true})"
    )
    page.wait_for_timeout(2_500)
    assert sent == []
    with page.expect_response(lambda response: polls in response.url):
        page.evaluate(
            "Object.defineProperty(document, 'visibilityState', {value: 'visible'});"
            "document.dispatchEvent(new Event('visibilitychange'))"
        )

    # A new token's field selects itself when focused (console.js, not an inline handler).
    visit(page, "/tokens")
    page.get_by_label("Name: who or what uses it").fill("ci")
    page.get_by_role("button", name="Create token").click()
    # The new page's deferred console.js must have run before the field is focused.
    expect(page.get_by_role("heading", name="Token ci created")).to_be_visible()
    page.wait_for_load_state("load")
    page.get_by_label("Token", exact=True).focus()
    assert page.evaluate(
        "(() => { const field = document.getElementById('new-token');"
        " return field.selectionStart === 0 && field.selectionEnd === field.value.length; })()"
    )

    olivia.is_superuser = True
    olivia.save()
    for path in (
        "/admin/",
        "/admin/scheduling/function/",
        f"/admin/scheduling/function/{function.id}/change/",
        "/admin/runs/run/",
        f"/admin/runs/run/{finished.id}/change/",
        "/admin/axes/accessattempt/",
        "/admin/axes/accessfailurelog/",
    ):
        visit(page, path)
    visit(page, "/api/docs/")
    expect(page.locator(".swagger-ui .info .title")).to_contain_text("Chalkweb API")
    expect(page.locator(".swagger-ui .opblock").first).to_be_visible()

    # Signed out: the login page, and the lockout page after five failures.
    context = chromium.new_context(base_url=live_server.url)
    context.set_default_timeout(15_000)
    violations = watch_csp(context)
    anonymous = context.new_page()
    visit(anonymous, "/login/")
    for _ in range(5):
        anonymous.get_by_label("Username").fill("nobody")
        anonymous.get_by_label("Password").fill("wrong-password")
        with anonymous.expect_response(lambda r: r.request.method == "POST") as posted:
            anonymous.get_by_role("button", name="Log in").click()
    assert posted.value.status == 429
    assert directives(posted.value.headers["content-security-policy"]) == POLICY
    expect(anonymous.locator("#locked-out")).to_contain_text("Too many failed sign-ins")
    screenshot(anonymous, "locked-out")
    anonymous.wait_for_timeout(200)
    context.close()
    assert not violations, "the Content-Security-Policy blocked:\n" + "\n".join(violations)

"""Who reaches the console: olivia (an admin) everything; oscar, logged in with no role,
nothing (403); an anonymous visitor nothing (to the login page). Every page and action. The
roles in between are in tests/test_who_may_do_what.py."""

import pytest
from django.utils import timezone

from access.models import ApiToken
from runs.services import run_trigger
from scheduling.models import Function, Secret
from scheduling.services import secret_set
from tests.personas import PLATFORM, acting, make_token


@pytest.fixture
def world(rates):
    """One of everything, so every page has something to show."""
    run = run_trigger(function=rates, trigger="manual", actor=acting("olivia"), now=timezone.now())
    secret_set(actor=PLATFORM, name="EXCHANGE_API_KEY", value="x", now=timezone.now())
    token, _ = make_token("ci")
    return {"run": run.id, "token": token.id}


PAGES = {
    "functions": "/",
    "function": "/functions/refresh-rates",
    "runs": "/runs",
    "run": "/runs/{run}",
    "secrets": "/secrets",
    "tokens": "/tokens",
}
ACTIONS = {
    "pause": ("/", {"action": "pause", "name": "refresh-rates", "reason": "x"}),
    "run-now": ("/functions/refresh-rates", {"action": "run", "name": "refresh-rates"}),
    "cancel": ("/runs/{run}", {"action": "cancel"}),
    "set-secret": ("/secrets", {"action": "set", "name": "NEW_SECRET", "value": "v"}),
    "delete-secret": ("/secrets", {"action": "delete", "name": "EXCHANGE_API_KEY"}),
    "create-token": ("/tokens", {"action": "create", "name": "sneaky"}),
    "revoke-token": ("/tokens", {"action": "revoke", "token": "{token}"}),
}


def snapshot() -> dict:
    function = Function.objects.get(name="refresh-rates")
    return {
        "paused": function.paused,
        "runs": list(function.runs.values_list("id", "status", "cancel_requested_at")),
        "secrets": sorted(Secret.objects.values_list("name", "updated_at")),
        "tokens": sorted(ApiToken.objects.values_list("name", "revoked_at")),
    }


@pytest.mark.parametrize("page", PAGES.values(), ids=PAGES.keys())
def test_it_shows_every_page_to_an_admin(console, world, page):
    assert console.get(page.format(**world)).status_code == 200


@pytest.mark.parametrize("page", PAGES.values(), ids=PAGES.keys())
def test_it_refuses_every_page_to_a_user_with_no_role(outsider, world, page):
    response = outsider.get(page.format(**world))

    assert response.status_code == 403
    assert "This needs the viewer role" in response.content.decode()
    assert "refresh-rates</a>" not in response.content.decode()


@pytest.mark.parametrize("page", PAGES.values(), ids=PAGES.keys())
def test_it_sends_an_anonymous_visitor_to_log_in(anonymous, world, page):
    url = page.format(**world)

    response = anonymous.get(url)

    assert response.status_code == 302
    assert response["Location"] == f"/login/?next={url}"


@pytest.mark.parametrize(("page", "form"), ACTIONS.values(), ids=ACTIONS.keys())
def test_it_refuses_every_action_to_a_user_with_no_role(outsider, world, page, form):
    before = snapshot()

    response = outsider.post(page.format(**world), {k: v.format(**world) for k, v in form.items()})

    assert response.status_code == 403
    assert snapshot() == before


@pytest.mark.parametrize(("page", "form"), ACTIONS.values(), ids=ACTIONS.keys())
def test_it_refuses_every_action_to_an_anonymous_visitor(anonymous, world, page, form):
    before = snapshot()

    response = anonymous.post(page.format(**world), {k: v.format(**world) for k, v in form.items()})

    assert response.status_code == 302
    assert snapshot() == before


def test_it_sends_an_htmx_request_without_a_session_to_log_in_as_a_whole_page(anonymous, world):
    response = anonymous.get(
        f"/runs/{world['run']}?after=0",
        HTTP_HX_REQUEST="true",
        HTTP_HX_CURRENT_URL=f"http://testserver/runs/{world['run']}",
    )

    assert response.status_code == 200
    assert response["HX-Redirect"] == f"/login/?next=/runs/{world['run']}"


def test_it_lets_a_superuser_with_no_role_in(client, world, django_user_model):
    root = django_user_model.objects.create_user("root", is_superuser=True, is_staff=False)
    client.force_login(root)

    assert client.get("/").status_code == 200


def test_it_shows_the_console_navigation_only_after_login(anonymous, console, world):
    assert 'href="/secrets"' not in anonymous.get("/login/").content.decode()
    assert 'href="/secrets"' in console.get("/").content.decode()

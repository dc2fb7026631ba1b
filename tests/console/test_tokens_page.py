"""The API tokens page: create (its text shown once), list, revoke."""

from django.test import Client
from rest_framework.test import APIClient

from access.models import ApiToken
from tests.console.support import html
from tests.personas import make_token, person


def test_it_creates_a_token_and_shows_its_text_once(console, olivia):
    response = console.post("/tokens", {"action": "create", "name": "ci"})

    assert response.status_code == 201
    token = ApiToken.objects.get()
    plaintext = html(response).split('id="new-token" class="token" value="')[1].split('"')[0]
    assert (token.name, token.created_by, token.prefix) == ("ci", olivia, plaintext[:12])
    assert "Copy it now: it is <strong>not shown again</strong>." in html(response)
    assert f"export CHALK_COMPUTE_TOKEN={plaintext}" in html(response)
    assert plaintext not in html(console.get("/tokens"))


def test_it_creates_a_token_the_api_accepts(console):
    response = console.post("/tokens", {"action": "create", "name": "ci"})
    plaintext = html(response).split('id="new-token" class="token" value="')[1].split('"')[0]

    api = APIClient(HTTP_AUTHORIZATION=f"Bearer {plaintext}")

    assert api.get("/api/v1/functions").status_code == 200


def test_it_lists_tokens_by_their_first_characters(console):
    token, _ = make_token("alice-laptop")

    page = html(console.get("/tokens"))

    assert "<td>alice-laptop</td>" in page
    assert f"<code>{token.prefix}…</code>" in page
    assert "<td>never</td>" in page


def test_it_revokes_a_token(console):
    token, plaintext = make_token("alice-laptop")

    response = console.post("/tokens", {"action": "revoke", "token": str(token.id)})

    assert (response.status_code, response["Location"]) == (303, "/tokens")
    token.refresh_from_db()
    assert token.revoked_at is not None
    assert (
        APIClient(HTTP_AUTHORIZATION=f"Bearer {plaintext}").get("/api/v1/functions").status_code
        == 401
    )
    assert "API token alice-laptop" in html(console.get("/tokens"))


def test_it_refuses_a_token_without_a_name(console):
    response = console.post("/tokens", {"action": "create", "name": "   "})

    assert response.status_code == 400
    assert "a token name is 1 to 100 characters" in html(response)
    assert not ApiToken.objects.exists()


def test_it_refuses_to_revoke_a_token_that_does_not_exist(console):
    response = console.post("/tokens", {"action": "revoke", "token": "12345"})

    assert response.status_code == 400
    assert "There is no such API token" in html(response)


def test_it_refuses_a_malformed_token_id(console):
    assert console.post("/tokens", {"action": "revoke", "token": "1; drop"}).status_code == 400


def test_it_says_how_to_get_a_first_token(console):
    assert "No tokens yet." in html(console.get("/tokens"))


def test_it_shows_a_person_only_their_own_tokens(db):
    make_token("alice-laptop")
    make_token("vic-laptop", username="vic", role="viewer")
    vic = Client()
    vic.force_login(person("vic", role="viewer"))

    page = html(vic.get("/tokens"))

    assert "<td>vic-laptop</td>" in page
    assert "<td>alice-laptop</td>" not in page


def test_it_shows_an_admin_everyones_tokens(console):
    make_token("alice-laptop")
    make_token("vic-laptop", username="vic", role="viewer")

    page = html(console.get("/tokens"))

    assert "<td>alice-laptop</td>" in page
    assert "<td>vic-laptop</td>" in page

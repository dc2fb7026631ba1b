"""Every endpoint needs an API token: anonymous, unknown and revoked tokens get a 401 that says
how to get one."""

from datetime import timedelta

import pytest
from rest_framework.test import APIClient

from access.auth import NO_TOKEN
from access.models import ApiToken
from access.tokens import token_revoke
from tests.personas import PLATFORM
from tests.server.support import deploy_body, row_counts
from tests.support import NOW

ENDPOINTS = [
    ("get", "/api/v1/functions", None),
    ("put", "/api/v1/functions/refresh-rates", deploy_body()),
    ("get", "/api/v1/functions/refresh-rates", None),
    ("delete", "/api/v1/functions/refresh-rates", None),
    ("post", "/api/v1/functions/refresh-rates/pause", {"reason": "outage"}),
    ("post", "/api/v1/functions/refresh-rates/resume", None),
    ("get", "/api/v1/secrets", None),
    ("put", "/api/v1/secrets/EXCHANGE_API_KEY", {"value": "s3cr3t-value"}),
    ("get", "/api/v1/secrets/EXCHANGE_API_KEY", None),
    ("delete", "/api/v1/secrets/EXCHANGE_API_KEY", None),
]
CREATE_HINT = (
    "create one with `python manage.py create_token NAME --user USERNAME` on the server (or on "
    "the console's API tokens page)"
)


@pytest.mark.parametrize(
    ("method", "path", "body"), ENDPOINTS, ids=[f"{m} {p}" for m, p, _ in ENDPOINTS]
)
def test_it_refuses_an_anonymous_request(anonymous, method, path, body):
    before = row_counts()

    response = getattr(anonymous, method)(path, body, format="json")

    assert response.status_code == 401
    assert response.json() == {"error": "not_authenticated", "detail": NO_TOKEN}
    assert response.headers["WWW-Authenticate"] == 'Bearer realm="api"'
    assert row_counts() == before


def test_it_says_how_to_get_a_token_when_there_is_none(anonymous):
    response = anonymous.get("/api/v1/functions")

    assert response.json()["detail"] == (
        "This endpoint needs an API token: send the header `Authorization: Bearer <token>`. "
        f"To get a token, {CREATE_HINT}, then export CHALK_COMPUTE_TOKEN=<token>"
    )


def test_it_refuses_a_revoked_token(api, alice_token):
    token, _ = alice_token
    token_revoke(token=token, now=NOW, actor=PLATFORM)

    response = api.put("/api/v1/functions/refresh-rates", deploy_body(), format="json")

    assert response.status_code == 401
    assert response.json() == {
        "error": "invalid_token",
        "detail": f"This API token (alice-laptop, {token.prefix}…) was revoked. To get a new "
        f"one, {CREATE_HINT}, then export CHALK_COMPUTE_TOKEN=<token>",
    }


def test_it_refuses_an_unknown_token(anonymous):
    anonymous.credentials(HTTP_AUTHORIZATION="Bearer chalk_not-a-real-token")

    response = anonymous.get("/api/v1/functions")

    assert response.status_code == 401
    assert response.json() == {
        "error": "invalid_token",
        "detail": f"This API token is not valid on this server. To get a token, {CREATE_HINT}, "
        "then export CHALK_COMPUTE_TOKEN=<token>",
    }


def test_it_refuses_a_malformed_authorization_header(anonymous):
    anonymous.credentials(HTTP_AUTHORIZATION="Bearer two tokens")

    response = anonymous.get("/api/v1/functions")

    assert response.status_code == 401
    assert response.json()["error"] == "invalid_token"
    assert response.json()["detail"].startswith("The Authorization header must be `Bearer <token>`")


def test_it_refuses_a_console_login_without_a_token(client, alice):
    client.force_login(alice)

    response = client.get("/api/v1/functions")

    assert response.status_code == 401
    assert response.json()["error"] == "not_authenticated"


def test_it_records_when_a_token_was_last_used(api, alice_token, clock):
    clock.shift(timedelta(minutes=3))

    api.get("/api/v1/functions")

    token = ApiToken.objects.get(pk=alice_token[0].pk)
    assert token.last_used_at == NOW + timedelta(minutes=3)


def test_it_stores_only_the_hash_of_a_token(alice_token):
    token, plaintext = alice_token

    stored = ApiToken.objects.filter(pk=token.pk).values().get()

    assert plaintext not in str(stored)
    assert plaintext.startswith("chalk_") and len(plaintext) > 40
    assert stored["prefix"] == plaintext[:12]


@pytest.mark.usefixtures("clock")
def test_it_accepts_the_bearer_keyword_in_any_case(alice_token):
    client = APIClient()
    client.credentials(HTTP_AUTHORIZATION=f"bearer {alice_token[1]}")

    assert client.get("/api/v1/functions").status_code == 200

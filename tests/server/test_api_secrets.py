"""PUT/GET/DELETE /api/v1/secrets/{name}: names and times out, values never."""

from datetime import timedelta

import pytest

from access.models import AuditAction, AuditEvent
from common import crypto
from scheduling.models import Secret
from tests.server.support import deploy_body, row_counts

URL = "/api/v1/secrets/EXCHANGE_API_KEY"
VALUE = "s3cr3t-exchange-key"
pytestmark = pytest.mark.usefixtures("clock")


@pytest.fixture
def exchange_key(api):
    api.put(URL, {"value": VALUE}, format="json")
    return Secret.objects.get(name="EXCHANGE_API_KEY")


def test_it_creates_a_secret(api):
    response = api.put(URL, {"value": VALUE}, format="json")

    assert response.status_code == 201
    assert response.json() == {
        "name": "EXCHANGE_API_KEY",
        "created_at": "2026-11-28T23:30:00Z",
        "updated_at": "2026-11-28T23:30:00Z",
        "change": "created",
    }
    secret = Secret.objects.get()
    assert crypto.decrypt(secret.ciphertext) == VALUE


def test_it_replaces_a_secrets_value(api, exchange_key, clock):
    clock.shift(timedelta(days=1))

    response = api.put(URL, {"value": "rotated-key"}, format="json")

    assert response.status_code == 200
    assert response.json() == {
        "name": "EXCHANGE_API_KEY",
        "created_at": "2026-11-28T23:30:00Z",
        "updated_at": "2026-11-29T23:30:00Z",
        "change": "replaced",
    }
    exchange_key.refresh_from_db()
    assert crypto.decrypt(exchange_key.ciphertext) == "rotated-key"


def test_it_changes_nothing_when_the_value_is_the_one_stored(api, exchange_key, clock):
    ciphertext = exchange_key.ciphertext
    clock.shift(timedelta(days=1))

    response = api.put(URL, {"value": VALUE}, format="json")

    assert response.status_code == 200
    assert response.json() == {
        "name": "EXCHANGE_API_KEY",
        "created_at": "2026-11-28T23:30:00Z",
        "updated_at": "2026-11-28T23:30:00Z",
        "change": "unchanged",
    }
    exchange_key.refresh_from_db()
    assert exchange_key.ciphertext == ciphertext
    assert AuditEvent.objects.filter(action=AuditAction.SECRET_REPLACE).count() == 0


def test_it_returns_a_secret_without_its_value(api, exchange_key):
    response = api.get(URL)

    assert response.status_code == 200
    assert response.json() == {
        "name": "EXCHANGE_API_KEY",
        "created_at": "2026-11-28T23:30:00Z",
        "updated_at": "2026-11-28T23:30:00Z",
    }


def test_it_lists_secrets_without_values(api, exchange_key):
    api.put("/api/v1/secrets/DATABASE_URL", {"value": "postgres://u:p@db/x"}, format="json")

    response = api.get("/api/v1/secrets")

    assert response.status_code == 200
    times = {"created_at": "2026-11-28T23:30:00Z", "updated_at": "2026-11-28T23:30:00Z"}
    assert response.json() == {
        "count": 2,
        "next": None,
        "previous": None,
        "results": [{"name": "DATABASE_URL", **times}, {"name": "EXCHANGE_API_KEY", **times}],
    }


def test_it_answers_404_for_an_unknown_secret(api):
    response = api.get(URL)

    assert response.status_code == 404
    assert response.json() == {
        "error": "not_found",
        "detail": "no secret named 'EXCHANGE_API_KEY' is stored here; store it with "
        "PUT /api/v1/secrets/EXCHANGE_API_KEY",
    }


def test_it_deletes_an_unused_secret(api, exchange_key):
    response = api.delete(URL)

    assert response.status_code == 204
    assert not Secret.objects.exists()


def test_it_refuses_to_delete_a_secret_a_function_uses(api, exchange_key):
    api.put(
        "/api/v1/functions/refresh-rates", deploy_body(secrets=["EXCHANGE_API_KEY"]), format="json"
    )

    response = api.delete(URL)

    assert response.status_code == 409
    assert response.json() == {
        "error": "secret_in_use",
        "detail": "secret EXCHANGE_API_KEY is used by refresh-rates; first redeploy that "
        "function without it, or delete it",
    }
    assert Secret.objects.filter(name="EXCHANGE_API_KEY").exists()


def test_it_deletes_a_secret_only_an_older_version_used(api, exchange_key):
    url = "/api/v1/functions/refresh-rates"
    api.put(url, deploy_body(secrets=["EXCHANGE_API_KEY"]), format="json")
    api.put(url, deploy_body(secrets=[]), format="json")

    response = api.delete(URL)

    assert response.status_code == 204


def test_it_rejects_an_invalid_secret_name(api):
    response = api.put("/api/v1/secrets/exchange-api-key", {"value": VALUE}, format="json")

    assert response.status_code == 400
    assert response.json() == {
        "error": "invalid_name",
        "detail": "secret name 'exchange-api-key' must be usable as an environment variable: "
        "letters, digits and '_', not starting with a digit, at most 128 characters, e.g. "
        '"EXCHANGE_API_KEY"',
    }
    assert not Secret.objects.exists()


def test_it_rejects_an_empty_value(api):
    response = api.put(URL, {"value": ""}, format="json")

    assert response.status_code == 400
    assert response.json() == {
        "error": "invalid_value",
        "detail": "Type a value for EXCHANGE_API_KEY: a secret cannot be empty.",
    }
    assert not Secret.objects.exists()


def test_it_rejects_a_missing_value(api):
    before = row_counts()

    response = api.put(URL, {}, format="json")

    assert response.status_code == 400
    assert response.json() == {
        "error": "invalid_value",
        "detail": "value: is required: the secret's value, as a string",
    }
    assert row_counts() == before


def test_it_rejects_a_value_over_64_kib(api):
    response = api.put(URL, {"value": "x" * (64 * 1024 + 1)}, format="json")

    assert response.status_code == 400
    assert response.json() == {
        "error": "invalid_value",
        "detail": "the value of secret EXCHANGE_API_KEY is 65537 bytes; the limit is 65536 "
        "bytes. Store large material elsewhere and keep its credentials here",
    }
    assert not Secret.objects.exists()

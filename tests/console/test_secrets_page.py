"""The secrets page: names and when they were set; set, replace and delete; a value is never
shown again, not even beside a form error."""

from django.utils import timezone

from common import crypto
from scheduling.models import Secret
from scheduling.services import secret_set
from tests.console.support import html
from tests.personas import PLATFORM
from tests.runs.support import deploy


def stored(name: str) -> str:
    return crypto.decrypt(Secret.objects.get(name=name).ciphertext)


def test_it_sets_a_secret_and_never_shows_its_value(console):
    response = console.post(
        "/secrets",
        {"form": "new", "action": "set", "name": "EXCHANGE_API_KEY", "value": "s3cr3t-value"},
    )

    assert (response.status_code, response["Location"]) == (303, "/secrets")
    assert stored("EXCHANGE_API_KEY") == "s3cr3t-value"
    page = html(console.get("/secrets"))
    assert "<code>EXCHANGE_API_KEY</code>" in page
    assert "Secret EXCHANGE_API_KEY stored. Its value is encrypted and is never shown again" in page
    assert "s3cr3t-value" not in page


def test_it_replaces_a_secrets_value(console):
    secret_set(actor=PLATFORM, name="EXCHANGE_API_KEY", value="old", now=timezone.now())

    console.post(
        "/secrets",
        {"form": "row", "action": "set", "name": "EXCHANGE_API_KEY", "value": "new-value"},
    )

    assert stored("EXCHANGE_API_KEY") == "new-value"
    assert Secret.objects.count() == 1


def test_it_deletes_a_secret(console):
    secret_set(actor=PLATFORM, name="EXCHANGE_API_KEY", value="x", now=timezone.now())

    response = console.post(
        "/secrets", {"form": "row", "action": "delete", "name": "EXCHANGE_API_KEY"}
    )

    assert response.status_code == 303
    assert not Secret.objects.exists()


def test_it_shows_which_functions_read_a_secret(console):
    secret_set(actor=PLATFORM, name="EXCHANGE_API_KEY", value="x", now=timezone.now())
    deploy("refresh-rates", "pass", secrets=["EXCHANGE_API_KEY"])

    assert '<a href="/functions/refresh-rates">refresh-rates</a>' in html(console.get("/secrets"))


def test_it_refuses_to_delete_a_secret_a_function_reads(console):
    secret_set(actor=PLATFORM, name="EXCHANGE_API_KEY", value="x", now=timezone.now())
    deploy("refresh-rates", "pass", secrets=["EXCHANGE_API_KEY"])

    response = console.post(
        "/secrets", {"form": "row", "action": "delete", "name": "EXCHANGE_API_KEY"}
    )

    assert response.status_code == 409
    assert "secret EXCHANGE_API_KEY is used by refresh-rates" in html(response)
    assert Secret.objects.filter(name="EXCHANGE_API_KEY").exists()


def test_it_refuses_a_name_that_is_not_an_environment_variable(console):
    response = console.post(
        "/secrets", {"form": "new", "action": "set", "name": "exchange-key", "value": "typed"}
    )

    assert response.status_code == 400
    page = html(response)
    assert (
        'id="new-error" role="alert">secret name &#x27;exchange-key&#x27; must be usable as an '
        "environment variable" in page
    )
    assert 'value="exchange-key"' in page  # the name stays in the form to be corrected ...
    assert "typed" not in page  # ... the value never comes back
    assert not Secret.objects.exists()


def test_it_refuses_an_empty_value(console):
    response = console.post(
        "/secrets", {"form": "new", "action": "set", "name": "EXCHANGE_API_KEY", "value": ""}
    )

    assert response.status_code == 400
    assert "Type a value for EXCHANGE_API_KEY: a secret cannot be empty." in html(response)
    assert not Secret.objects.exists()


def test_it_refuses_an_empty_replacement_and_keeps_the_old_value(console):
    secret_set(actor=PLATFORM, name="EXCHANGE_API_KEY", value="old", now=timezone.now())

    response = console.post(
        "/secrets", {"form": "row", "action": "set", "name": "EXCHANGE_API_KEY", "value": ""}
    )

    assert response.status_code == 400
    assert stored("EXCHANGE_API_KEY") == "old"


def test_it_refuses_a_value_with_a_nul_character(console):
    response = console.post(
        "/secrets", {"form": "new", "action": "set", "name": "EXCHANGE_API_KEY", "value": "a\x00b"}
    )

    assert response.status_code == 400
    assert "holds a NUL character" in html(response)
    assert not Secret.objects.exists()


def test_it_explains_deleting_a_secret_that_is_gone(console):
    response = console.post("/secrets", {"form": "row", "action": "delete", "name": "GONE"})

    assert response.status_code == 400
    assert "There is no secret named &#x27;GONE&#x27;" in html(response)


def test_it_says_how_to_add_a_first_secret(console):
    assert "No secrets yet." in html(console.get("/secrets"))

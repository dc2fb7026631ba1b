"""A CHALK_SECRETS_KEY replaced instead of rotated: said on /readyz and at a worker's start,
and a run that needs a secret fails with those words, not a misleading `already_started`."""

import pytest
from cryptography.fernet import Fernet
from django.utils import timezone

from runs.models import Attempt
from runs.services import attempt_claim, run_trigger
from scheduling.services import secret_set
from tests.health.test_health import fresh_heartbeats
from tests.personas import acting
from tests.runs.support import deploy

pytestmark = pytest.mark.django_db
REPLACED = "was the key replaced instead of rotated (new key first, old key kept after a comma)?"


@pytest.fixture
def replaced_key(settings):
    secret_set(name="RATES_KEY", value="rates-secret", actor=acting("test"), now=timezone.now())
    settings.CHALK_SECRETS_KEY = Fernet.generate_key().decode()  # the old one dropped


def test_readyz_says_the_key_cannot_decrypt_what_is_stored(client, settings):
    fresh_heartbeats()
    secret_set(name="RATES_KEY", value="rates-secret", actor=acting("test"), now=timezone.now())
    assert client.get("/readyz").json()["checks"]["secrets_key"] == {"ok": True}

    settings.CHALK_SECRETS_KEY = Fernet.generate_key().decode()
    response = client.get("/readyz")

    assert response.status_code == 503
    assert response.json()["failed"] == ["secrets_key"]
    assert REPLACED in response.json()["checks"]["secrets_key"]["error"]


def test_a_run_that_needs_a_secret_fails_with_the_keys_words(client, replaced_key):
    function = deploy("rates", "pass", secrets=("RATES_KEY",))
    run = run_trigger(function=function, trigger="manual", actor=acting("test"),
                      now=timezone.now())  # fmt: skip
    attempt, token = attempt_claim(
        attempt_id=run.attempts.get().id, executor="local", executor_ref="test",
        now=timezone.now(),
    )  # fmt: skip

    response = client.get("/api/runner/v1/attempt", HTTP_AUTHORIZATION=f"Bearer {token}")

    assert response.status_code == 409
    assert response.json()["error"] == "undecryptable_secret"
    stored = Attempt.objects.get(id=run.attempts.get().id)
    assert stored.status == "failed"
    assert stored.reason.startswith("cannot give the run its secrets: ") and REPLACED in (
        stored.reason
    )

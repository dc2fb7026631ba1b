"""A secret's value is stored encrypted and never appears in a response, a page or a log."""

import io
import logging

import pytest
from cryptography.fernet import Fernet, InvalidToken
from django.core.exceptions import ImproperlyConfigured
from django.core.management import call_command
from django.db import connection

from common import crypto
from scheduling.models import Secret
from scheduling.services import secret_set, secrets_reencrypt
from tests.personas import PLATFORM
from tests.server.support import deploy_body
from tests.support import NOW

VALUE = "s3cr3t-exchange-key-7f3a"
pytestmark = pytest.mark.usefixtures("clock")


def every_database_row() -> str:
    text = []
    with connection.cursor() as cursor:
        for table in connection.introspection.table_names():
            cursor.execute(f"SELECT * FROM {connection.ops.quote_name(table)}")
            text.append(repr(cursor.fetchall()))
    return "\n".join(text)


def test_it_stores_no_plaintext_in_the_database(api):
    api.put("/api/v1/secrets/EXCHANGE_API_KEY", {"value": VALUE}, format="json")
    api.put(
        "/api/v1/functions/refresh-rates", deploy_body(secrets=["EXCHANGE_API_KEY"]), format="json"
    )

    with connection.cursor() as cursor:
        cursor.execute("SELECT name, ciphertext FROM scheduling_secret")
        ((name, ciphertext),) = cursor.fetchall()
    assert name == "EXCHANGE_API_KEY"
    assert VALUE not in ciphertext
    assert VALUE not in every_database_row()
    assert crypto.decrypt(ciphertext) == VALUE


def test_it_never_puts_a_value_in_an_api_response(api):
    responses = [
        api.put("/api/v1/secrets/EXCHANGE_API_KEY", {"value": VALUE}, format="json"),
        api.put("/api/v1/secrets/EXCHANGE_API_KEY", {"value": VALUE}, format="json"),
        api.get("/api/v1/secrets/EXCHANGE_API_KEY"),
        api.get("/api/v1/secrets"),
        api.put(
            "/api/v1/functions/refresh-rates",
            deploy_body(secrets=["EXCHANGE_API_KEY"]),
            format="json",
        ),
        api.get("/api/v1/functions/refresh-rates"),
        api.delete("/api/v1/secrets/EXCHANGE_API_KEY"),
    ]

    assert [r.status_code for r in responses] == [201, 200, 200, 200, 201, 200, 409]
    for response in responses:
        assert VALUE.encode() not in response.content


def test_it_never_shows_a_value_in_the_admin(admin_client_olivia):
    secret, _ = secret_set(name="EXCHANGE_API_KEY", value=VALUE, now=NOW, actor=PLATFORM)

    pages = [
        admin_client_olivia.get("/admin/scheduling/secret/"),
        admin_client_olivia.get(f"/admin/scheduling/secret/{secret.pk}/change/"),
        admin_client_olivia.get(f"/admin/scheduling/secret/{secret.pk}/history/"),
        admin_client_olivia.get(f"/admin/scheduling/secret/{secret.pk}/delete/"),
    ]

    assert [page.status_code for page in pages] == [200, 200, 200, 200]
    for page in pages:
        assert b"EXCHANGE_API_KEY" in page.content
        assert VALUE.encode() not in page.content


def test_it_never_writes_a_value_to_a_log(api, caplog):
    caplog.set_level(logging.DEBUG)

    api.put("/api/v1/secrets/EXCHANGE_API_KEY", {"value": VALUE}, format="json")
    api.put("/api/v1/secrets/EXCHANGE_API_KEY", {"value": VALUE + "\x00"}, format="json")
    api.put("/api/v1/secrets/bad-name", {"value": VALUE}, format="json")
    api.put("/api/v1/functions/job", deploy_body(secrets=["EXCHANGE_API_KEY"]), format="json")
    api.delete("/api/v1/secrets/EXCHANGE_API_KEY")

    assert "Bad Request: /api/v1/secrets/bad-name" in caplog.text  # the log was captured
    assert VALUE not in caplog.text


def test_it_decrypts_with_every_key_and_encrypts_with_the_first(db, settings):
    old, new = Fernet.generate_key().decode(), Fernet.generate_key().decode()
    settings.CHALK_SECRETS_KEY = old
    before, _ = secret_set(name="OLD_SECRET", value="under the old key", now=NOW, actor=PLATFORM)

    settings.CHALK_SECRETS_KEY = f"{new}, {old}"
    after, _ = secret_set(name="NEW_SECRET", value="under the new key", now=NOW, actor=PLATFORM)

    assert crypto.decrypt(before.ciphertext) == "under the old key"
    assert Fernet(new).decrypt(after.ciphertext.encode()) == b"under the new key"


def test_it_reencrypts_every_secret_under_the_first_key(db, settings):
    old, new = Fernet.generate_key().decode(), Fernet.generate_key().decode()
    settings.CHALK_SECRETS_KEY = old
    secret_set(name="EXCHANGE_API_KEY", value=VALUE, now=NOW, actor=PLATFORM)
    settings.CHALK_SECRETS_KEY = f"{new},{old}"

    assert secrets_reencrypt() == 1

    settings.CHALK_SECRETS_KEY = new
    assert crypto.decrypt(Secret.objects.get().ciphertext) == VALUE


def test_it_refuses_a_key_that_is_not_a_fernet_key(settings):
    settings.CHALK_SECRETS_KEY = f"{Fernet.generate_key().decode()},not-a-key"

    with pytest.raises(ImproperlyConfigured, match="CHALK_SECRETS_KEY key #2 is not a Fernet key"):
        crypto.encrypt(VALUE)


def test_it_rotates_the_key_from_the_command_line(db, settings):
    old, new = Fernet.generate_key().decode(), Fernet.generate_key().decode()
    settings.CHALK_SECRETS_KEY = old
    secret_set(name="EXCHANGE_API_KEY", value=VALUE, now=NOW, actor=PLATFORM)
    settings.CHALK_SECRETS_KEY = f"{new},{old}"
    out = io.StringIO()

    call_command("rotate_secrets_key", stdout=out)

    assert out.getvalue() == (
        "  checked 1 of 1 encrypted record(s), re-encrypted 1\n"
        "Re-encrypted 1 record(s) (secrets, alert channels) under the first key of "
        "CHALK_SECRETS_KEY (0 already were); every encrypted value decrypts with that key alone, "
        "so the keys after it can now be removed.\n"
    )
    settings.CHALK_SECRETS_KEY = new
    assert crypto.decrypt(Secret.objects.get().ciphertext) == VALUE


def values_by_name() -> dict[str, str]:
    return {secret.name: crypto.decrypt(secret.ciphertext) for secret in Secret.objects.all()}


def under_key(key: str) -> list[str]:
    """The names of the secrets `key` alone decrypts, in id order."""
    names = []
    for secret in Secret.objects.order_by("id"):
        try:
            Fernet(key).decrypt(secret.ciphertext.encode())
        except InvalidToken:
            continue
        names.append(secret.name)
    return names


@pytest.fixture
def rotating(db, settings):
    """250 secrets under an old key, and CHALK_SECRETS_KEY with a new key put first."""
    old, new = Fernet.generate_key().decode(), Fernet.generate_key().decode()
    settings.CHALK_SECRETS_KEY = old
    for number in range(250):
        secret_set(name=f"KEY_{number:03}", value=f"value {number}", now=NOW, actor=PLATFORM)
    settings.CHALK_SECRETS_KEY = f"{new},{old}"
    return new, values_by_name()


def test_a_rotation_stopped_part_way_is_finished_by_the_next_run(rotating, settings, monkeypatch):
    new, values = rotating
    names = list(values)

    # Stopped after one batch: the first 100 secrets by id are under the new key.
    assert secrets_reencrypt(batch_size=100, max_batches=1) == 100
    assert under_key(new) == names[:100]

    # Killed in the middle of the next batch: that batch rolls back, the first stays done.
    calls = []
    real_reencrypt = crypto.reencrypt

    def crash_on_the_31st(ciphertext):
        calls.append(ciphertext)
        if len(calls) > 30:
            raise KeyboardInterrupt
        return real_reencrypt(ciphertext)

    monkeypatch.setattr(crypto, "reencrypt", crash_on_the_31st)
    with pytest.raises(KeyboardInterrupt):
        secrets_reencrypt(batch_size=100)
    assert under_key(new) == names[:100]
    monkeypatch.setattr(crypto, "reencrypt", real_reencrypt)

    # The rerun skips what is done and finishes the rest.
    progress = []
    assert secrets_reencrypt(batch_size=100, progress=lambda *done: progress.append(done)) == 150
    assert progress == [(100, 0), (200, 100), (250, 150)]
    settings.CHALK_SECRETS_KEY = new
    assert under_key(new) == names
    assert values_by_name() == values


def test_a_finished_rotation_has_nothing_left_to_do(rotating):
    assert secrets_reencrypt() == 250
    before = dict(Secret.objects.values_list("name", "ciphertext"))

    assert secrets_reencrypt() == 0
    assert dict(Secret.objects.values_list("name", "ciphertext")) == before


def test_secrets_written_during_a_rotation_keep_their_values(rotating, settings):
    new, values = rotating

    def meanwhile(checked, reencrypted):
        if checked == 100:  # between batches: the platform changes one secret and adds one
            secret_set(name="KEY_200", value="changed while rotating", now=NOW, actor=PLATFORM)
            secret_set(name="ADDED_WHILE_ROTATING", value="new one", now=NOW, actor=PLATFORM)

    secrets_reencrypt(batch_size=100, progress=meanwhile)

    settings.CHALK_SECRETS_KEY = new
    assert values_by_name() == {
        **values,
        "KEY_200": "changed while rotating",
        "ADDED_WHILE_ROTATING": "new one",
    }


def test_the_command_reports_its_progress_batch_by_batch(rotating, settings):
    new, values = rotating
    out = io.StringIO()

    call_command("rotate_secrets_key", "--batch-size", "100", stdout=out)

    assert out.getvalue().splitlines() == [
        "  checked 100 of 250 encrypted record(s), re-encrypted 100",
        "  checked 200 of 250 encrypted record(s), re-encrypted 200",
        "  checked 250 of 250 encrypted record(s), re-encrypted 250",
        "Re-encrypted 250 record(s) (secrets, alert channels) under the first key of "
        "CHALK_SECRETS_KEY (0 already were); every encrypted value decrypts with that key alone, "
        "so the keys after it can now be removed.",
    ]
    settings.CHALK_SECRETS_KEY = new
    assert values_by_name() == values

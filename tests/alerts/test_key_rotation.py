"""Key rotation covers alert channels: after `manage.py rotate_secrets_key` and the old key
dropped, a channel still decrypts and its alerts are delivered; the command never reports
success while any encrypted value is still under an old key."""

import io

import pytest
from cryptography.fernet import Fernet
from django.apps import apps
from django.core.management import call_command
from django.core.management.base import CommandError
from django.utils import timezone

from alerts import channels, services
from alerts.models import Channel, Delivery
from common import crypto
from scheduling.management.commands.rotate_secrets_key import Command
from scheduling.models import Secret
from scheduling.services import secret_set
from tests.personas import PLATFORM, acting

pytestmark = pytest.mark.django_db


def make_channel(name, url):
    channel, secret = channels.channel_create(
        name=name, kind="webhook", url=url, actor=acting("ada", "admin"), now=timezone.now()
    )
    return channel, secret


@pytest.fixture
def keys(settings):
    old, new = Fernet.generate_key().decode(), Fernet.generate_key().decode()
    settings.CHALK_SECRETS_KEY = old
    return old, new


def test_a_channel_survives_the_rotation_and_the_old_key_dropped(
    keys, settings, http_receiver, eager_tasks, django_capture_on_commit_callbacks
):
    old, new = keys
    now = timezone.now()
    secret_set(name="EXCHANGE_API_KEY", value="s3cr3t", now=now, actor=PLATFORM)
    channel, signing_secret = make_channel("ops-hook", http_receiver.url + "/hook")
    settings.CHALK_SECRETS_KEY = f"{new},{old}"
    out = io.StringIO()

    call_command("rotate_secrets_key", stdout=out)

    assert out.getvalue().splitlines() == [
        "  checked 1 of 2 encrypted record(s), re-encrypted 1",
        "  checked 2 of 2 encrypted record(s), re-encrypted 2",
        "Re-encrypted 2 record(s) (secrets, alert channels) under the first key of "
        "CHALK_SECRETS_KEY (0 already were); every encrypted value decrypts with that key alone, "
        "so the keys after it can now be removed.",
    ]
    settings.CHALK_SECRETS_KEY = new  # the old key dropped
    channel = Channel.objects.get()
    assert crypto.decrypt(channel.url_encrypted) == http_receiver.url + "/hook"
    assert crypto.decrypt(channel.secret_encrypted) == signing_secret
    assert crypto.decrypt(Secret.objects.get().ciphertext) == "s3cr3t"

    with django_capture_on_commit_callbacks(execute=True):
        services.channel_test(channel=channel, actor=acting("olga", "operator"), now=now)
    [received] = http_receiver.requests
    assert received.json()["kind"] == "test"
    assert Delivery.objects.get().status == "sent"


def test_every_encrypted_column_is_rotated():
    """A model field that holds ciphertext but is not registered would be forgotten."""
    registered = {
        (label, field) for label, fields in crypto.ENCRYPTED_COLUMNS.items() for field in fields
    }
    looks_encrypted = {
        (model._meta.label, field.name)
        for model in apps.get_models()
        for field in model._meta.get_fields()
        if "encrypt" in field.name or "cipher" in field.name
    }
    assert looks_encrypted <= registered
    assert ("alerts.Channel", "url_encrypted") in registered


def test_it_fails_while_a_value_is_under_a_key_no_longer_listed(keys, settings):
    old, new = keys
    make_channel("ops-hook", "https://hooks.example.com/x")
    lost = Fernet.generate_key().decode()
    # A channel written by a process that had a key nobody lists any more.
    settings.CHALK_SECRETS_KEY = lost
    make_channel("stray", "https://hooks.example.com/y")
    settings.CHALK_SECRETS_KEY = f"{new},{old}"

    with pytest.raises(CommandError) as failed:
        call_command("rotate_secrets_key", stdout=io.StringIO())

    message = str(failed.value)
    assert message.startswith("2 encrypted value(s) are still not under the first key")
    assert "channel stray (https://hooks.example.com) (url_encrypted)" in message
    assert "hooks.example.com/y" not in message  # the URL as shown: scheme and host only
    assert "Keep the old keys" in message
    assert "ops-hook" not in message  # rotated


def test_the_exit_status_is_not_zero_when_it_fails(keys, settings):
    old, new = keys
    settings.CHALK_SECRETS_KEY = Fernet.generate_key().decode()
    make_channel("stray", "https://hooks.example.com/y")
    settings.CHALK_SECRETS_KEY = f"{new},{old}"
    stderr = io.StringIO()
    with pytest.raises(SystemExit) as exited:
        Command(stdout=io.StringIO(), stderr=stderr).run_from_argv(
            ["manage.py", "rotate_secrets_key", "--skip-checks"]
        )
    assert exited.value.code == 1
    assert "still not under the first key" in stderr.getvalue()

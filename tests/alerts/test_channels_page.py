"""The console's Channels page and the function page's alerts."""

import datetime as dt
import re

import pytest
from django.contrib.auth import get_user_model
from django.contrib.auth.models import Group
from django.test import Client

from access.models import AuditEvent
from alerts.models import Channel, Delivery
from chalkcompute import Alerts
from tests.personas import person
from tests.runs.support import deploy

pytestmark = pytest.mark.django_db

T0 = dt.datetime(2026, 6, 1, 12, 0, tzinfo=dt.UTC)


@pytest.fixture
def viewer(db) -> Client:
    vera = get_user_model().objects.create_user("vera", password="vera-views-7")
    vera.groups.add(Group.objects.get(name="viewer"))
    client = Client()
    client.force_login(vera)
    return client


def add(console, **fields):
    data = {"action": "create", "kind": "webhook", "name": "ops-hook"} | fields
    return console.post("/channels", data)


def test_adding_a_webhook_shows_its_secret_once(console, http_receiver):
    response = add(console, url=http_receiver.url + "/hook?token=abc", default="on")
    assert response.status_code == 201
    assert "no-store" in response["Cache-Control"]
    secret = re.search(r'id="webhook-secret" readonly value="([^"]+)"', response.text)[1]
    channel = Channel.objects.get()
    assert channel.is_default and channel.kind == "webhook"

    page = console.get("/channels")
    assert secret not in page.text
    assert "token=abc" not in page.text and "/hook" not in page.text
    assert "http://127.0.0.1" in page.text  # scheme and host only
    assert 'href="/channels" aria-current="page"' in page.text


def test_a_rejected_channel_keeps_its_name_never_its_url(console):
    response = add(console, kind="apprise", url="bogus://secret-token")
    assert response.status_code == 400
    assert "Apprise URLs starting bogus:// are not allowed" in response.text
    assert 'value="ops-hook"' in response.text
    assert "secret-token" not in response.text
    assert not Channel.objects.exists()


def test_unknown_functions_are_refused(console, http_receiver):
    response = add(console, url=http_receiver.url, functions="nope")
    assert response.status_code == 400 and "no function named nope" in response.text


def test_a_test_alert_and_its_delivery(
    console, http_receiver, eager_tasks, django_capture_on_commit_callbacks
):
    add(console, url=http_receiver.url)
    channel = Channel.objects.get()
    with django_capture_on_commit_callbacks(execute=True):
        response = console.post("/channels", {"action": "test", "channel": channel.pk})
    assert response.status_code == 303
    assert http_receiver.requests[0].json()["kind"] == "test"
    page = console.get("/channels")
    assert "Test alert queued for ops-hook" in page.text
    assert "<strong>sent</strong>" in page.text


def test_delete(console, http_receiver):
    add(console, url=http_receiver.url)
    channel = Channel.objects.get()
    response = console.post("/channels", {"action": "delete", "channel": channel.pk})
    assert response.status_code == 303
    assert not Channel.objects.exists()
    assert "Channel ops-hook deleted." in console.get("/channels").text


def test_a_viewer_sees_channels_but_may_not_manage_them(console, viewer, http_receiver):
    add(console, url=http_receiver.url)
    page = viewer.get("/channels")
    assert page.status_code == 200 and "ops-hook" in page.text
    assert "Add a channel" not in page.text and "Send a test alert" not in page.text
    response = add(viewer, name="mine", url=http_receiver.url)
    assert response.status_code == 403
    assert Channel.objects.count() == 1


def test_the_function_page_shows_its_alerts(console, http_receiver, end_run):
    add(console, url=http_receiver.url, default="on")
    report = deploy("nightly-report", "pass")
    run = end_run(report, "failed", at=T0)
    assert Delivery.objects.get().status == "sent"
    page = console.get("/functions/nightly-report")
    assert "<td>ops-hook</td>" in page.text
    assert f'href="/runs/{run.id}">{run.id}</a>' in page.text


def test_no_inline_script_or_style():
    from pathlib import Path

    text = Path(__file__).resolve().parents[2].joinpath("templates/console/channels.html")
    assert not re.search(r"<script|style=|\son[a-z]+=", text.read_text())


def test_the_function_page_shows_its_alert_rules_and_a_channel_its_code_names_wrongly(console):
    deploy("nightly", "pass", schedule="0 3 * * *",
           alerts=Alerts(on_failure=["ops-slack"], running_after="2h"))  # fmt: skip

    page = console.get("/functions/nightly").content.decode()

    assert "when a run is still running 2 hours after it started" in page
    assert "when a slot&#x27;s run has not started 5 minutes after it" in page
    assert "The function's code names ops-slack, which is not a channel here" in page


def staff(client, name, role):
    user = person(name, role)
    user.is_staff = True
    user.save()
    client.force_login(user)
    return client


@pytest.fixture
def admin_site(client):
    return staff(client, "ada", "admin")


def test_an_admin_adds_an_apprise_channel_in_the_admin_through_the_service(admin_site):
    response = admin_site.post(
        "/admin/alerts/channel/add/",
        {"name": "ops-ntfy", "url": "ntfy://ntfy.example.com/chalk-alerts", "is_default": "on"},
    )

    assert response.status_code == 302, response.content.decode()[:2000]
    channel = Channel.objects.get(name="ops-ntfy")
    assert (channel.kind, channel.display, channel.is_default) == (
        "apprise",
        "ntfy://ntfy.example.com",
        True,
    )
    assert AuditEvent.objects.get(action="channel_create").actor == "ada"
    page = admin_site.get(f"/admin/alerts/channel/{channel.pk}/change/")
    assert page.status_code == 200
    assert "ntfy://ntfy.example.com" in page.content.decode()
    assert "chalk-alerts" not in page.content.decode()  # the URL is never shown again


def test_the_admin_refuses_a_url_apprise_does_not_accept(admin_site):
    response = admin_site.post(
        "/admin/alerts/channel/add/", {"name": "broken", "url": "nonsense://x"}
    )

    assert response.status_code == 200
    assert "Apprise URLs starting nonsense:// are not allowed" in response.content.decode()
    assert not Channel.objects.exists()


def test_the_admin_refuses_a_private_address_with_what_to_do(admin_site):
    response = admin_site.post(
        "/admin/alerts/channel/add/", {"name": "nats", "url": "json://127.0.0.1:4222/"}
    )

    assert response.status_code == 200
    text = response.content.decode()
    assert "Alerts may not go to 127.0.0.1: it is a loopback address" in text
    assert "CHALK_ALERT_ALLOWED_NETWORKS" in text
    assert not Channel.objects.exists()


def test_an_operator_sees_channels_in_the_admin_but_may_not_add_or_delete_them(client):
    operator = staff(client, "olga", "operator")
    assert operator.get("/admin/alerts/channel/").status_code == 200
    body = {"name": "x", "url": "json://x.example.com"}
    assert operator.post("/admin/alerts/channel/add/", body).status_code == 403
    assert not Channel.objects.exists()


def test_a_viewer_cannot_add_channels_in_the_admin(client):
    vera = person("vera", "viewer")
    vera.is_staff = True
    vera.save()
    client.force_login(vera)
    response = client.post("/admin/alerts/channel/add/", {"name": "x", "url": "json://x.example"})

    assert response.status_code == 403
    assert not Channel.objects.exists()
    assert client.get("/admin/alerts/channel/").status_code == 403  # as on the console


def test_an_admin_deletes_a_channel_in_the_admin_audited(admin_site):
    admin_site.post(
        "/admin/alerts/channel/add/", {"name": "ops-json", "url": "json://hooks.example.com/x"}
    )
    channel = Channel.objects.get()

    admin_site.post(f"/admin/alerts/channel/{channel.pk}/delete/", {"post": "yes"})

    assert not Channel.objects.exists()
    assert AuditEvent.objects.filter(action="channel_delete").count() == 1


def test_only_an_admin_sees_the_forms_that_add_and_delete_channels(console, http_receiver):
    assert add(console, url=http_receiver.url + "/hook").status_code == 201
    operator = Client()
    operator.force_login(person("otto", "operator"))

    admin_page, operator_page = console.get("/channels").text, operator.get("/channels").text

    assert "Add a channel" in admin_page and 'value="delete"' in admin_page
    assert "Add a channel" not in operator_page and 'value="delete"' not in operator_page
    assert 'value="test"' in operator_page  # an operator still sends a test alert

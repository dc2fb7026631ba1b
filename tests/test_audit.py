"""The audit trail: every change recorded once, by the service that made it, with who (person
and token, or the platform), when, from where, what and, where it means something, before and
after. Events outlive what they describe; old ones are pruned."""

import datetime as dt

import pytest
from django.contrib.auth import get_user_model
from django.contrib.auth.models import Permission
from django.core.management import call_command
from django.test import Client
from rest_framework.test import APIClient

from access.models import ApiToken, AuditEvent
from access.services import audit_prune
from runs.models import Run
from scheduling.models import Function
from tests.personas import PLATFORM, person
from tests.server.support import deploy_body

NOW = dt.datetime(2026, 12, 1, 9, 0, tzinfo=dt.UTC)
ADDRESS = "127.0.0.1"  # what Django's test clients send as REMOTE_ADDR

pytestmark = [pytest.mark.django_db, pytest.mark.usefixtures("clock")]


@pytest.fixture
def clock_start() -> dt.datetime:
    return NOW


@pytest.fixture
def dev():
    return person("dev", "deployer")


@pytest.fixture
def api(dev):
    from access.tokens import token_create

    token, plaintext = token_create(name="dev-laptop", user=dev, actor=PLATFORM, now=NOW)
    client = APIClient()
    client.credentials(HTTP_AUTHORIZATION=f"Bearer {plaintext}")
    client.token = token
    AuditEvent.objects.all().delete()  # making the token is not what the tests look at
    return client


@pytest.fixture
def console(dev) -> Client:
    client = Client()
    client.force_login(dev)
    return client


def events(**filters) -> list[dict]:
    fields = ["action", "actor", "token_name", "address", "function", "target", "detail", "at"]
    return list(
        AuditEvent.objects.filter(**filters)
        .exclude(action="sign_in")
        .order_by("id")
        .values(*fields, "token_id", "user__username")
    )


def event(api=None, **fields) -> dict:
    """An event as the API persona (dev, with the dev-laptop token) would leave it."""
    base = {
        "actor": "dev",
        "token_name": "dev-laptop" if api else "",
        "token_id": api.token.pk if api else None,
        "user__username": "dev",
        "address": ADDRESS,
        "function": "",
        "target": "",
        "detail": {},
        "at": NOW,
    }
    return base | fields


def test_it_records_a_deploy_with_its_version(api):
    api.put("/api/v1/functions/refresh-rates", deploy_body(), format="json")
    api.put("/api/v1/functions/refresh-rates", deploy_body(timeout=60), format="json")
    api.put("/api/v1/functions/refresh-rates", deploy_body(timeout=60), format="json")  # unchanged

    assert events() == [
        event(
            api,
            action="deploy",
            function="refresh-rates",
            target="version 1",
            detail={"before": None, "after": 1},
        ),
        event(
            api,
            action="deploy",
            function="refresh-rates",
            target="version 2",
            detail={"before": 1, "after": 2},
        ),
    ]


def test_it_records_a_rollback_a_pause_a_resume_and_a_delete(api, console):
    api.put("/api/v1/functions/refresh-rates", deploy_body(), format="json")
    api.put("/api/v1/functions/refresh-rates", deploy_body(timeout=60), format="json")
    AuditEvent.objects.all().delete()

    console.post(
        "/functions/refresh-rates", {"action": "rollback", "name": "refresh-rates", "version": "1"}
    )
    api.post("/api/v1/functions/refresh-rates/pause", {"reason": "vendor outage"}, format="json")
    console.post("/", {"action": "resume", "name": "refresh-rates"})
    api.delete("/api/v1/functions/refresh-rates")

    assert events() == [
        event(
            action="rollback",
            function="refresh-rates",
            target="version 3",
            detail={"before": 2, "after": 3, "content_of": 1},
        ),
        event(api, action="pause", function="refresh-rates", detail={"reason": "vendor outage"}),
        event(
            action="resume",
            function="refresh-rates",
            detail={"paused_by": "dev-laptop", "reason": "vendor outage"},
        ),
        event(api, action="delete", function="refresh-rates", detail={"before": 3, "after": None}),
    ]
    assert not Function.objects.exists()
    assert AuditEvent.objects.filter(function="refresh-rates").count() == 4  # outlived it


def test_it_records_run_now_cancel_and_re_run_and_who_caused_each_run(api, dev, console):
    api.put("/api/v1/functions/refresh-rates", deploy_body(), format="json")
    AuditEvent.objects.all().delete()

    run_id = api.post("/api/v1/functions/refresh-rates/trigger", format="json").json()["id"]
    console.post(f"/runs/{run_id}", {"action": "cancel"})
    dev.is_staff = True  # the admin's own rule: staff, with the model's view permission
    dev.save()
    dev.user_permissions.add(Permission.objects.get(codename="view_run"))
    console.post("/admin/runs/run/", {"action": "rerun", "_selected_action": [run_id]})

    rerun = Run.objects.exclude(id=run_id).get()
    assert events() == [
        event(
            api, action="run_now", function="refresh-rates", target=f"run {run_id}",
            detail={"version": 1},
        ),
        event(
            action="cancel", function="refresh-rates", target=f"run {run_id}",
            detail={"before": "queued"},
        ),
        event(
            action="run_now", function="refresh-rates", target=f"run {rerun.id}",
            detail={"version": 1, "rerun_of": run_id},
        ),
    ]  # fmt: skip
    first = Run.objects.get(id=run_id)
    assert (first.triggered_by, first.triggered_by_user, first.triggered_by_token) == (
        "dev-laptop",
        dev,
        api.token,
    )
    assert (rerun.triggered_by, rerun.triggered_by_user, rerun.triggered_by_token) == (
        "dev",
        dev,
        None,
    )


def test_it_records_the_user_and_token_of_each_version(api, dev):
    api.put("/api/v1/functions/refresh-rates", deploy_body(), format="json")

    version = Function.objects.get().current_version
    assert (version.created_by, version.created_by_user, version.created_by_token) == (
        "dev-laptop",
        dev,
        api.token,
    )


def test_it_records_secrets_by_name_never_by_value(api, console):
    api.put("/api/v1/secrets/EXCHANGE_API_KEY", {"value": "s3cr3t-one"}, format="json")
    console.post("/secrets", {"action": "set", "name": "EXCHANGE_API_KEY", "value": "s3cr3t-2"})
    api.delete("/api/v1/secrets/EXCHANGE_API_KEY")

    assert events() == [
        event(api, action="secret_set", target="secret EXCHANGE_API_KEY"),
        event(action="secret_replace", target="secret EXCHANGE_API_KEY"),
        event(api, action="secret_delete", target="secret EXCHANGE_API_KEY"),
    ]
    assert "s3cr3t" not in str(list(AuditEvent.objects.values()))


def test_it_records_tokens_made_and_revoked(console):
    console.post("/tokens", {"action": "create", "name": "ci", "scopes": ["", "read", "deploy"]})
    token = ApiToken.objects.get(name="ci")
    console.post("/tokens", {"action": "revoke", "token": str(token.id)})

    assert events() == [
        event(
            action="token_create",
            target=f"token ci ({token.prefix}…)",
            detail={"owner": "dev", "scopes": ["read", "deploy"], "expires_at": None},
        ),
        event(action="token_revoke", target=f"token ci ({token.prefix}…)"),
    ]


def test_it_records_role_changes_with_before_and_after(db):
    person("vic", role=None)

    call_command("set_role", "vic", "viewer")
    call_command("set_role", "vic", "operator")
    call_command("set_role", "vic", "none")

    rows = [(e["actor"], e["target"], e["detail"]) for e in events(action="role_change")]
    assert rows == [
        ("platform", "user vic", {"before": None, "after": "viewer"}),
        ("platform", "user vic", {"before": "viewer", "after": "operator"}),
        ("platform", "user vic", {"before": "operator", "after": None}),
    ]


def test_the_admin_changes_sign_in_and_admin_access_audited_and_never_superuser(db):
    root = get_user_model().objects.create_superuser("root", password="root-pw-7")
    admin = Client()
    admin.force_login(root)
    vic = person("vic", role="viewer")

    response = admin.post(
        f"/admin/auth/user/{vic.pk}/change/",
        {
            "username": "vic",
            "is_active": "",  # turned off
            "is_staff": "on",
            "is_superuser": "on",  # read-only: ignored
            "date_joined_0": "2026-01-01",
            "date_joined_1": "00:00:00",
        },
    )

    assert response.status_code == 302, response.content.decode()[:3000]
    vic.refresh_from_db()
    assert (vic.is_active, vic.is_staff, vic.is_superuser) == (False, True, False)
    [row] = [(e["actor"], e["target"], e["detail"]) for e in events(action="user_change")]
    assert row == (
        "root",
        "user vic",
        {
            "before": {"is_active": True, "is_staff": False},
            "after": {"is_active": False, "is_staff": True},
        },
    )


def test_it_records_sign_ins_and_failed_sign_ins_with_the_address(dev):
    dev.set_password("correct horse")
    dev.save()
    client = Client()

    client.post("/login/", {"username": "dev", "password": "wrong"})
    client.post("/login/", {"username": "dev", "password": "correct horse"})

    rows = list(
        AuditEvent.objects.order_by("id").values_list("action", "actor", "address", "detail")
    )
    assert rows == [
        ("sign_in_failed", "dev", ADDRESS, {"username": "dev"}),
        ("sign_in", "dev", ADDRESS, {}),
    ]


def test_it_shows_a_functions_changes_on_its_page(api, console):
    api.put("/api/v1/functions/refresh-rates", deploy_body(), format="json")
    api.post("/api/v1/functions/refresh-rates/pause", {"reason": "vendor outage"}, format="json")

    page = console.get("/functions/refresh-rates").content.decode()

    assert 'dev <span class="muted">with token dev-laptop</span>' in page
    assert "reason: vendor outage" in page


def test_it_filters_the_audit_page_and_the_api_by_person_function_and_action(api, dev):
    api.put("/api/v1/functions/refresh-rates", deploy_body(), format="json")
    api.put("/api/v1/functions/nightly", deploy_body(schedule="0 2 * * *"), format="json")
    person("ada", "admin")
    admin = Client()
    admin.force_login(get_user_model().objects.get(username="ada"))

    page = admin.get("/audit?function=nightly&action=deploy&actor=dev").content.decode()
    assert '<a href="/functions/nightly">nightly</a>' in page
    assert '<a href="/functions/refresh-rates">' not in page
    assert admin.get("/audit?action=explode").status_code == 400
    assert admin.get("/audit?since=yesterday").status_code == 400

    from access.tokens import token_create

    _, plaintext = token_create(
        name="ada-ci", user=get_user_model().objects.get(username="ada"), actor=PLATFORM, now=NOW
    )
    reader = APIClient()
    reader.credentials(HTTP_AUTHORIZATION=f"Bearer {plaintext}")
    body = reader.get("/api/v1/audit?function=nightly").json()
    assert [(e["action"], e["function"], e["actor"]) for e in body["results"]] == [
        ("deploy", "nightly", "dev")
    ]
    assert reader.get("/api/v1/audit?action=explode").status_code == 400
    assert api.get("/api/v1/audit").status_code == 403  # dev is no admin


def test_it_prunes_events_past_their_retention():
    from access.services import audit

    for days in (40, 10):
        audit(actor=PLATFORM, action="pause", now=NOW - dt.timedelta(days=days), function="f")

    assert audit_prune(before=NOW - dt.timedelta(days=30), batch=1) == 1
    assert list(AuditEvent.objects.values_list("at", flat=True)) == [NOW - dt.timedelta(days=10)]

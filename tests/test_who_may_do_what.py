"""Who may do what, at every entry point: the console's pages and actions, the REST API and the
admin's actions, for each persona. Each cell asserts the status, and that a refused request
changed nothing in the database.

Personas: ada (admin), dev (deployer), otto (operator), vic (viewer), oscar (a login with no
role), dora (a deployer who was deactivated), and two tokens of dev's: one expired, one
narrowed to the read scope.
"""

import datetime as dt

import pytest
from django.contrib.auth import get_user_model
from django.contrib.auth.models import Permission
from django.test import Client
from django.utils import timezone
from rest_framework.test import APIClient

from access.models import ApiToken, AuditEvent
from access.tokens import token_create
from runs.backfills import backfill_start
from runs.models import Backfill, Run
from runs.services import run_trigger
from scheduling.models import Function, FunctionVersion, Secret
from scheduling.services import secret_set
from tests.personas import PLATFORM, person
from tests.runs.support import deploy
from tests.server.support import deploy_body

ROLES = {"ada": "admin", "dev": "deployer", "otto": "operator", "vic": "viewer", "oscar": None}
CAN = {  # the rights each console and API persona holds, as the README's roles table says
    "ada": {"read", "run", "deploy", "secrets", "admin"},
    "dev": {"read", "run", "deploy", "secrets"},
    "otto": {"read", "run"},
    "vic": {"read"},
    "oscar": set(),
}


@pytest.fixture
def world(db):
    """refresh-rates with a run and a backfill in flight and a secret, and a token of each
    persona."""
    now = timezone.now()
    secret_set(name="EXCHANGE_API_KEY", value="x", actor=PLATFORM, now=now)
    rates = deploy("refresh-rates", "pass", schedule="0 * * * *")
    run = run_trigger(function=rates, trigger="manual", actor=PLATFORM, now=now)
    backfill = backfill_start(
        function=rates, start=now - dt.timedelta(hours=3), end=now, actor=PLATFORM, now=now
    )
    tokens = {}
    for name, role in ROLES.items():
        user = person(name, role)
        if role:
            tokens[name] = token_create(name=f"{name}-laptop", user=user, actor=PLATFORM, now=now)[
                1
            ]
    dora = person("dora", "deployer")
    tokens["dora"] = token_create(name="dora-laptop", user=dora, actor=PLATFORM, now=now)[1]
    dora.is_active = False
    dora.save()
    dev = get_user_model().objects.get(username="dev")
    expired, tokens["expired"] = token_create(
        name="dev-old", user=dev, actor=PLATFORM, now=now, expires_at=now + dt.timedelta(days=1)
    )
    ApiToken.objects.filter(pk=expired.pk).update(expires_at=now - dt.timedelta(minutes=1))
    tokens["narrow"] = token_create(
        name="dev-reader", user=dev, actor=PLATFORM, now=now, scopes=["read"]
    )[1]
    return {"run": run.id, "backfill": backfill.id, "tokens": tokens}


def snapshot() -> dict:
    """What any refused action could have changed."""
    function = Function.objects.filter(name="refresh-rates").first()
    return {
        "function": function and (function.paused, function.current_version_id),
        "versions": FunctionVersion.objects.count(),
        "runs": sorted(Run.objects.values_list("id", "status", "cancel_requested_at")),
        "backfills": sorted(Backfill.objects.values_list("id", "status")),
        "secrets": sorted(Secret.objects.values_list("name", "updated_at")),
        "tokens": sorted(ApiToken.objects.values_list("name", "revoked_at")),
        "audit": AuditEvent.objects.exclude(action__in=["sign_in", "sign_in_failed"]).count(),
    }


def console_as(name: str) -> Client:
    client = Client()
    client.force_login(get_user_model().objects.get(username=name))
    return client


# --- the console -----------------------------------------------------------------------------

PAGES = [
    "/", "/functions/refresh-rates", "/runs", "/runs/{run}", "/secrets", "/tokens", "/deploy",
]  # fmt: skip
CONSOLE_ACTIONS = {  # name: (right, page, form)
    "pause": ("run", "/", {"action": "pause", "name": "refresh-rates", "reason": "x"}),
    "pause-selected": ("run", "/", {"action": "pause-selected", "names": "refresh-rates"}),
    "run-now": ("run", "/functions/refresh-rates", {"action": "run", "name": "refresh-rates"}),
    "backfill": (
        "run",
        "/functions/refresh-rates",
        {
            "action": "backfill",
            "name": "refresh-rates",
            "start": "2026-01-01T00:00",
            "end": "2026-01-01T02:00",
            "parallel": "1",
        },
    ),  # fmt: skip
    "cancel-backfill": (
        "run",
        "/functions/refresh-rates",
        {"action": "cancel-backfill", "name": "refresh-rates", "backfill": "{backfill}"},
    ),
    "rollback": (
        "deploy",
        "/functions/refresh-rates",
        {"action": "rollback", "name": "refresh-rates", "version": "1"},
    ),
    "cancel": ("run", "/runs/{run}", {"action": "cancel"}),
    "set-secret": ("secrets", "/secrets", {"action": "set", "name": "NEW_KEY", "value": "v"}),
    "delete-secret": ("secrets", "/secrets", {"action": "delete", "name": "EXCHANGE_API_KEY"}),
}


@pytest.mark.parametrize("page", PAGES)
@pytest.mark.parametrize("name", ROLES)
def test_it_shows_the_console_to_every_role_and_no_one_else(world, name, page):
    response = console_as(name).get(page.format(**world))

    assert response.status_code == (200 if CAN[name] else 403)
    if not CAN[name]:
        assert "This needs the viewer role" in response.content.decode()


@pytest.mark.parametrize("action", CONSOLE_ACTIONS)
@pytest.mark.parametrize("name", ROLES)
def test_it_lets_each_role_take_exactly_its_console_actions(world, name, action):
    right, page, form = CONSOLE_ACTIONS[action]
    before = snapshot()

    form = {field: value.format(**world) for field, value in form.items()}
    response = console_as(name).post(page.format(**world), form)

    if not CAN[name]:
        assert response.status_code == 403  # no role: the page itself is refused
    elif right in CAN[name]:
        assert response.status_code == 303, response.content
    else:
        assert response.status_code == 403
        assert f"This needs the {'deployer' if right != 'run' else 'operator'} role" in (
            response.content.decode()
        )
    if right not in CAN[name]:
        assert snapshot() == before


def test_it_sends_a_deactivated_persons_session_to_log_in(world):
    response = console_as("dora").get("/")

    assert response.status_code == 302
    assert response["Location"].startswith("/login/")


@pytest.mark.parametrize("name", ROLES)
def test_it_offers_only_the_buttons_a_person_may_use(world, name):
    client = console_as(name)
    if not CAN[name]:
        return
    function_page = client.get("/functions/refresh-rates").content.decode()
    secrets_page = client.get("/secrets").content.decode()

    assert ('value="run"' in function_page) == ("run" in CAN[name])
    assert ('value="backfill"' in function_page) == ("run" in CAN[name])
    assert ('value="cancel-backfill"' in function_page) == ("run" in CAN[name])
    assert ('value="pause"' in function_page) == ("run" in CAN[name])
    assert ('value="set"' in secrets_page) == ("secrets" in CAN[name])
    assert ('href="/audit"' in function_page) == ("admin" in CAN[name])


@pytest.mark.parametrize("name", ROLES)
def test_it_shows_the_audit_trail_to_admins_only(world, name):
    response = console_as(name).get("/audit")

    assert response.status_code == (200 if "admin" in CAN[name] else 403)


# --- the REST API ----------------------------------------------------------------------------

API_CALLS = {  # name: (right, method, path, body, status when allowed)
    "list functions": ("read", "get", "/api/v1/functions", None, 200),
    "read a function": ("read", "get", "/api/v1/functions/refresh-rates", None, 200),
    "list runs": ("read", "get", "/api/v1/runs", None, 200),
    "read a run": ("read", "get", "/api/v1/runs/{run}", None, 200),
    "read a log": ("read", "get", "/api/v1/runs/{run}/logs", None, 200),
    "list secrets": ("read", "get", "/api/v1/secrets", None, 200),
    "pause": ("run", "post", "/api/v1/functions/refresh-rates/pause", {"reason": "x"}, 200),
    "trigger": ("run", "post", "/api/v1/functions/refresh-rates/trigger", None, 201),
    "cancel": ("run", "post", "/api/v1/runs/{run}/cancel", None, 200),
    "backfill": ("run", "post", "/api/v1/functions/refresh-rates/backfill", "backfill", 201),
    "read a backfill": ("read", "get", "/api/v1/backfills/{backfill}", None, 200),
    "cancel a backfill": ("run", "post", "/api/v1/backfills/{backfill}/cancel", None, 200),
    "deploy": ("deploy", "put", "/api/v1/functions/nightly", "deploy", 201),
    "deploy with a secret": ("secrets", "put", "/api/v1/functions/leaky", "leaky", 201),
    "delete a function": ("deploy", "delete", "/api/v1/functions/refresh-rates", None, 204),
    "set a secret": ("secrets", "put", "/api/v1/secrets/NEW_KEY", {"value": "v"}, 201),
    "delete a secret": ("secrets", "delete", "/api/v1/secrets/EXCHANGE_API_KEY", None, 204),
    "read the audit trail": ("admin", "get", "/api/v1/audit", None, 200),
}
BODIES = {
    "deploy": deploy_body(schedule="0 2 * * *"),
    "leaky": deploy_body(schedule=None, secrets=["EXCHANGE_API_KEY"]),
    "backfill": {"start": "2026-01-01T00:00:00Z", "end": "2026-01-01T02:00:00Z"},
}
TOKEN_RIGHTS = {
    **{name: CAN[name] for name in ("ada", "dev", "otto", "vic")},
    "narrow": {"read"},  # dev's token narrowed to read
}


@pytest.mark.parametrize("call", API_CALLS)
@pytest.mark.parametrize("holder", [*TOKEN_RIGHTS, "dora", "expired"])
def test_it_lets_each_token_make_exactly_the_calls_its_scopes_and_owner_allow(world, holder, call):
    right, method, path, body, allowed = API_CALLS[call]
    client = APIClient()
    client.credentials(HTTP_AUTHORIZATION=f"Bearer {world['tokens'][holder]}")
    before = snapshot()

    data = BODIES[body] if isinstance(body, str) else body
    response = getattr(client, method)(path.format(**world), data, format="json")

    if holder in ("dora", "expired"):
        assert response.status_code == 401
        assert response.json()["error"] == "invalid_token"
    elif right in TOKEN_RIGHTS[holder]:
        assert response.status_code == allowed, response.content
    else:
        assert response.status_code == 403, response.content
        assert response.json()["error"] == "forbidden"
    if holder in ("dora", "expired") or right not in TOKEN_RIGHTS[holder]:
        assert snapshot() == before


def test_it_stops_a_token_at_once_when_its_owners_role_is_taken_away(world):
    client = APIClient()
    client.credentials(HTTP_AUTHORIZATION=f"Bearer {world['tokens']['otto']}")
    assert client.post("/api/v1/functions/refresh-rates/pause", format="json").status_code == 200

    person("otto", "viewer")

    response = client.post("/api/v1/functions/refresh-rates/resume", format="json")
    assert response.status_code == 403
    assert response.json()["detail"].startswith("This needs the operator role")
    assert Function.objects.get(name="refresh-rates").paused


def test_it_stops_a_token_whose_owner_is_deleted(world):
    get_user_model().objects.filter(username="otto").delete()

    client = APIClient()
    client.credentials(HTTP_AUTHORIZATION=f"Bearer {world['tokens']['otto']}")

    assert client.get("/api/v1/functions").status_code == 401


# --- the admin -------------------------------------------------------------------------------

ADMIN_ACTIONS = {  # name: (right, changelist, action, selected)
    "pause": ("run", "/admin/scheduling/function/", "pause", "function"),
    "run now": ("run", "/admin/scheduling/function/", "run_now", "function"),
    "cancel": ("run", "/admin/runs/run/", "cancel", "run"),
    "re-run": ("run", "/admin/runs/run/", "rerun", "run"),
    "revoke a token": ("admin", "/admin/access/apitoken/", "revoke", "token"),
}


@pytest.mark.parametrize("action", ADMIN_ACTIONS)
@pytest.mark.parametrize("name", ["ada", "dev", "otto", "vic"])
def test_it_lets_staff_take_only_the_admin_actions_their_role_allows(world, name, action):
    right, changelist, action_name, selected = ADMIN_ACTIONS[action]
    user = get_user_model().objects.get(username=name)
    user.is_staff = True
    # The admin's own rule lets staff see the models; the actions then ask for the right.
    user.user_permissions.set(Permission.objects.filter(codename__startswith="view_"))
    user.save()
    pk = {
        "function": Function.objects.get(name="refresh-rates").pk,
        "run": world["run"],
        "token": ApiToken.objects.get(name="vic-laptop").pk,
    }[selected]
    before = snapshot()

    response = console_as(name).post(
        changelist, {"action": action_name, "_selected_action": [pk]}, follow=True
    )

    assert response.status_code == 200
    if right in CAN[name]:
        assert snapshot() != before
    else:
        assert snapshot() == before


def test_an_admin_invites_a_viewer_who_sees_but_cannot_change(world):
    admin = Client()
    admin.force_login(get_user_model().objects.create_superuser("root", password="root-pw-7"))

    admin.post(
        "/admin/auth/user/add/",
        {"username": "newcomer", "password1": "a-long-pass-7", "password2": "a-long-pass-7"},
    )
    newcomer = get_user_model().objects.get(username="newcomer")
    admin.post(
        "/admin/auth/user/",
        {"action": "set_role_viewer", "_selected_action": [newcomer.pk]},
    )

    viewer = Client()
    signed_in = viewer.post("/login/", {"username": "newcomer", "password": "a-long-pass-7"})
    assert signed_in.status_code == 302
    assert viewer.get("/").status_code == 200
    before = snapshot()
    refused = viewer.post("/", {"action": "pause", "name": "refresh-rates", "reason": "x"})
    assert refused.status_code == 403
    assert snapshot() == before
    event = AuditEvent.objects.get(action="role_change")
    assert (event.actor, event.target, event.detail) == (
        "root",
        "user newcomer",
        {"before": None, "after": "viewer"},
    )

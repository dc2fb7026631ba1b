"""The admin, as olivia the operator uses it: pause/resume, read-only versions, write-only
secrets, and API tokens shown once."""

import pytest
from django.utils.html import escape

from access.models import ApiToken
from common import crypto
from scheduling.models import Function, Secret
from scheduling.services import secret_set
from tests.personas import PLATFORM, make_token
from tests.server.support import RATES_SOURCE, deploy_body
from tests.support import NOW

pytestmark = pytest.mark.usefixtures("clock")


@pytest.fixture
def rates(api):
    api.put("/api/v1/functions/refresh-rates", deploy_body(), format="json")
    return Function.objects.get(name="refresh-rates")


def test_it_lists_functions_with_their_schedule(admin_client_olivia, rates):
    response = admin_client_olivia.get("/admin/scheduling/function/")

    assert response.status_code == 200
    assert b"every hour, on the hour (0 * * * *)" in response.content


def test_it_pauses_functions_from_the_admin(admin_client_olivia, rates):
    response = admin_client_olivia.post(
        "/admin/scheduling/function/",
        {"action": "pause", "_selected_action": [rates.pk]},
        follow=True,
    )

    assert b"Paused 1 function(s)." in response.content
    rates.refresh_from_db()
    assert (rates.paused, rates.paused_by, rates.paused_at, rates.next_fire_at) == (
        True,
        "olivia",
        NOW,
        None,
    )


def test_it_resumes_functions_from_the_admin(admin_client_olivia, api, rates):
    api.post("/api/v1/functions/refresh-rates/pause", format="json")

    admin_client_olivia.post(
        "/admin/scheduling/function/", {"action": "resume", "_selected_action": [rates.pk]}
    )

    rates.refresh_from_db()
    assert (rates.paused, rates.next_fire_at.isoformat()) == (False, "2026-11-29T00:00:00+00:00")


def test_it_shows_a_versions_source_read_only(admin_client_olivia, rates):
    version = rates.current_version

    response = admin_client_olivia.get(f"/admin/scheduling/functionversion/{version.pk}/change/")

    assert response.status_code == 200
    assert b"<pre>import chalkcompute" in response.content
    assert b'name="source"' not in response.content  # no form field: versions are immutable
    assert b"Save" not in response.content
    assert escape(RATES_SOURCE).encode() in response.content


def test_it_sets_a_secret_from_the_admin_without_showing_it(admin_client_olivia):
    response = admin_client_olivia.post(
        "/admin/scheduling/secret/add/",
        {"name": "EXCHANGE_API_KEY", "value": "typed-into-the-admin"},
        follow=True,
    )

    assert response.status_code == 200
    assert b"typed-into-the-admin" not in response.content
    secret = Secret.objects.get(name="EXCHANGE_API_KEY")
    assert crypto.decrypt(secret.ciphertext) == "typed-into-the-admin"


def test_it_keeps_a_secrets_value_when_the_admin_leaves_it_empty(admin_client_olivia):
    secret, _ = secret_set(name="EXCHANGE_API_KEY", value="kept", now=NOW, actor=PLATFORM)

    admin_client_olivia.post(f"/admin/scheduling/secret/{secret.pk}/change/", {"value": ""})

    secret.refresh_from_db()
    assert crypto.decrypt(secret.ciphertext) == "kept"


def test_it_refuses_to_delete_a_secret_in_use_from_the_admin(admin_client_olivia, api):
    secret, _ = secret_set(name="EXCHANGE_API_KEY", value="in-use", now=NOW, actor=PLATFORM)
    api.put(
        "/api/v1/functions/refresh-rates", deploy_body(secrets=["EXCHANGE_API_KEY"]), format="json"
    )

    response = admin_client_olivia.post(
        f"/admin/scheduling/secret/{secret.pk}/delete/", {"post": "yes"}
    )

    assert response.status_code == 200  # the confirmation page again, listing what needs it
    assert b"Function: refresh-rates (reads secret EXCHANGE_API_KEY)" in response.content
    assert Secret.objects.filter(pk=secret.pk).exists()


def test_it_makes_no_tokens_in_the_admin_where_the_text_would_pass_through_a_cookie(
    admin_client_olivia,
):
    response = admin_client_olivia.post("/admin/access/apitoken/add/", {"name": "ci"})

    assert response.status_code == 403
    assert not ApiToken.objects.exists()
    assert "messages" not in response.cookies


def test_it_revokes_tokens_from_the_admin(admin_client_olivia):
    token, _ = make_token("ci")

    admin_client_olivia.post(
        "/admin/access/apitoken/", {"action": "revoke", "_selected_action": [token.pk]}
    )

    token.refresh_from_db()
    assert token.revoked_at == NOW

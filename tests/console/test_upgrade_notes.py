"""What an upgrade from before owners and roles leaves behind, and what each page says about it:
a token made without an owner (`create_token NAME` had no --user) is refused by the API and
listed as refused, with the same reason, on the console and in the admin; a staff user from
before roles signs in to a page that says how to get a role; a superuser keeps everything."""

from django.contrib.auth import get_user_model
from django.test import Client
from django.utils import timezone
from django.utils.html import escape
from rest_framework.test import APIClient

from access.models import ApiToken
from access.tokens import token_hash
from tests.console.support import html

OWNERLESS_REASON = "was made before tokens had owners: it acts as no one, so it is refused."


def ownerless_token() -> tuple[ApiToken, str]:
    """A token as the release before owners made it: no owner, and (migration 0002) every
    scope."""
    plaintext = "chalk_OLDownerlessTokenText0123456789"
    token = ApiToken.objects.create(
        name="ci-from-before",
        token_hash=token_hash(plaintext),
        prefix=plaintext[:12],
        created_by=None,
        scopes=["read", "run", "deploy", "secrets", "admin"],
        created_at=timezone.now(),
    )
    return token, plaintext


def test_the_api_refuses_a_token_without_an_owner_and_says_why(db):
    _, plaintext = ownerless_token()

    response = APIClient(HTTP_AUTHORIZATION=f"Bearer {plaintext}").get("/api/v1/functions")

    assert response.status_code == 401
    assert response.json()["error"] == "invalid_token"
    assert OWNERLESS_REASON in response.json()["detail"]
    assert "create_token NAME --user USERNAME" in response.json()["detail"]


def test_the_tokens_page_lists_a_token_without_an_owner_as_refused(console):
    token, plaintext = ownerless_token()
    api_says = APIClient(HTTP_AUTHORIZATION=f"Bearer {plaintext}").get("/api/v1/functions")

    page = html(console.get("/tokens"))

    row = page.split(f'<tr id="token-{token.id}">')[1].split("</tr>")[0]
    assert "<td>no one</td>" in row
    assert "<strong>refused</strong>: " in row
    assert OWNERLESS_REASON in row
    assert ">active<" not in row
    # The list says what the API answers, word for word (the same rule makes both).
    assert escape(api_says.json()["detail"]) in row


def test_the_tokens_page_still_calls_a_working_token_active(console, olivia):
    console.post("/tokens", {"action": "create", "name": "ci"})
    token = ApiToken.objects.get(name="ci")

    row = html(console.get("/tokens")).split(f'<tr id="token-{token.id}">')[1].split("</tr>")[0]

    assert "<td>active</td>" in row


def test_the_tokens_page_lists_a_deactivated_owners_token_as_refused(console, oscar):
    console.post("/tokens", {"action": "create", "name": "ci"})
    token = ApiToken.objects.get(name="ci")
    ApiToken.objects.filter(pk=token.pk).update(created_by=oscar)
    get_user_model().objects.filter(pk=oscar.pk).update(is_active=False)

    row = html(console.get("/tokens")).split(f'<tr id="token-{token.id}">')[1].split("</tr>")[0]

    assert "<strong>refused</strong>: " in row
    assert "belongs to oscar, whose account is deactivated" in row


def test_the_admin_lists_a_token_without_an_owner_as_refused(db):
    ownerless_token()
    root = Client()
    root.force_login(get_user_model().objects.create_superuser("root", password="root-pw-7"))

    page = html(root.get("/admin/access/apitoken/"))

    assert "refused: This API token (ci-from-before" in page
    assert OWNERLESS_REASON in page


def test_a_staff_user_with_no_role_signs_in_to_a_page_that_says_what_to_do(db):
    # A staff user from before roles, as the release before roles let into the console.
    get_user_model().objects.create_user("ops", password="ops-password-7", is_staff=True)
    browser = Client()

    signed_in = browser.post("/login/", {"username": "ops", "password": "ops-password-7"})
    response = browser.get(signed_in["Location"])

    assert signed_in.status_code == 302
    assert response.status_code == 403
    page = html(response)
    assert "ops has no role yet, so it may do nothing here" in page
    assert "viewer, operator, deployer or admin" in page
    assert "a superuser does it in the admin (Users, tick ops" in page
    assert "manage.py set_role ops viewer" in page


def test_the_way_the_page_names_gives_the_role(db):
    ops = get_user_model().objects.create_user("ops", password="ops-password-7", is_staff=True)
    root = Client()
    root.force_login(get_user_model().objects.create_superuser("root", password="root-pw-7"))

    root.post("/admin/auth/user/", {"action": "set_role_viewer", "_selected_action": [ops.pk]})

    browser = Client()
    browser.force_login(ops)
    assert browser.get("/").status_code == 200


def test_a_superuser_without_any_role_group_keeps_the_console_and_the_api(db):
    root = get_user_model().objects.create_superuser("root", password="root-pw-7")
    assert not root.groups.exists()
    browser = Client()
    browser.post("/login/", {"username": "root", "password": "root-pw-7"})

    for page in ("/", "/runs", "/secrets", "/tokens", "/audit"):
        assert browser.get(page).status_code == 200, page
    created = browser.post("/tokens", {"action": "create", "name": "root-ci"})
    plaintext = html(created).split('id="new-token" class="token" value="')[1].split('"')[0]
    api = APIClient(HTTP_AUTHORIZATION=f"Bearer {plaintext}")
    assert api.get("/api/v1/functions").status_code == 200
    assert ApiToken.objects.get(name="root-ci").scopes == [
        "read",
        "run",
        "deploy",
        "secrets",
        "admin",
    ]

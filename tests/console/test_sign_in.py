"""Signing in through the login form: repeated failures lock a username out from one address
(django-axes, CHALK_LOGIN_FAILURE_LIMIT and CHALK_LOGIN_LOCKOUT_SECONDS), admins see and lift
lockouts, and API tokens never go through any of it."""

import datetime as dt
import io
import re

import pytest
import time_machine
from django.contrib.auth import get_user_model
from django.core.management import call_command
from django.test import Client, RequestFactory
from django.utils import timezone

from chalkweb.security import client_ip
from tests.personas import OLIVIA_PASSWORD, make_token

pytestmark = pytest.mark.django_db

WRONG = "not-her-password"
HOME = "192.0.2.10"
ELSEWHERE = "198.51.100.7"


def sign_in(client: Client, password: str, *, username: str = "olivia", path: str = "/login/"):
    return client.post(path, {"username": username, "password": password})


def signed_in(client: Client) -> bool:
    return "_auth_user_id" in client.session


def fail(client: Client, times: int, **kwargs) -> list:
    return [sign_in(client, WRONG, **kwargs) for _ in range(times)]


@pytest.fixture
def home(db) -> Client:
    return Client(REMOTE_ADDR=HOME)


def test_it_locks_a_username_out_after_five_failures_even_with_the_right_password(olivia, home):
    first_four = fail(home, 4)
    assert [response.status_code for response in first_four] == [200] * 4
    assert "That username and password do not match" in first_four[-1].content.decode()

    fifth = sign_in(home, WRONG)
    assert fifth.status_code == 429
    assert fifth["Retry-After"] == "900"
    page = fifth.content.decode()
    assert "Too many failed sign-ins: 5 in a row for <strong>olivia</strong>" in page
    assert "Try again in 15 minutes." in page
    assert "manage.py axes_reset_username olivia" in page

    right = sign_in(home, OLIVIA_PASSWORD)
    assert right.status_code == 429
    assert not signed_in(home)


def test_the_lockout_is_per_username_and_address(olivia, oscar, home):
    fail(home, 5)

    elsewhere = Client(REMOTE_ADDR=ELSEWHERE)
    assert sign_in(elsewhere, OLIVIA_PASSWORD).status_code == 302  # nobody locks her out remotely
    assert signed_in(elsewhere)
    other_user = sign_in(home, "oscar-outsider-7", username="oscar")
    assert other_user.status_code == 302
    assert signed_in(home)


def test_a_success_resets_the_count(olivia, home):
    fail(home, 4)
    assert sign_in(home, OLIVIA_PASSWORD).status_code == 302
    home.logout()

    assert [response.status_code for response in fail(home, 4)] == [200] * 4
    assert sign_in(home, OLIVIA_PASSWORD).status_code == 302


def test_the_lockout_ends_after_the_cool_off_and_each_try_meanwhile_restarts_it(olivia, home):
    start = timezone.now()
    with time_machine.travel(start, tick=False) as clock:
        fail(home, 5)
        clock.move_to(start + dt.timedelta(minutes=10))
        assert sign_in(home, OLIVIA_PASSWORD).status_code == 429  # restarts the 15 minutes
        clock.move_to(start + dt.timedelta(minutes=24))
        assert sign_in(home, OLIVIA_PASSWORD).status_code == 429
        clock.move_to(start + dt.timedelta(minutes=40))
        assert sign_in(home, OLIVIA_PASSWORD).status_code == 302


@pytest.mark.parametrize("command", [["axes_reset_username", "olivia"], ["axes_reset"]])
def test_an_admin_unlocks_a_username_from_the_command_line(olivia, home, command):
    fail(home, 5)
    assert sign_in(home, OLIVIA_PASSWORD).status_code == 429

    call_command(*command, stdout=io.StringIO())

    assert sign_in(home, OLIVIA_PASSWORD).status_code == 302


def test_admins_see_lockouts_and_every_failure_in_the_admin(olivia, home):
    fail(home, 6)
    admin = Client()
    admin.force_login(get_user_model().objects.create_superuser("root", password="root-password-7"))

    attempts = admin.get("/admin/axes/accessattempt/?locked_out=yes")
    assert attempts.status_code == 200
    rows = re.findall(r"<tr>.*?</tr>", attempts.content.decode().split("<tbody>")[1], re.S)
    assert len(rows) == 1
    assert all(text in rows[0] for text in (HOME, "olivia", "Locked Out"))
    failures = admin.get("/admin/axes/accessfailurelog/").content.decode()
    assert failures.count(f'<td class="field-ip_address">{HOME}</td>') == 6
    attempt = admin.get(re.search(r'href="(/admin/axes/accessattempt/\d+/change/)', rows[0])[1])
    assert WRONG not in attempt.content.decode()  # a mistyped password is kept nowhere


def test_the_admin_login_locks_out_too(olivia, home):
    olivia.is_superuser = True
    olivia.save()
    fail(home, 5, path="/admin/login/")

    response = sign_in(home, OLIVIA_PASSWORD, path="/admin/login/")
    assert response.status_code == 429
    assert "Too many failed sign-ins" in response.content.decode()


def test_the_api_never_locks_out_and_ignores_a_locked_out_sign_in(olivia, home):
    _, token = make_token("ci")
    bad = Client(REMOTE_ADDR=HOME, headers={"Authorization": "Bearer chalk_not-a-token"})
    assert [bad.get("/api/v1/functions").status_code for _ in range(8)] == [401] * 8
    fail(home, 5)

    api = Client(REMOTE_ADDR=HOME, headers={"Authorization": f"Bearer {token}"})
    assert api.get("/api/v1/functions").status_code == 200


def test_it_counts_failures_by_the_address_a_tls_proxy_saw(settings):
    factory = RequestFactory()
    via_proxy = factory.post(
        "/login/", REMOTE_ADDR="10.0.0.2", HTTP_X_FORWARDED_FOR="203.0.113.9, 192.0.2.10"
    )
    settings.CHALK_BEHIND_TLS_PROXY = False
    assert client_ip(via_proxy) == "10.0.0.2"  # no proxy: the header is the client's own words
    settings.CHALK_BEHIND_TLS_PROXY = True
    assert client_ip(via_proxy) == "192.0.2.10"  # the entry the proxy appended, not a forged one
    assert client_ip(factory.post("/login/", REMOTE_ADDR="10.0.0.2")) == "10.0.0.2"

"""Settings for a deployment, read from the environment at start (chalkweb/settings.py): the
keys a server database needs, the TLS settings that follow CHALK_PUBLIC_URL, and the security
headers every answer carries. Start-up is checked in a new process, as a server starts."""

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
from cryptography.fernet import Fernet
from django.contrib.auth import get_user_model
from django.test import Client

REPO = Path(__file__).resolve().parents[2]
SERVER_DATABASE = "postgres://chalkweb@127.0.0.1:5432/chalkweb"  # `check` does not connect
KEYS = {
    "DJANGO_SECRET_KEY": "a-long-random-django-secret-key-for-this-test-only-0123456789",
    "CHALK_SECRETS_KEY": Fernet.generate_key().decode(),
}
SETTINGS = [
    "SESSION_COOKIE_SECURE",
    "CSRF_COOKIE_SECURE",
    "SECURE_PROXY_SSL_HEADER",
    "SECURE_HSTS_SECONDS",
    "SECURE_HSTS_INCLUDE_SUBDOMAINS",
    "CSRF_TRUSTED_ORIGINS",
]
POLICY = {
    "default-src 'self'",
    "script-src 'self'",
    "style-src 'self'",
    "img-src 'self' data:",
    "connect-src 'self'",
    "frame-ancestors 'none'",
    "form-action 'self'",
    "base-uri 'self'",
    "object-src 'none'",
}


def directives(header: str | None) -> set[str]:
    return {directive.strip() for directive in (header or "").split(";") if directive.strip()}


def start(tmp_path: Path, *command: str, **env: str) -> subprocess.CompletedProcess:
    """`manage.py COMMAND` in a new process with only `env` of the settings that matter here
    (the test run's own DATABASE_URL, keys and public URL removed)."""
    return run(tmp_path, "manage.py", *command, **env)


def run(tmp_path: Path, *argv: str, **env: str) -> subprocess.CompletedProcess:
    environ = {
        name: value
        for name, value in os.environ.items()
        if not name.startswith(("DATABASE_", "DJANGO_", "CHALK_", "CELERY_"))
    }
    environ.update({"CHALK_DATA_DIR": str(tmp_path / "data"), **env})
    return subprocess.run(
        [sys.executable, *argv],
        cwd=REPO,
        env=environ,
        capture_output=True,
        text=True,
        timeout=120,
    )


def settings_of(tmp_path: Path, **env: str) -> dict:
    shown = run(tmp_path, "-c", _PRINT_SETTINGS, DJANGO_SETTINGS_MODULE="chalkweb.settings", **env)
    assert shown.returncode == 0, shown.stderr
    return json.loads(shown.stdout)


_PRINT_SETTINGS = (
    "import json; import django; django.setup(); from django.conf import settings; "
    f"print(json.dumps({{name: getattr(settings, name) for name in {SETTINGS!r}}}))"
)


@pytest.mark.parametrize(
    "missing",
    [["DJANGO_SECRET_KEY", "CHALK_SECRETS_KEY"], ["DJANGO_SECRET_KEY"], ["CHALK_SECRETS_KEY"]],
)
def test_it_refuses_to_start_on_a_server_database_without_its_keys(tmp_path, missing):
    given = {name: value for name, value in KEYS.items() if name not in missing}

    started = start(tmp_path, "check", DATABASE_URL=SERVER_DATABASE, **given)

    assert started.returncode == 1
    message = started.stderr.strip().splitlines()[-1]
    assert message.startswith(
        "django.core.exceptions.ImproperlyConfigured: DATABASE_URL is set, so "
        f"{' and '.join(missing)} must be set too, the same on every process (or "
        f"{' / '.join(name + '_FILE' for name in missing)} naming a file that holds it)"
    )
    for name in missing:
        assert f"Make {name} with: " in message or f"; {name} with: " in message
    assert not (tmp_path / "data" / "secrets.key").exists()


def test_a_blank_key_counts_as_missing(tmp_path):
    started = start(
        tmp_path, "check", DATABASE_URL=SERVER_DATABASE, **{**KEYS, "CHALK_SECRETS_KEY": "  "}
    )

    assert started.returncode == 1
    assert "so CHALK_SECRETS_KEY must be set too" in started.stderr


def test_it_starts_on_a_server_database_with_both_keys_given_or_in_files(tmp_path):
    assert start(tmp_path, "check", DATABASE_URL=SERVER_DATABASE, **KEYS).returncode == 0

    key_file = tmp_path / "secrets-key"
    key_file.write_text(KEYS["CHALK_SECRETS_KEY"] + "\n")
    started = start(
        tmp_path,
        "check",
        DATABASE_URL=SERVER_DATABASE,
        DJANGO_SECRET_KEY=KEYS["DJANGO_SECRET_KEY"],
        CHALK_SECRETS_KEY_FILE=str(key_file),
    )
    assert started.returncode == 0, started.stderr
    assert started.stdout == "System check identified no issues (0 silenced).\n"


def test_the_embedded_default_makes_and_keeps_its_own_keys(tmp_path):
    assert start(tmp_path, "check").returncode == 0

    assert {path.name for path in (tmp_path / "data").glob("*.key")} == {
        "django-secret.key",
        "secrets.key",
    }


def test_the_embedded_default_serves_plain_http_on_127_0_0_1(tmp_path):
    assert settings_of(tmp_path, PORT="8123") == {
        "SESSION_COOKIE_SECURE": False,
        "CSRF_COOKIE_SECURE": False,
        "SECURE_PROXY_SSL_HEADER": None,
        "SECURE_HSTS_SECONDS": 0,
        "SECURE_HSTS_INCLUDE_SUBDOMAINS": False,
        "CSRF_TRUSTED_ORIGINS": ["http://127.0.0.1:8123"],
    }


def test_an_https_public_url_turns_the_tls_settings_on(tmp_path):
    assert settings_of(tmp_path, CHALK_PUBLIC_URL="https://chalkweb.example.com") == {
        "SESSION_COOKIE_SECURE": True,
        "CSRF_COOKIE_SECURE": True,
        "SECURE_PROXY_SSL_HEADER": ["HTTP_X_FORWARDED_PROTO", "https"],
        "SECURE_HSTS_SECONDS": 31_536_000,
        "SECURE_HSTS_INCLUDE_SUBDOMAINS": False,
        "CSRF_TRUSTED_ORIGINS": ["https://chalkweb.example.com"],
    }


def test_each_tls_setting_can_be_set_on_its_own(tmp_path):
    assert settings_of(
        tmp_path,
        CHALK_PUBLIC_URL="https://chalkweb.example.com",
        CHALK_SECURE_COOKIES="false",
        CHALK_BEHIND_TLS_PROXY="false",
        CHALK_HSTS_SECONDS="3600",
        CHALK_HSTS_INCLUDE_SUBDOMAINS="true",
        DJANGO_CSRF_TRUSTED_ORIGINS="https://a.example.com, https://b.example.com",
    ) == {
        "SESSION_COOKIE_SECURE": False,
        "CSRF_COOKIE_SECURE": False,
        "SECURE_PROXY_SSL_HEADER": None,
        "SECURE_HSTS_SECONDS": 3600,
        "SECURE_HSTS_INCLUDE_SUBDOMAINS": True,
        "CSRF_TRUSTED_ORIGINS": ["https://a.example.com", "https://b.example.com"],
    }


def test_a_deployment_behind_tls_passes_djangos_deployment_checks_but_three(tmp_path):
    checked = start(
        tmp_path,
        "check",
        "--deploy",
        DATABASE_URL=SERVER_DATABASE,
        CHALK_PUBLIC_URL="https://chalkweb.example.com",
        **KEYS,
    )

    assert checked.returncode == 0, checked.stderr
    # Left on purpose: HSTS for subdomains and preloading are the operator's choice
    # (CHALK_HSTS_INCLUDE_SUBDOMAINS), and the proxy redirects HTTP to HTTPS, as runners may
    # reach the runner API over an in-cluster http:// address.
    warnings = sorted(line.split(")")[0] for line in checked.stderr.splitlines() if "?: (" in line)
    assert warnings == ["?: (security.W005", "?: (security.W008", "?: (security.W021"]


@pytest.mark.parametrize(
    ("name", "value", "message"),
    [
        ("CHALK_LOGIN_FAILURE_LIMIT", "0", "CHALK_LOGIN_FAILURE_LIMIT=0: use 1 or more"),
        (
            "CHALK_LOGIN_LOCKOUT_SECONDS",
            "-1",
            "CHALK_LOGIN_LOCKOUT_SECONDS=-1: use 0 (until an admin unlocks) or more seconds",
        ),
        ("CHALK_HSTS_SECONDS", "a year", "CHALK_HSTS_SECONDS='a year' is not a whole number"),
    ],
)
def test_it_refuses_a_sign_in_or_tls_setting_it_cannot_use(tmp_path, name, value, message):
    started = start(tmp_path, "check", **{name: value})

    assert started.returncode == 1
    assert started.stderr.strip().splitlines()[-1] == (
        f"django.core.exceptions.ImproperlyConfigured: {message}"
    )


def test_every_answer_carries_the_security_headers(db):
    for path in ("/login/", "/healthz", "/api/v1/functions", "/admin/login/"):
        response = Client().get(path)

        assert directives(response["Content-Security-Policy"]) == POLICY, path
        assert response["X-Frame-Options"] == "DENY"
        assert response["X-Content-Type-Options"] == "nosniff"
        assert response["Referrer-Policy"] == "same-origin"
        assert "Strict-Transport-Security" not in response  # plain HTTP: no HSTS


def test_behind_a_tls_proxy_answers_carry_hsts_and_cookies_are_secure(db, settings):
    get_user_model().objects.create_user("olivia", password="olivia-operates-7", is_staff=True)
    settings.SECURE_PROXY_SSL_HEADER = ("HTTP_X_FORWARDED_PROTO", "https")
    settings.SECURE_HSTS_SECONDS = 31_536_000
    settings.SESSION_COOKIE_SECURE = settings.CSRF_COOKIE_SECURE = True
    settings.CSRF_TRUSTED_ORIGINS = ["https://chalkweb.example.com"]
    settings.ALLOWED_HOSTS = ["chalkweb.example.com"]
    browser = Client(headers={"X-Forwarded-Proto": "https"}, HTTP_HOST="chalkweb.example.com")

    login_page = browser.get("/login/")
    assert login_page["Strict-Transport-Security"] == "max-age=31536000"
    assert login_page.cookies["csrftoken"]["secure"]

    signed_in = browser.post(
        "/login/", {"username": "olivia", "password": "olivia-operates-7"}, secure=True
    )
    assert signed_in.status_code == 302
    session = signed_in.cookies["sessionid"]
    assert session["secure"] and session["httponly"]
    assert session["samesite"] == "Lax"

"""The Host names the server answers (chalkweb/settings.py's ALLOWED_HOSTS): by default those
of CHALK_PUBLIC_URL and CHALK_RUNNER_SERVER_URL and the machine's own, so that a forged Host
gets 400 and never shows in the links an answer builds (the API's `next`). Settings are read
in a new process, as a server starts."""

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from tests.server.support import PUBLIC_URL, deploy_body

REPO = Path(__file__).resolve().parents[2]
LOCAL = ["localhost", "127.0.0.1", "[::1]"]
PRINT_ALLOWED_HOSTS = (
    "import json; from chalkweb import settings; print(json.dumps(settings.ALLOWED_HOSTS))"
)


def allowed_hosts(tmp_path: Path, **env: str) -> list[str]:
    environ = {
        name: value
        for name, value in os.environ.items()
        if not name.startswith(("DATABASE_", "DJANGO_", "CHALK_", "CELERY_", "PORT"))
    }
    environ.update({"CHALK_DATA_DIR": str(tmp_path / "data"), **env})
    shown = subprocess.run(
        [sys.executable, "-c", PRINT_ALLOWED_HOSTS],
        cwd=REPO,
        env=environ,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert shown.returncode == 0, shown.stderr
    return json.loads(shown.stdout)


@pytest.mark.parametrize(
    "env, hosts",
    [
        ({}, ["127.0.0.1", "localhost", "[::1]"]),  # make run's http://127.0.0.1:8000
        ({"CHALK_PUBLIC_URL": "https://Chalkweb.Example.com/"}, ["chalkweb.example.com", *LOCAL]),
        (
            {
                "CHALK_PUBLIC_URL": "https://chalkweb.example.com",
                "CHALK_RUNNER_SERVER_URL": "http://chalkweb-web.chalkweb.svc:8000",
            },
            ["chalkweb.example.com", "chalkweb-web.chalkweb.svc", *LOCAL],
        ),
        ({"CHALK_PUBLIC_URL": "http://[fd00::5]:8000"}, ["[fd00::5]", *LOCAL]),
        (
            {"CHALK_PUBLIC_URL": "https://chalkweb.example.com", "DJANGO_ALLOWED_HOSTS": "a, b"},
            ["a", "b"],
        ),
    ],
    ids=["embedded", "public-url", "runner-url", "ipv6", "given"],
)
def test_the_default_follows_the_public_and_runner_urls(tmp_path, env, hosts):
    assert allowed_hosts(tmp_path, **env) == hosts


@pytest.fixture
def two_functions(api):
    for name in ("refresh-rates", "nightly-rollup"):
        api.put(f"/api/v1/functions/{name}", deploy_body(), format="json")


def test_a_forged_host_gets_400_and_is_not_echoed(api, two_functions, settings, tmp_path):
    settings.ALLOWED_HOSTS = allowed_hosts(tmp_path, CHALK_PUBLIC_URL=PUBLIC_URL)

    forged = api.get("/api/v1/functions?limit=1", HTTP_HOST="evil.example")
    assert forged.status_code == 400
    assert b"evil.example" not in forged.content  # not in a link, nor in the words

    answered = api.get(
        "/api/v1/functions?limit=1",
        HTTP_HOST="chalk.example.com",
        HTTP_X_FORWARDED_HOST="evil.example",  # not trusted: USE_X_FORWARDED_HOST is off
    )
    assert answered.status_code == 200
    assert answered.json()["next"] == "http://chalk.example.com/api/v1/functions?limit=1&offset=1"
    for host in ("localhost", "127.0.0.1:8000", "[::1]:8000"):  # this machine's own checks
        assert api.get("/healthz", HTTP_HOST=host).status_code == 200, host

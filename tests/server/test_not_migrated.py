"""A new web started before `manage.py migrate`: /readyz and the API say to migrate, in words
and in the API's JSON, instead of an HTML 500 with a ProgrammingError in the log."""

import pytest
from django.core.management import call_command

from common import database
from tests.personas import make_token
from tests.runs.support import deploy


@pytest.fixture
def one_migration_behind(transactional_db):
    """The database as an older Chalkweb left it: the last scheduling migration (a column of
    function versions) not applied, with a function deployed before."""
    deploy("nightly-rollup", "pass")
    call_command("migrate", "scheduling", "0003", verbosity=0)
    database._migrated.clear()  # this process saw it migrated before
    try:
        yield
    finally:
        call_command("migrate", verbosity=0)
        database._migrated.clear()


def test_readyz_and_the_api_say_to_migrate(client, one_migration_behind):
    readyz = client.get("/readyz")
    assert readyz.status_code == 503
    migrations = readyz.json()["checks"]["migrations"]
    assert migrations["ok"] is False and "scheduling.0004_version_alerts" in migrations["pending"]
    assert migrations["error"].endswith("run `manage.py migrate`")
    assert readyz.json()["checks"]["beat"] == {"ok": False, "error": "the database is not migrated"}

    _, token = make_token("reader", role="viewer")
    listed = client.get("/api/v1/functions/nightly-rollup", HTTP_AUTHORIZATION=f"Bearer {token}")

    assert listed.status_code == 503
    assert listed.json()["error"] == "not_migrated"
    assert "scheduling.0004_version_alerts" in listed.json()["detail"]
    assert listed.json()["detail"].endswith("run `manage.py migrate`")

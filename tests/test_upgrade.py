"""An upgrade from the previous version's database (the migrations main had before this one),
with data in it, to head, as `manage.py migrate` does it: the platform's periodic tasks that
the old install lacked come back, a token made without an owner is shown refused, and users
keep their roles. And the move of API tokens from scheduling/ to access/ keeps every token and
every link to one."""

import pytest
from django.contrib.auth import get_user_model
from django.contrib.auth.models import Group
from django.core.management import call_command
from django.db import connection
from django.db.migrations.executor import MigrationExecutor
from django.utils import timezone
from django_celery_beat.models import PeriodicTask

from access.auth import token_state
from access.models import ApiToken
from access.tokens import token_hash
from runs.beat import PERIODIC_TASKS
from runs.models import Run
from scheduling.models import FunctionVersion

# The newest migration of each app in the previous version.
PREVIOUS = [
    ("access", "0004_user_change"),
    ("alerts", "0002_late_long_and_skipped"),
    ("runs", "0006_run_active_by_function"),
    ("scheduling", "0004_version_alerts"),
]
# Tasks added after the install's data migration ran: an upgraded install never had them.
NEWER = ["chalkweb: alerts sweep", "chalkweb: prune old alert deliveries"]


# The newest migration of each app before API tokens moved from scheduling/ to access/.
BEFORE_TOKENS_MOVED = [
    ("access", "0006_backfill_action"),
    ("runs", "0009_backfill"),
    ("scheduling", "0005_version_timezone"),
]


def _migrated_to(migrations):
    for app, migration in migrations:
        call_command("migrate", app, migration, verbosity=0)
    try:
        yield MigrationExecutor(connection).loader.project_state(migrations).apps
    finally:
        call_command("migrate", verbosity=0)


@pytest.fixture
def previous_version(transactional_db):
    yield from _migrated_to(PREVIOUS)


@pytest.fixture
def before_tokens_moved(transactional_db):
    yield from _migrated_to(BEFORE_TOKENS_MOVED)


def test_an_upgrade_keeps_data_and_gets_what_the_old_install_lacked(previous_version):
    now = timezone.now()
    old = previous_version
    group, _ = old.get_model("auth", "Group").objects.get_or_create(name="operator")
    olivia = old.get_model("auth", "User").objects.create(username="olivia")
    olivia.groups.add(group)
    old.get_model("scheduling", "ApiToken").objects.create(
        name="legacy", token_hash="0" * 64, prefix="chalk_legac", created_at=now
    )  # made by `create_token NAME` before tokens had owners
    PeriodicTask.objects.filter(name__in=NEWER).delete()

    call_command("migrate", verbosity=0)

    assert set(PeriodicTask.objects.values_list("name", flat=True)) >= set(PERIODIC_TASKS)
    legacy = ApiToken.objects.select_related("created_by").get(name="legacy")
    assert token_state(legacy, now).word == "refused"
    assert Group.objects.get(name="operator").user_set.filter(username="olivia").exists()


def test_tokens_moved_to_access_keep_their_rows_and_links(before_tokens_moved, client):
    now = timezone.now()
    old = before_tokens_moved
    admin = old.get_model("auth", "Group").objects.get(name="admin")
    alice = old.get_model("auth", "User").objects.create(username="alice")
    alice.groups.add(admin)
    # The old install knew tokens as scheduling's, and gave staff the admin's view of them so.
    content_types = old.get_model("contenttypes", "ContentType").objects
    content_types.filter(app_label="access", model="apitoken").delete()
    token_type, _ = content_types.get_or_create(app_label="scheduling", model="apitoken")
    view, _ = old.get_model("auth", "Permission").objects.get_or_create(
        content_type=token_type, codename="view_apitoken", defaults={"name": "Can view API token"}
    )
    alice.user_permissions.add(view)
    plaintext = "chalk_made-before-the-move"
    token = old.get_model("scheduling", "ApiToken").objects.create(
        name="ci", token_hash=token_hash(plaintext), prefix=plaintext[:12], created_by=alice,
        scopes=["read", "deploy"], created_at=now,
    )  # fmt: skip
    image = old.get_model("scheduling", "Image").objects.create(
        spec={}, spec_hash="0" * 64, created_at=now
    )
    function = old.get_model("scheduling", "Function").objects.create(
        name="nightly", created_at=now, updated_at=now
    )
    function.current_version = old.get_model("scheduling", "FunctionVersion").objects.create(
        function=function, number=1, source="def job(): pass\n", source_filename="job.py",
        source_sha256="0" * 64, entrypoint="job", image=image, retries={}, content_hash="0" * 64,
        created_by="ci", created_by_token=token, created_at=now,
    )  # fmt: skip
    function.save()
    old.get_model("runs", "Run").objects.create(
        function=function, version=function.current_version, trigger="api", triggered_by="ci",
        triggered_by_token=token, scheduled_for=now, created_at=now,
    )  # fmt: skip

    call_command("migrate", verbosity=0)

    moved = ApiToken.objects.select_related("created_by").get(name="ci")
    assert (moved.pk, moved.created_by.username) == (token.pk, "alice")
    assert moved.scopes == ["read", "deploy"]
    assert token_state(moved, now).word == "active"
    assert FunctionVersion.objects.get().created_by_token == moved
    assert Run.objects.get().triggered_by_token == moved
    assert get_user_model().objects.get(username="alice").has_perm("access.view_apitoken")
    answer = client.get("/api/v1/functions", headers={"authorization": f"Bearer {plaintext}"})
    assert answer.status_code == 200
    assert [f["name"] for f in answer.json()["results"]] == ["nightly"]

"""An upgrade from the previous version's database (the migrations main had before this one),
with data in it, to head, as `manage.py migrate` does it: the platform's periodic tasks that
the old install lacked come back, a token made without an owner is shown refused, and users
keep their roles."""

import pytest
from django.contrib.auth.models import Group
from django.core.management import call_command
from django.db import connection
from django.db.migrations.executor import MigrationExecutor
from django.utils import timezone
from django_celery_beat.models import PeriodicTask

from runs.beat import PERIODIC_TASKS
from scheduling.auth import token_state
from scheduling.models import ApiToken

# The newest migration of each app in the previous version.
PREVIOUS = [
    ("access", "0004_user_change"),
    ("alerts", "0002_late_long_and_skipped"),
    ("runs", "0006_run_active_by_function"),
    ("scheduling", "0004_version_alerts"),
]
# Tasks added after the install's data migration ran: an upgraded install never had them.
NEWER = ["chalkweb: alerts sweep", "chalkweb: prune old alert deliveries"]


@pytest.fixture
def previous_version(transactional_db):
    for app, migration in PREVIOUS:
        call_command("migrate", app, migration, verbosity=0)
    try:
        yield MigrationExecutor(connection).loader.project_state(PREVIOUS).apps
    finally:
        call_command("migrate", verbosity=0)


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

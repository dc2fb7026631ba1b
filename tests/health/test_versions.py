"""/readyz and the Platform page say which workers and beats run another Chalkweb than the web
(never a reason to be unready), and a web whose code is older than the database is unready and
says how to mend it."""

import pytest
from django.db import connection
from django.utils import timezone

from chalkcompute.version import VERSION
from runs import heartbeats
from tests.health.test_health import fresh_heartbeats


@pytest.mark.django_db
def test_readyz_and_the_platform_page_name_processes_of_another_version(client, console):
    fresh_heartbeats()
    assert client.get("/readyz").json()["versions"] == {"this": VERSION, "others": []}
    now = timezone.now()
    heartbeats.record(
        [
            ("runs-worker", "runs@host-b", {"queues": ["chalk-runs"], "version": "0.0.9"}, 1),
            ("beat-process", "beat@host-c", {"version": "99.0.0"}, 1),
            ("control-worker", "control@host-d", {"queues": ["chalk-control"]}, 1),
        ],
        now=now,
    )

    response = client.get("/readyz")

    assert response.status_code == 200, response.json()
    said = [
        f"control@host-d runs an older Chalkweb (its heartbeat names no version) beside {VERSION}"
        ": upgrade or stop it",
        f"runs@host-b runs Chalkweb 0.0.9 beside {VERSION}: upgrade or stop it",
        f"beat@host-c runs Chalkweb 99.0.0, newer than this web's {VERSION}: upgrade this web's "
        "machine",
    ]
    assert response.json()["versions"] == {"this": VERSION, "others": said}
    page = console.get("/platform").content.decode()
    assert f"This web runs Chalkweb {VERSION}." in page
    for sentence in said:
        assert sentence.replace("'", "&#x27;") in page, sentence


@pytest.mark.django_db
def test_a_web_older_than_its_database_is_unready_and_says_why(client):
    fresh_heartbeats()
    with connection.cursor() as cursor:  # as a newer Chalkweb's migrate leaves it
        cursor.execute(
            "INSERT INTO django_migrations (app, name, applied) VALUES (%s, %s, %s)",
            ["alerts", "0999_newer", timezone.now()],
        )

    response = client.get("/readyz")

    assert response.status_code == 503
    assert response.json()["checks"]["migrations"] == {
        "ok": False,
        "newer": ["alerts.0999_newer"],
        "error": f"this machine's Chalkweb {VERSION} is older than its database: a newer "
        "Chalkweb applied 1 migration(s) this code does not know (alerts.0999_newer); upgrade "
        "this machine's Chalkweb (git pull && make install) and start it again",
    }


@pytest.mark.django_db
def test_only_chalkweb_s_own_migrations_tell_a_newer_chalkweb(client):
    # A third-party package may drop migrations it squashed: their rows stay, and must not make
    # the newest Chalkweb refuse its own database.
    fresh_heartbeats()
    with connection.cursor() as cursor:
        cursor.execute(
            "INSERT INTO django_migrations (app, name, applied) VALUES (%s, %s, %s)",
            ["django_celery_beat", "0001_dropped_by_a_later_release", timezone.now()],
        )

    assert client.get("/readyz").json()["checks"]["migrations"] == {"ok": True}

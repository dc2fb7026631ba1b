"""What every test shares: the lanes' markers, given from the fixtures a test uses (so a new
test that starts workers or a browser cannot slip into `make test-fast`), PostgreSQL-only
tests skipped on SQLite; the fixtures tests of several folders use (the pinned clock, real
workers, olivia and her console); and a test that empties the database at its end (live
server, real workers) hands over to that flush only once no other session is half-way through
a transaction, a flush that deadlocks with one that began meanwhile is done again, and on
PostgreSQL the flush deletes rows rather than truncating tables (tests/database.py)."""

import datetime as dt

import pytest
import time_machine
from django.contrib.auth import get_user_model
from django.contrib.auth.models import Group
from django.db import OperationalError, connection
from django.db.backends.postgresql.operations import DatabaseOperations as PostgresOperations
from django.test import Client, TransactionTestCase

from chalkweb.celery import purge_queues
from tests.database import delete_flush_sql, settle_database
from tests.personas import OLIVIA_PASSWORD
from tests.runs.support import Platform
from tests.support import NOW

_flush = TransactionTestCase._fixture_teardown


def _settled_flush(self) -> None:
    settle_database()
    try:
        _flush(self)
    except OperationalError as exc:
        if "deadlock" not in str(exc):
            raise
        # A request of the live server began after the settle, and PostgreSQL chose the
        # flush as the deadlock's victim: its transaction rolled back, so it runs again.
        settle_database(patience=0)
        _flush(self)


TransactionTestCase._fixture_teardown = _settled_flush
PostgresOperations.sql_flush = delete_flush_sql


# The fixtures that take a test out of the fast lane, and the marker each gives it.
MARKER_OF_FIXTURE = {"platform": "workers", "chromium": "browser"}
POSTGRES_ONLY = "needs PostgreSQL's row locks (DATABASE_URL=postgres://...); {} serialises writers"


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    for item in items:
        for fixture, marker in MARKER_OF_FIXTURE.items():
            if fixture in getattr(item, "fixturenames", ()):
                item.add_marker(marker)
        if item.get_closest_marker("postgres") and connection.vendor != "postgresql":
            item.add_marker(pytest.mark.skip(reason=POSTGRES_ONLY.format(connection.vendor)))


@pytest.fixture
def clock_start() -> dt.datetime:
    """Where `clock` pins time: NOW, unless a module or a test overrides this fixture."""
    return NOW


@pytest.fixture
def clock(clock_start):
    """Time stands still at `clock_start`; the test moves it on (move_to, shift)."""
    with time_machine.travel(clock_start, tick=False) as traveller:
        yield traveller


@pytest.fixture
def platform(live_server, transactional_db, tmp_path):
    """Chalkweb's real processes for one test (tests/runs/support.py), on the live server."""
    purge_queues()  # no message of an earlier test reaches this one's workers
    platform = Platform(live_server.url, tmp_path)
    yield platform
    platform.stop()


@pytest.fixture
def olivia(db):
    """olivia runs the platform (the admin role)."""
    olivia = get_user_model().objects.create_user("olivia", password=OLIVIA_PASSWORD)
    olivia.groups.add(Group.objects.get(name="admin"))
    return olivia


@pytest.fixture
def console(olivia) -> Client:
    """olivia's logged-in browser session, as the Django test client."""
    client = Client()
    client.force_login(olivia)
    return client


@pytest.fixture(autouse=True)
def fast_password_hashing(settings):
    # The default hasher takes a third of a second by design; tests log in many times.
    settings.PASSWORD_HASHERS = ["django.contrib.auth.hashers.MD5PasswordHasher"]

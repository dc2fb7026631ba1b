"""What every test shares: the lanes' markers, given from the fixtures a test uses (so a new
test that starts workers or a browser cannot slip into `make test-fast`), PostgreSQL-only
tests skipped on SQLite; and a test that empties the database at its end (live server, real
workers) hands over to that flush only once no other session is half-way through a
transaction, and a flush that deadlocks with one that began meanwhile is done again."""

import pytest
from django.db import OperationalError, connection
from django.db.backends.postgresql.operations import DatabaseOperations as PostgresOperations
from django.test import TransactionTestCase

from tests.database import delete_flush_sql, settle_database

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

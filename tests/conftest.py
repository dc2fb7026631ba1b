"""What every test shares: a test that empties the database at its end (live server, real
workers) hands over to that flush only once no other session is half-way through a
transaction, and a flush that deadlocks with one that began meanwhile is done again."""

from django.db import OperationalError
from django.test import TransactionTestCase

from tests.database import settle_database

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

"""What every test shares: before a test that empties the database at its end (live server,
real workers) hands over to that flush, the database has no transaction left half-done."""

import pytest

from tests.database import settle_database


@pytest.hookimpl(wrapper=True)
def pytest_runtest_teardown(item, nextitem):
    marker = item.get_closest_marker("django_db")
    flushes = {"transactional_db", "live_server"} & set(item.fixturenames) or (
        marker is not None and marker.kwargs.get("transaction")
    )
    if flushes:
        settle_database()
    return (yield)

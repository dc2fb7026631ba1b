"""The test database between tests."""

import time

from django.db import connection


def settle_database(timeout: float = 10, patience: float = 2) -> None:
    """Waits until no other PostgreSQL session on the test database is in the middle of a
    statement or a transaction, so that the flush that ends a transactional test (TRUNCATE of
    every table) cannot deadlock with one. Such sessions are a request the live server is still
    answering, or a killed worker's: a killed worker's session that waits on a lock, or sits in
    an open transaction, never notices its client died, so after `patience` seconds those left
    are terminated (the test is over). Idle sessions hold no locks and may stay."""
    if connection.vendor != "postgresql":
        return
    busy = (
        "FROM pg_stat_activity WHERE datname = current_database()"
        " AND backend_type = 'client backend' AND pid <> pg_backend_pid() AND state <> 'idle'"
    )
    started = time.monotonic()
    with connection.cursor() as cursor:
        while time.monotonic() < started + timeout:
            cursor.execute(f"SELECT count(*) {busy}")
            if not cursor.fetchone()[0]:
                return
            if time.monotonic() > started + patience:
                cursor.execute(f"SELECT pg_terminate_backend(pid) {busy}")
            time.sleep(0.05)

"""The test database between tests."""

import time

from django.db import connection
from django.db.backends.postgresql.operations import DatabaseOperations as PostgresOperations


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


_truncate = PostgresOperations.sql_flush


def delete_flush_sql(self, style, tables, *, reset_sequences=False, allow_cascade=False):
    """The flush that ends a transactional test, as one DELETE per table in one transaction:
    on tables of a few rows that takes milliseconds, where PostgreSQL's TRUNCATE makes (and
    syncs to disk) new files for every table and index, a third of a second each time. The
    foreign keys are deferred (Django makes them so), so the order of the tables is free."""
    if reset_sequences or allow_cascade:
        return _truncate(
            self, style, tables, reset_sequences=reset_sequences, allow_cascade=allow_cascade
        )
    deletes = [f"{style.SQL_KEYWORD('DELETE FROM')} {self.quote_name(t)};" for t in tables]
    return ["SET CONSTRAINTS ALL DEFERRED;", *deletes] if tables else []

"""Heartbeats of the platform's own processes (runs.models.Heartbeat): one cheap statement
each, an INSERT the first time and an UPDATE after (INSERT ... ON CONFLICT, PostgreSQL and
SQLite alike). Health (health/) reads them for /readyz, /metrics and the console."""

import datetime as dt
import json

from django.db import connection

from runs.models import Heartbeat

TABLE = Heartbeat._meta.db_table


def record(beats: list[tuple[str, str, dict | None, int]], *, now: dt.datetime) -> None:
    """Each beat is (component, name, detail, count to add to the row's count)."""
    if not beats:
        return
    rows, params = [], []
    for component, name, detail, count in beats:
        rows.append("(%s, %s, %s, %s, %s)")
        params += [component, name, now, count, json.dumps(detail or {})]
    with connection.cursor() as cursor:
        cursor.execute(
            f"INSERT INTO {TABLE} (component, name, seen_at, count, detail) "
            f"VALUES {', '.join(rows)} "
            "ON CONFLICT (component, name) DO UPDATE SET seen_at = EXCLUDED.seen_at, "
            f"count = {TABLE}.count + EXCLUDED.count, detail = EXCLUDED.detail",
            params,
        )

"""A nightly rollup at 02:00 UTC: sums yesterday's events into a daily table.

The events come from a small SQLite file this job creates on its first run, standing in for
your warehouse. Deploy it with `python examples/nightly_rollup.py`.
"""

import chalkcompute
from chalk import chalk_logger

WAREHOUSE = "/tmp/chalkweb-warehouse.sqlite3"


@chalkcompute.function(schedule="0 2 * * *", retries=2, timeout=600)  # nightly at 02:00 UTC
def nightly_rollup() -> None:
    import datetime as dt
    import random
    import sqlite3

    yesterday = (dt.datetime.now(dt.UTC) - dt.timedelta(days=1)).date().isoformat()
    with sqlite3.connect(WAREHOUSE) as db:
        db.execute("CREATE TABLE IF NOT EXISTS events (day TEXT, amount REAL)")
        db.execute("CREATE TABLE IF NOT EXISTS daily (day TEXT PRIMARY KEY, total REAL, n INT)")
        if not db.execute("SELECT 1 FROM events WHERE day = ?", (yesterday,)).fetchone():
            db.executemany(
                "INSERT INTO events VALUES (?, ?)",
                [(yesterday, round(random.uniform(1, 100), 2)) for _ in range(1000)],
            )
        total, count = db.execute(
            "SELECT SUM(amount), COUNT(*) FROM events WHERE day = ?", (yesterday,)
        ).fetchone()
        db.execute("INSERT OR REPLACE INTO daily VALUES (?, ?, ?)", (yesterday, total, count))
    chalk_logger.info("rolled up %d events for %s: total %.2f", count, yesterday, total)

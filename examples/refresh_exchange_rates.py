"""Refreshes a table of exchange rates every hour.

The seed's example with its network call swapped for a local source: the "API" answers from
the RATES_RESPONSE document below, and the rates go into a SQLite file standing in for your
store. Deploy it with:

    export EXCHANGE_API_KEY=demo-key
    python examples/refresh_exchange_rates.py
"""

import chalkcompute
from chalk import chalk_logger

image = chalkcompute.Image.debian_slim().run_commands(
    "pip install requests",
)

RATES_RESPONSE = {"base": "USD", "rates": {"EUR": 0.92, "GBP": 0.79, "JPY": 151.3, "CHF": 0.88}}
STORE = "/tmp/chalkweb-exchange-rates.sqlite3"


def fetch_rates(api_key: str) -> dict:
    """Stands in for requests.get("https://api.example.com/v1/rates", ...).json()."""
    import requests  # installed by the image: proves the image's packages are there

    assert requests.__version__
    if not api_key:
        raise PermissionError("the rates API refused an empty key")
    return RATES_RESPONSE


@chalkcompute.function(
    name="refresh-exchange-rates",
    schedule="0 * * * *",  # every hour, on the hour
    image=image,
    secrets=[chalkcompute.Secret.from_env("EXCHANGE_API_KEY")],
    cpu="1",
    memory="1Gi",
    retries=3,
)
def refresh_exchange_rates() -> None:
    import os
    import sqlite3

    chalk_logger.info("refresh started")
    rates = fetch_rates(os.environ["EXCHANGE_API_KEY"])["rates"]
    with sqlite3.connect(STORE) as db:
        db.execute("CREATE TABLE IF NOT EXISTS rates (currency TEXT PRIMARY KEY, rate REAL)")
        db.executemany("INSERT OR REPLACE INTO rates VALUES (?, ?)", rates.items())
    chalk_logger.info("refreshed %s rates", len(rates))

"""Personas and data for the console tests.

olivia runs the platform (the admin role): the console is hers (her fixtures, `olivia` and
`console`, are tests/conftest.py's). oscar has a login but no role (an outsider: 403
everywhere). An anonymous visitor is sent to the login page. Functions are
deployed through scheduling.services and runs go through runs.services, as the platform
itself writes them; the browser tests deploy through the SDK and run real workers.
"""

import pytest
from django.contrib.auth import get_user_model
from django.test import Client

from scheduling.models import Function
from tests.runs.support import deploy


@pytest.fixture
def oscar(db):
    return get_user_model().objects.create_user("oscar", password="oscar-outsider-7")


@pytest.fixture
def outsider(oscar) -> Client:
    client = Client()
    client.force_login(oscar)
    return client


@pytest.fixture
def anonymous(db) -> Client:
    return Client()


@pytest.fixture
def rates(db) -> Function:
    """refresh-rates: hourly, 1 CPU, 1 GiB, 3 retries, a 10-minute timeout."""
    return deploy(
        "refresh-rates",
        'chalk_logger.info("refreshing")',
        schedule="0 * * * *",
        retries=3,
        timeout=600,
        memory="1Gi",
    )

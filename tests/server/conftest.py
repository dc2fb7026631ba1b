"""Personas and clients for the REST API tests.

alice deploys with her API token "alice-laptop"; an anonymous client has no token at all.
Tests that use the `clock` fixture (tests/conftest.py) pin time at tests/support.py's NOW
(2026-11-28 23:30 UTC) unless they travel on.
"""

import pytest
from django.contrib.auth import get_user_model
from rest_framework.test import APIClient

from access.tokens import token_create
from tests.personas import PLATFORM, person
from tests.server.support import PUBLIC_URL
from tests.support import NOW


@pytest.fixture(autouse=True)
def public_url(settings):
    settings.CHALK_PUBLIC_URL = PUBLIC_URL


@pytest.fixture
def alice(db):
    return person("alice", role="deployer")


@pytest.fixture
def alice_token(alice):
    """(token, plaintext) of alice's laptop token."""
    return token_create(name="alice-laptop", user=alice, actor=PLATFORM, now=NOW)


@pytest.fixture
def api(alice_token):
    client = APIClient()
    client.credentials(HTTP_AUTHORIZATION=f"Bearer {alice_token[1]}")
    return client


@pytest.fixture
def anonymous(db):
    return APIClient()


@pytest.fixture
def olivia(db):
    """An operator with the admin."""
    return get_user_model().objects.create_superuser("olivia", "olivia@example.com", None)


@pytest.fixture
def admin_client_olivia(client, olivia):
    client.force_login(olivia)
    return client

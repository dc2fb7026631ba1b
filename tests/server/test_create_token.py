"""`python manage.py create_token NAME --user USERNAME` prints a token that works, once, and
that does no more than its owner's role allows."""

import io
import re

import pytest
from django.core.management import CommandError, call_command
from rest_framework.test import APIClient

from access.models import ApiToken
from tests.personas import person


def test_it_prints_a_token_that_works(db):
    person("alice", role="deployer")
    out = io.StringIO()

    call_command("create_token", "ci", "--user", "alice", stdout=out)

    printed = out.getvalue()
    token = re.search(r"export CHALK_COMPUTE_TOKEN=(chalk_\S+)", printed).group(1)
    assert printed.startswith(
        "Created API token 'ci' of alice (scopes: read, run, deploy, secrets). It is shown only "
        "now; copy it:"
    )
    client = APIClient()
    client.credentials(HTTP_AUTHORIZATION=f"Bearer {token}")
    assert client.get("/api/v1/functions").status_code == 200
    assert ApiToken.objects.get().name == "ci"


def test_it_refuses_an_empty_token_name(db):
    person("alice")
    with pytest.raises(CommandError, match="a token name is 1 to 100 characters"):
        call_command("create_token", "  ", "--user", "alice", stdout=io.StringIO())
    assert not ApiToken.objects.exists()


def test_it_refuses_a_scope_beyond_the_owners_role(db):
    person("victor", role="viewer")
    with pytest.raises(CommandError, match="victor may not give a token the scope.s. deploy"):
        call_command(
            *("create_token", "ci", "--user", "victor", "--scopes", "read,deploy"),
            stdout=io.StringIO(),
        )
    assert not ApiToken.objects.exists()


def test_it_needs_the_owner(db):
    with pytest.raises(CommandError, match="--user"):
        call_command("create_token", "ci", stdout=io.StringIO())

"""`python manage.py create_token NAME` prints a token that works, once."""

import io
import re

import pytest
from django.core.management import CommandError, call_command
from rest_framework.test import APIClient

from scheduling.models import ApiToken


def test_it_prints_a_token_that_works(db):
    out = io.StringIO()

    call_command("create_token", "ci", stdout=out)

    printed = out.getvalue()
    token = re.search(r"export CHALK_COMPUTE_TOKEN=(chalk_\S+)", printed).group(1)
    assert printed.startswith("Created API token 'ci'. It is shown only now; copy it:")
    client = APIClient()
    client.credentials(HTTP_AUTHORIZATION=f"Bearer {token}")
    assert client.get("/api/v1/functions").status_code == 200
    assert ApiToken.objects.get().name == "ci"


def test_it_refuses_an_empty_token_name(db):
    with pytest.raises(CommandError, match="a token name is 1 to 100 characters"):
        call_command("create_token", "  ", stdout=io.StringIO())
    assert not ApiToken.objects.exists()

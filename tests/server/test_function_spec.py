"""The server's side of FunctionSpec: the deploy body rebuilds it, a version stores it in its
columns and gives it back, and the content hash of equal content never changes."""

import pytest

from chalkcompute import FunctionSpec, InvalidSpecError
from scheduling.models import Function, FunctionVersion
from scheduling.services import content_hash, secret_set
from scheduling.versions import version_document
from tests.personas import PLATFORM
from tests.server.support import RATES_SOURCE, deploy_body, rates_document
from tests.support import NOW

URL = "/api/v1/functions/refresh-rates"
CODE = ("source", "source_filename", "entrypoint")
pytestmark = pytest.mark.usefixtures("clock")


def spec_of(body: dict) -> FunctionSpec:
    return FunctionSpec.from_dict({k: v for k, v in body.items() if k not in CODE})


def test_a_version_gives_back_the_spec_it_was_deployed_with(api):
    secret_set(name="B_KEY", value="b", now=NOW, actor=PLATFORM)
    secret_set(name="A_KEY", value="a", now=NOW, actor=PLATFORM)
    body = deploy_body(secrets=["B_KEY", "A_KEY"], gpu="nvidia-l4:2", overlap="allow", retries=2)

    api.put(URL, body, format="json")

    version = Function.objects.get().current_version
    assert version.spec == spec_of(body)
    assert version.spec_document == spec_of(body).as_dict()
    assert (version.secret_names, version.cron) == (["A_KEY", "B_KEY"], "0 * * * *")


def test_the_content_hash_is_what_it_was_before_function_spec():
    # Computed with the formula of the versions stored until then, so a redeploy of one of
    # them is still "unchanged".
    body = deploy_body(secrets=["B_KEY", "A_KEY"], gpu="nvidia-l4:2", timeout=600)

    hashed = content_hash(**{k: body[k] for k in CODE}, spec=spec_of(body))

    assert hashed == "a197890a7ed09587680eacaf5711991ed13d4338152295a3309084b3aa027110"


def test_equal_content_sent_differently_is_unchanged(api):
    api.put(URL, deploy_body(), format="json")

    response = api.put(
        URL,
        deploy_body(retries=3, timeout=600.0, image={"steps": [{"pip_install": ["requests"]}]}),
        format="json",
    )

    assert response.json()["deploy"] == "unchanged"
    assert FunctionVersion.objects.count() == 1


def test_the_function_document_keeps_its_fields_in_their_order(api):
    response = api.put(URL, deploy_body(), format="json")

    assert list(response.json()) == [*rates_document(), "deploy", "warnings"]


def test_a_version_a_later_rule_refuses_still_shows_in_the_diff(api):
    api.put(URL, deploy_body(), format="json")
    FunctionVersion.objects.update(schedule="61 * * * *", cron="61 * * * *")
    version = FunctionVersion.objects.get()

    assert version_document(version)[0] == "schedule:   61 * * * *"
    with pytest.raises(InvalidSpecError, match="minute field"):
        version.spec  # noqa: B018 - a rollback to it is checked like a deploy


def test_the_version_document_shows_every_spec_field(api):
    api.put(URL, deploy_body(), format="json")

    lines = version_document(FunctionVersion.objects.get())

    assert lines[: len(FunctionSpec.field_names()) + 2] == [
        "schedule:   0 * * * *",
        "timezone:   UTC",
        'image:      {"base": "debian_slim", "python_version": "3.11", "steps": '
        '[{"pip_install": ["requests"]}]}',
        "cpu:        1",
        "memory:     1Gi",
        "gpu:        none",
        'retries:    {"backoff_coefficient": 2.0, "initial_delay": 1.0, "max_delay": 60.0, '
        '"max_retries": 3}',
        "timeout:    600 s",
        "overlap:    skip",
        "secrets:    none",
        "env:        none",
        "tags:       none",
        "alerts:     the server's defaults",
        "entrypoint: refresh_rates in refresh_rates.py",
        "",
    ]
    assert lines[15:] == RATES_SOURCE.splitlines()


def test_the_deploy_body_schema_is_the_code_and_the_spec(client):
    schema = client.get("/api/schema/?format=json").json()["components"]["schemas"]
    body = schema["DeployInput"]

    assert list(body["properties"]) == [*CODE, "files", *FunctionSpec.field_names()]
    assert body["additionalProperties"] is False
    assert body["required"] == ["entrypoint", "source"]
    retries = body["properties"]["retries"]["oneOf"][1]["properties"]
    assert retries["backoff_coefficient"] == {"type": "number", "minimum": 1, "maximum": 10}
    assert body["properties"]["image"]["additionalProperties"] is False
    assert body["properties"]["secrets"]["items"]["pattern"] == "^[A-Za-z_][A-Za-z0-9_]*$"

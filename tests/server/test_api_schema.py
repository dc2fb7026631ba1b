"""The OpenAPI schema and its browsable reference (public, served offline), and a bounded
schemathesis run with every check: the schema must declare every rule the server enforces."""

import json
import re
import subprocess
import sys
from pathlib import Path

import pytest

from tests.personas import make_token

# Every operation of /api/schema/ (the runner API is not in it), every check: a request the
# schema allows must be accepted, one it forbids refused with a 4xx, and every answer must match
# its declared status, content type, headers and schema. Bounded (25 examples an operation in
# fuzzing, plus the coverage phase's boundary cases) and derandomized: the same ~1,070 requests
# on every run, 25-40 s on 2 cores.
SCHEMATHESIS_CONFIG = """
seed = 20261128
workers = 1
request-timeout = 10

[generation]
max-examples = 25
deterministic = true
database = "none"

[checks]
enabled = true

[phases]
examples.enabled = true
coverage.enabled = true
fuzzing.enabled = true
stateful.enabled = false

# A deploy body the schema allows may still be refused for what no schema can say (the
# operation's description says it): a secret name that is not stored on this server, a name
# in both env and secrets, max_delay shorter than initial_delay. Env and tag names follow
# the schema's propertyNames. Every invalid body must still be refused.
[[operations]]
include-operation-id = "functions_deploy"
checks.positive_data_acceptance.enabled = false

# A backfill's range must end at or before now, start at or before its end and hold between one
# and CHALK_BACKFILL_MAX_SLOTS slots of a function that has a schedule: no schema says so.
# Every invalid body must still be refused.
[[operations]]
include-operation-id = "functions_backfill"
checks.positive_data_acceptance.enabled = false

# A channel's URL must be one apprise accepts (or an http(s) URL for a webhook), and its
# functions must exist: no schema says so. Every invalid body must still be refused.
[[operations]]
include-operation-id = "channels_create"
checks.positive_data_acceptance.enabled = false
"""


def test_it_serves_the_openapi_schema_without_a_token(client):
    response = client.get("/api/schema/?format=json")

    assert response.status_code == 200
    schema = response.json()
    assert schema["openapi"].startswith("3.")
    assert {"/api/v1/functions/{name}", "/api/v1/secrets/{name}"} <= set(schema["paths"])
    assert schema["components"]["securitySchemes"] == {
        "bearerAuth": {"type": "http", "scheme": "bearer"}
    }
    deploy = schema["paths"]["/api/v1/functions/{name}"]["put"]
    assert set(deploy["responses"]) == {"200", "201", "400", "401", "404", "413"}


def test_the_schema_states_the_rules_on_env_and_tag_names(client):
    schema = client.get("/api/schema/?format=json").json()

    assert schema["openapi"] == "3.1.0"  # propertyNames is JSON Schema's, not OpenAPI 3.0's
    assert '"nullable"' not in json.dumps(schema)  # 3.0's spelling, written as 3.1's
    deploy = schema["components"]["schemas"]["DeployInput"]["properties"]
    env_names, tag_names = deploy["env"]["propertyNames"], deploy["tags"]["propertyNames"]
    assert env_names["maxLength"] == 128
    for name, env_ok, tag_ok in [
        ("EXCHANGE_API_KEY", True, True),
        ("team", True, True),
        ("kubernetes.io/team", False, True),
        ("2FA", False, True),
        ("-team", False, False),
        ("\x9céêèÐ", False, False),
    ]:
        assert bool(re.search(env_names["pattern"], name)) is env_ok, name
        assert bool(re.search(tag_names["pattern"], name)) is tag_ok, name


def test_operations_say_the_rules_no_schema_can_state(client):
    paths = client.get("/api/schema/?format=json").json()["paths"]

    channels = paths["/api/v1/channels"]["post"]["description"]
    assert "the URL must be one Apprise accepts" in channels
    deploy = paths["/api/v1/functions/{name}"]["put"]["description"]
    assert "must be stored on this server" in deploy


def test_it_serves_the_api_reference_offline(client):
    response = client.get("/api/docs/")

    assert response.status_code == 200
    html = response.content.decode()
    assert "/static/drf_spectacular_sidecar/swagger-ui-dist/swagger-ui-bundle.js" in html
    assert "https://" not in html  # no CDN: the reference works without internet access


@pytest.mark.slow
def test_it_declares_every_rule_it_enforces_under_schemathesis(live_server, tmp_path: Path):
    _, token = make_token("schemathesis")
    config = tmp_path / "schemathesis.toml"
    config.write_text(SCHEMATHESIS_CONFIG)

    result = subprocess.run(
        [
            Path(sys.executable).with_name("schemathesis"),
            "--config-file",
            str(config),
            "run",
            f"{live_server.url}/api/schema/?format=json",
            "--url",
            live_server.url,
            "--header",
            f"Authorization: Bearer {token}",
            # Django's test server answers a kept-alive connection ~40 ms late (Nagle and
            # delayed ACKs): a connection per request makes the run 2-3 times faster.
            "--header",
            "Connection: close",
            "--report-dir",
            str(tmp_path),
        ],
        cwd=tmp_path,  # schemathesis keeps a cache in its working directory
        capture_output=True,
        text=True,
        timeout=120,
    )

    assert result.returncode == 0, result.stdout[-12000:] + result.stderr[-2000:]

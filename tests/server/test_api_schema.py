"""The OpenAPI schema and its browsable reference (public, served offline), and a bounded
schemathesis run that must find no server error."""

import subprocess
import sys
from pathlib import Path

import pytest

from scheduling.services import token_create

# Our endpoints only: other apps' endpoints are fuzzed by their own tests.
OUR_PATHS = r"^/api/v1/(functions|secrets)(/\{name\}(/(pause|resume))?)?$"


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


def test_it_serves_the_api_reference_offline(client):
    response = client.get("/api/docs/")

    assert response.status_code == 200
    html = response.content.decode()
    assert "/static/drf_spectacular_sidecar/swagger-ui-dist/swagger-ui-bundle.js" in html
    assert "https://" not in html  # no CDN: the reference works without internet access


@pytest.mark.slow
def test_it_finds_no_server_error_under_schemathesis(live_server, tmp_path: Path):
    _, token = token_create(name="schemathesis")

    result = subprocess.run(
        [
            Path(sys.executable).with_name("schemathesis"),
            "run",
            f"{live_server.url}/api/schema/?format=json",
            "--url",
            live_server.url,
            "--header",
            f"Authorization: Bearer {token}",
            "--checks",
            "not_a_server_error",
            "--include-path-regex",
            OUR_PATHS,
            "--phases",
            "examples,coverage,fuzzing",
            "--max-examples",
            "25",
            "--workers",
            "1",
            "--request-timeout",
            "10",
            "--seed",
            "20261128",
            "--report-dir",
            str(tmp_path),
        ],
        cwd=tmp_path,  # schemathesis keeps a cache in its working directory
        capture_output=True,
        text=True,
        timeout=120,
    )

    assert result.returncode == 0, result.stdout[-6000:] + result.stderr[-2000:]

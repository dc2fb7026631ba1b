"""Query parameters and small bodies the schema declares, refused by the server as declared: a
400 in the one error format that says what to send instead, never a silent default or a 500."""

import pytest

from runs.models import RunStatus
from scheduling.models import Function
from tests.server.support import deploy_body

FUNCTION = "/api/v1/functions/refresh-rates"
pytestmark = pytest.mark.usefixtures("clock")


@pytest.fixture
def rates(api):
    """refresh-rates, deployed at NOW by alice."""
    api.put(FUNCTION, deploy_body(), format="json")
    return Function.objects.get(name="refresh-rates")


@pytest.fixture
def run_id(api, rates) -> int:
    return api.post(f"{FUNCTION}/trigger", format="json").json()["id"]


def bad_parameter(name: str, value: str, *, minimum: int, maximum: int, default: int) -> dict:
    return {
        "error": "invalid_parameter",
        "detail": f"{name} must be a whole number from {minimum} to {maximum}, not {value!r}; "
        f"leave it out for {default}",
    }


@pytest.mark.parametrize("url", ["/api/v1/functions", "/api/v1/secrets", "/api/v1/runs"])
@pytest.mark.parametrize("value", ["-1", "0", "1001", "ten", "", "null", "1.5"])
def test_it_refuses_a_page_size_out_of_range(api, url, value):
    response = api.get(url, {"limit": value})

    assert response.status_code == 400
    assert response.json() == bad_parameter("limit", value, minimum=1, maximum=1000, default=100)


@pytest.mark.parametrize("url", ["/api/v1/functions", "/api/v1/secrets", "/api/v1/runs"])
@pytest.mark.parametrize("value", ["null", "-1", "", "x", "9223372036854775808"])
def test_it_refuses_an_offset_that_is_not_a_whole_number(api, url, value):
    response = api.get(url, {"offset": value})

    assert response.status_code == 400
    assert response.json() == bad_parameter(
        "offset", value, minimum=0, maximum=2**63 - 1, default=0
    )


def test_it_shortens_a_long_refused_value_in_the_message(api):
    response = api.get("/api/v1/functions", {"offset": "9" * 5000})

    assert response.status_code == 400
    assert response.json()["detail"].startswith(
        f"offset must be a whole number from 0 to {2**63 - 1}, not '{'9' * 40}'…; "
    )


def test_it_pages_with_the_largest_limit_and_offset(api, rates):
    response = api.get("/api/v1/functions", {"limit": "1000", "offset": str(2**63 - 1)})

    assert response.status_code == 200
    assert (response.json()["count"], response.json()["results"]) == (1, [])


def test_it_refuses_an_empty_function_filter(api):
    response = api.get("/api/v1/runs?function=")

    assert response.status_code == 400
    assert response.json() == {
        "error": "invalid_function",
        "detail": "function is empty; give a function's name, e.g. ?function=refresh-rates, or "
        "leave the parameter out to list every function's runs",
    }


def test_it_filters_runs_by_function(api, run_id):
    response = api.get("/api/v1/runs", {"function": "refresh-rates", "status": "queued"})

    assert response.status_code == 200
    assert [run["id"] for run in response.json()["results"]] == [run_id]


@pytest.mark.parametrize(
    ("name", "value", "minimum", "maximum", "default"),
    [
        ("limit", "0", 1, 5000, 5000),
        ("limit", "5001", 1, 5000, 5000),
        ("limit", "-96", 1, 5000, 5000),
        ("after", "-1", 0, 2**63 - 1, 0),
        ("after", "null", 0, 2**63 - 1, 0),
    ],
)
def test_it_refuses_a_log_parameter_out_of_range(
    api, run_id, name, value, minimum, maximum, default
):
    response = api.get(f"/api/v1/runs/{run_id}/logs", {name: value})

    assert response.status_code == 400
    assert response.json() == bad_parameter(
        name, value, minimum=minimum, maximum=maximum, default=default
    )


def test_it_reads_logs_with_the_largest_parameters(api, run_id):
    response = api.get(f"/api/v1/runs/{run_id}/logs", {"limit": "5000", "after": str(2**63 - 1)})

    assert response.status_code == 200
    assert (response.json()["results"], response.json()["next_after"]) == ([], 2**63 - 1)


def test_it_refuses_a_pause_reason_longer_than_500_characters_before_trimming(api, rates):
    response = api.post(f"{FUNCTION}/pause", {"reason": " " * 501}, format="json")

    assert response.status_code == 400
    assert response.json() == {
        "error": "invalid_reason",
        "detail": "reason: Ensure this field has no more than 500 characters.",
    }


def test_it_refuses_a_nul_character_in_a_pause_reason(api, rates):
    response = api.post(f"{FUNCTION}/pause", {"reason": "vendor\x00outage"}, format="json")

    assert response.status_code == 400
    assert response.json() == {
        "error": "invalid_request",
        "detail": "reason holds a NUL character (\\u0000)",
    }


def test_it_refuses_an_unknown_field_when_storing_a_secret(api):
    response = api.put(
        "/api/v1/secrets/EXCHANGE_API_KEY", {"value": "s3cr3t", "ttl": 60}, format="json"
    )

    assert response.status_code == 400
    assert response.json()["error"] == "unknown_field"


def test_it_answers_a_json_406_to_a_client_that_does_not_accept_json(api):
    response = api.get("/api/v1/functions", HTTP_ACCEPT="text/html")

    assert response.status_code == 406
    assert response.json() == {
        "error": "not_acceptable",
        "detail": "this API answers only application/json; send Accept: application/json",
    }


def schema_of(client) -> dict:
    return client.get("/api/schema/?format=json").json()


def parameter(operation: dict, name: str) -> dict:
    return next(p["schema"] for p in operation["parameters"] if p["name"] == name)


def test_the_schema_declares_the_bounds_of_every_query_parameter(client):
    paths = schema_of(client)["paths"]

    for path in ("/api/v1/functions", "/api/v1/secrets", "/api/v1/runs"):
        operation = paths[path]["get"]
        assert parameter(operation, "limit") == {
            "type": "integer",
            "minimum": 1,
            "maximum": 1000,
            "default": 100,
        }
        assert parameter(operation, "offset") == {
            "type": "integer",
            "minimum": 0,
            "maximum": 2**63 - 1,
            "default": 0,
        }
    runs = paths["/api/v1/runs"]["get"]
    assert parameter(runs, "function") == {
        "type": "string",
        "minLength": 1,
        "maxLength": 255,  # its name, or its Python name
        "pattern": "^(?:[a-z0-9](?:[-a-z0-9]{0,61}[a-z0-9])?|[A-Za-z_][A-Za-z0-9_]{0,254})$",
    }
    assert parameter(runs, "status")["enum"] == sorted(RunStatus.values)
    logs = paths["/api/v1/runs/{run_id}/logs"]["get"]
    assert parameter(logs, "limit") == {
        "type": "integer",
        "minimum": 1,
        "maximum": 5000,
        "default": 5000,
    }
    trigger = paths["/api/v1/functions/{name}/trigger"]["post"]
    assert parameter(trigger, "name")["pattern"] == parameter(runs, "function")["pattern"]
    deploy = paths["/api/v1/functions/{name}"]["put"]  # a deploy takes the name only
    assert parameter(deploy, "name")["pattern"] == "^[a-z0-9]([-a-z0-9]*[a-z0-9])?$"


def test_the_schema_declares_the_bodies_the_server_reads(client):
    components = schema_of(client)["components"]["schemas"]

    assert components["PauseInput"] == {
        "type": "object",
        "properties": {
            "reason": {
                "type": "string",
                "default": "",
                "maxLength": 500,
                "pattern": "^[^\\u0000]*$",
            }
        },
        "additionalProperties": False,
    }
    value = components["SecretInput"]["properties"]["value"]
    assert (value["minLength"], value["maxLength"], value["pattern"]) == (
        1,
        65536,
        "^[^\\u0000]*$",
    )
    assert components["SecretInput"]["additionalProperties"] is False


def test_the_schema_declares_every_error_status(client):
    paths = schema_of(client)["paths"]

    def statuses(path: str, method: str) -> set[str]:
        return set(paths[path][method]["responses"])

    assert statuses("/api/v1/functions", "get") == {"200", "400", "401", "403", "406"}
    assert statuses("/api/v1/secrets/{name}", "put") == {
        "200",
        "201",
        "400",
        "401",
        "403",
        "406",
        "413",
        "415",
    }
    assert statuses("/api/v1/secrets/{name}", "delete") == {
        "204",
        "400",
        "401",
        "403",
        "404",
        "406",
        "409",
    }
    assert statuses("/api/v1/functions/{name}/trigger", "post") == {
        "201",
        "400",
        "401",
        "403",
        "404",
        "406",
        "409",
        "413",
        "415",
    }
    assert statuses("/api/v1/functions/{name}/pause", "post") == {
        "200",
        "400",
        "401",
        "403",
        "404",
        "406",
        "413",
        "415",
    }
    assert not any(path.startswith("/api/runner/") for path in paths)

"""Bad deploys: each is a 400 (or 413) whose message says what to fix, and writes nothing."""

import pytest

from tests.server.support import deploy_body, row_counts

URL = "/api/v1/functions/refresh-rates"


@pytest.fixture
def unchanged_rows(db, alice_token):
    """Asserts, after the test, that no row was added, changed in number or removed."""
    before = row_counts()
    yield
    assert row_counts() == before


pytestmark = pytest.mark.usefixtures("clock", "unchanged_rows")


def deploy(api, url=URL, **overrides):
    return api.put(url, deploy_body(**overrides), format="json")


def test_it_rejects_a_crontab_value_out_of_range(api):
    response = deploy(api, schedule="61 * * * *")

    assert response.status_code == 400
    body = response.json()
    assert body["error"] == "invalid_schedule"
    assert body["detail"].startswith('schedule: invalid schedule "61 * * * *": minute field "61"')


def test_it_rejects_a_crontab_with_six_fields(api):
    response = deploy(api, schedule="0 0 * * * *")

    assert response.status_code == 400
    assert response.json() == {
        "error": "invalid_schedule",
        "detail": 'schedule: invalid schedule "0 0 * * * *": a crontab has exactly five fields: '
        "minute hour day-of-month month day-of-week, but this has 6; seconds and years are not "
        "supported",
    }


def test_it_rejects_a_compound_shorthand(api):
    response = deploy(api, schedule="1h30m")

    assert response.status_code == 400
    assert response.json()["error"] == "invalid_schedule"
    assert "compound durations" in response.json()["detail"]
    assert "write a crontab instead" in response.json()["detail"]


def test_it_rejects_a_shorthand_longer_than_its_unit_allows(api):
    response = deploy(api, schedule="90m")

    assert response.status_code == 400
    assert "90 minutes is longer than 60 minutes" in response.json()["detail"]


def test_it_rejects_a_schedule_that_is_not_a_string(api):
    response = deploy(api, schedule=5)

    assert response.status_code == 400
    assert response.json() == {
        "error": "invalid_schedule",
        "detail": 'schedule: must be a crontab such as "0 * * * *", a shorthand such as "10m", '
        "or null for a function that runs only on demand",
    }


def test_it_rejects_an_invalid_function_name_in_the_url(api):
    response = deploy(api, url="/api/v1/functions/Refresh_Rates")

    assert response.status_code == 400
    assert response.json() == {
        "error": "invalid_name",
        "detail": "function name 'Refresh_Rates' is not a DNS label: use lowercase letters, "
        "digits and '-', starting and ending with a letter or digit, e.g. "
        '"refresh-exchange-rates"',
    }


def test_it_rejects_a_function_name_longer_than_a_dns_label(api):
    response = deploy(api, url=f"/api/v1/functions/{'a' * 64}")

    assert response.status_code == 400
    assert "is 64 characters; use at most 63" in response.json()["detail"]


def test_it_rejects_a_bad_cpu(api):
    response = deploy(api, cpu="lots")

    assert response.status_code == 400
    assert response.json() == {
        "error": "invalid_cpu",
        "detail": "cpu: cpu 'lots' is not a Kubernetes quantity: write a number with an optional "
        'suffix, e.g. "1", "0.5", "500m" for cpu or "512Mi", "1Gi" for memory',
    }


def test_it_rejects_memory_in_millibytes(api):
    response = deploy(api, memory="512m")

    assert response.status_code == 400
    assert response.json() == {
        "error": "invalid_memory",
        "detail": "memory: memory '512m' means milli-bytes; did you mean 512Mi (mebibytes)?",
    }


def test_it_rejects_an_unknown_gpu_type_listing_the_known_ones(api):
    response = deploy(api, gpu="nvidia-rtx4090")

    assert response.status_code == 400
    assert response.json() == {
        "error": "invalid_gpu",
        "detail": "gpu: gpu 'nvidia-rtx4090' is not a known type; known types: nvidia-t4, "
        "nvidia-l4, nvidia-a10g, nvidia-l40s, nvidia-a100, nvidia-a100-80gb, nvidia-h100 "
        '(add a count as "nvidia-l4:2")',
    }


def test_it_rejects_an_unknown_field(api):
    body = deploy_body()
    body["shedule"] = body.pop("schedule")

    response = api.put(URL, body, format="json")

    assert response.status_code == 400
    assert response.json() == {
        "error": "unknown_field",
        "detail": "unknown field 'shedule'; this endpoint accepts source, source_filename, "
        "entrypoint, files, schedule, timezone, image, secrets, cpu, memory, gpu, retries, "
        "timeout, overlap, env, tags, alerts. Check the spelling, or upgrade the server if your "
        "SDK is newer",
    }


def test_it_rejects_an_unknown_secret_naming_it(api):
    response = deploy(api, secrets=["EXCHANGE_API_KEY"])

    assert response.status_code == 400
    assert response.json() == {
        "error": "unknown_secret",
        "detail": "secret EXCHANGE_API_KEY is not stored on this server. Upload it with "
        "Secret.from_env('EXCHANGE_API_KEY') in your script (it sends your local "
        "$EXCHANGE_API_KEY), or PUT /api/v1/secrets/EXCHANGE_API_KEY first",
    }


def test_it_rejects_an_invalid_secret_name(api):
    response = deploy(api, secrets=["exchange-api-key"])

    assert response.status_code == 400
    assert response.json()["error"] == "invalid_secrets"
    assert response.json()["detail"].startswith(
        "secrets[0]: secret name 'exchange-api-key' must be usable as an environment variable"
    )


def test_it_rejects_an_oversized_source_with_413(api, settings):
    settings.CHALK_MAX_SOURCE_BYTES = 2000
    source = "# padding\n" * 200 + "def refresh_rates():\n    pass\n"

    response = deploy(api, source=source)

    assert response.status_code == 413
    assert response.json() == {
        "error": "source_too_large",
        "detail": f"source is {len(source)} bytes; the limit is 2000 bytes "
        "(CHALK_MAX_SOURCE_BYTES on the server). Keep data out of the module: read it at run "
        "time from your store, or raise the limit",
    }


def test_it_rejects_a_request_body_over_the_bound_with_413(api, settings):
    settings.CHALK_MAX_SOURCE_BYTES = 1000  # bounds the body at 4 x 1000 + 2 x 2000 + 64 KiB
    settings.CHALK_MAX_FILES_BYTES = 2000

    response = deploy(api, source="#" * 74_000)

    assert response.status_code == 413
    assert response.json() == {
        "error": "request_too_large",
        "detail": "the request body is larger than 73536 bytes, the most this server accepts "
        "(4 x CHALK_MAX_SOURCE_BYTES + 2 x CHALK_MAX_FILES_BYTES + 64 KiB)",
    }


def test_it_rejects_a_field_of_the_wrong_json_type(api):
    response = deploy(api, source=123)

    assert response.status_code == 400
    assert response.json() == {
        "error": "invalid_source",
        "detail": "source: must be a string, not a number",
    }


def test_it_rejects_malformed_json(api):
    response = api.generic("PUT", URL, '{"source": "x",', content_type="application/json")

    assert response.status_code == 400
    assert response.json() == {
        "error": "malformed_json",
        "detail": "the request body is not valid JSON (JSON parse error - Expecting property "
        "name enclosed in double quotes: line 1 column 16 (char 15)); send a JSON object with "
        "the header Content-Type: application/json",
    }


def test_it_rejects_a_body_that_is_not_a_json_object(api):
    response = api.put(URL, ["source", "entrypoint"], format="json")

    assert response.status_code == 400
    assert response.json() == {
        "error": "invalid_request",
        "detail": "the request body must be a JSON object with the fields source, "
        "source_filename, entrypoint, files, schedule, timezone, image, secrets, cpu, memory, "
        "gpu, retries, timeout, overlap, env, tags, alerts; it is a list",
    }


def test_it_rejects_a_body_that_is_not_json(api):
    response = api.generic("PUT", URL, "source=x", content_type="application/x-www-form-urlencoded")

    assert response.status_code == 415
    assert response.json() == {
        "error": "unsupported_media_type",
        "detail": "the request body's Content-Type is application/x-www-form-urlencoded; send a "
        "JSON object with the header Content-Type: application/json",
    }


def test_it_rejects_a_body_without_a_content_type(api):
    response = api.generic("PUT", URL, b'{"source": "x"}', content_type="")

    assert response.status_code == 415
    assert response.json() == {
        "error": "unsupported_media_type",
        "detail": "the request body's Content-Type is none; send a JSON object with the header "
        "Content-Type: application/json",
    }


def test_it_lists_every_missing_required_field(api):
    response = api.put(URL, {}, format="json")

    assert response.status_code == 400
    assert response.json() == {
        "error": "invalid_request",
        "detail": "source: is required: the text of the module (the .py file); entrypoint: is "
        "required: the name of the function in the source",
        "fields": {
            "source": ["is required: the text of the module (the .py file)"],
            "entrypoint": ["is required: the name of the function in the source"],
        },
    }


def test_it_rejects_bad_retries(api):
    response = deploy(api, retries={"max_retries": 3, "backoff_coefficient": 0.5})

    assert response.status_code == 400
    assert response.json() == {
        "error": "invalid_retries",
        "detail": "retries: backoff_coefficient must be from 1.0 to 10.0, not 0.5",
    }


def test_it_rejects_retries_that_are_not_a_whole_number(api):
    response = deploy(api, retries=2.5)

    assert response.status_code == 400
    assert response.json() == {
        "error": "invalid_retries",
        "detail": "retries: retries must be a whole number >= 0 or chalkcompute.Retries(...), "
        "not 2.5",
    }


def test_it_rejects_a_timeout_longer_than_seven_days(api):
    response = deploy(api, timeout=8 * 24 * 3600)

    assert response.status_code == 400
    assert response.json() == {
        "error": "invalid_timeout",
        "detail": "timeout: must be more than 0 and at most 604800 seconds (7 days), not 691200",
    }


def test_it_rejects_a_timeout_that_is_not_a_number(api):
    response = deploy(api, timeout="10m")

    assert response.status_code == 400
    assert response.json() == {
        "error": "invalid_timeout",
        "detail": "timeout: must be a number of seconds, e.g. 600, not '10m'",
    }


def test_it_rejects_an_unknown_overlap_policy(api):
    response = deploy(api, overlap="queue")

    assert response.status_code == 400
    assert response.json() == {
        "error": "invalid_overlap",
        "detail": 'overlap: must be "skip" (the default: a slot is skipped while the previous '
        "run is still running) or \"allow\", not 'queue'",
    }


def test_it_rejects_a_bad_image_spec(api):
    response = deploy(api, image={"base": "debian_slim", "python_version": "2.7", "steps": []})

    assert response.status_code == 400
    assert response.json() == {
        "error": "invalid_image",
        "detail": "image: python_version '2.7' is not supported; use one of 3.10, 3.11, 3.12, "
        "3.13, 3.14",
    }


def test_it_rejects_an_image_step_of_unknown_kind(api):
    response = deploy(api, image={"python_version": "3.11", "steps": [{"conda_install": ["x"]}]})

    assert response.status_code == 400
    assert response.json() == {
        "error": "invalid_image",
        "detail": "image: image step 'conda_install' is unknown; use one of run_commands, "
        "pip_install, apt_install, env",
    }


def test_it_rejects_an_entrypoint_that_is_not_an_identifier(api):
    response = deploy(api, entrypoint="refresh-rates")

    assert response.status_code == 400
    assert response.json() == {
        "error": "invalid_entrypoint",
        "detail": "entrypoint: 'refresh-rates' is not a Python function name; give the name of "
        "a function defined at the top level of the source, e.g. refresh_exchange_rates",
    }


def test_it_rejects_a_source_filename_with_a_folder(api):
    response = deploy(api, source_filename="jobs/refresh_rates.py")

    assert response.status_code == 400
    assert response.json() == {
        "error": "invalid_source_filename",
        "detail": "source_filename: 'jobs/refresh_rates.py' must be a file name ending in .py, "
        'without a folder, e.g. "job.py"',
    }


def test_it_rejects_a_nul_character_anywhere_in_the_body(api):
    response = deploy(api, image={"python_version": "3.11", "steps": [{"pip_install": ["a\x00"]}]})

    assert response.status_code == 400
    assert response.json() == {
        "error": "invalid_request",
        "detail": "image.steps[0].pip_install[0] holds a NUL character (\\u0000)",
    }


def test_it_rejects_a_secret_listed_twice(api):
    response = deploy(api, secrets=["API_KEY", "API_KEY"])

    assert response.status_code == 400
    assert response.json() == {
        "error": "invalid_secrets",
        "detail": "secrets: API_KEY is listed twice",
    }


@pytest.mark.parametrize(
    ("alerts", "detail"),
    [
        ({"late_after": "5m"}, "alerts: late_after must be a number of seconds in JSON"),
        ({"on_failure": "ops"}, "alerts: on_failure must be a list of channel names"),
        ({"late_after": 10**400}, "alerts: late_after must be from 10s to 7d, or 0 for never"),
        ({"after_failures": "3"}, "alerts: after_failures must be a whole number from 1 to 100"),
        ({"on_failure": ["x" * 101]}, "alerts: on_failure holds"),
        ({"channels": ["ops"]}, "alerts: alerts has no field channels; the fields are on_failure"),
        (["ops"], "alerts: alerts must be a chalkcompute.Alerts(...)"),
    ],
)
def test_it_rejects_wrong_alerts_saying_what_is_right(api, alerts, detail):
    response = deploy(api, alerts=alerts)

    assert response.status_code == 400
    assert response.json()["error"] == "invalid_alerts"
    assert response.json()["detail"].startswith(detail)


def test_it_rejects_a_variable_set_in_env_and_in_secrets(api):
    response = deploy(api, secrets=["API_KEY"], env={"API_KEY": "plain"})

    assert response.status_code == 400
    assert response.json() == {
        "error": "invalid_env",
        "detail": "env: API_KEY is set in env and in secrets",
    }

"""The REST API's side of Chalk parity: shipped files (stored, hashed into the version, capped,
refused when malformed), env with secrets, tags and the tag filter, and a function found by its
Python name."""

import base64
import hashlib

import pytest

from scheduling.models import Function, VersionFile
from scheduling.services import secret_set
from tests.personas import PLATFORM
from tests.server.support import deploy_body
from tests.support import NOW

URL = "/api/v1/functions/refresh-rates"
pytestmark = pytest.mark.usefixtures("clock")


def shipped(path: str, content: bytes) -> dict:
    return {"path": path, "content_base64": base64.b64encode(content).decode()}


def test_it_stores_shipped_files_and_lists_them_without_content(api):
    body = deploy_body(files=[shipped("helpers/rates.py", b"RATE = 1\n")])

    response = api.put(URL, body, format="json")

    assert response.status_code == 201
    assert response.json()["files"] == [
        {"path": "helpers/rates.py", "size": 9, "sha256": hashlib.sha256(b"RATE = 1\n").hexdigest()}
    ]
    assert bytes(VersionFile.objects.get().content) == b"RATE = 1\n"


def test_a_changed_file_is_a_new_version_and_the_same_files_are_unchanged(api):
    api.put(URL, deploy_body(files=[shipped("helpers.py", b"A = 1\n")]), format="json")

    same = api.put(URL, deploy_body(files=[shipped("helpers.py", b"A = 1\n")]), format="json")
    changed = api.put(URL, deploy_body(files=[shipped("helpers.py", b"A = 2\n")]), format="json")

    assert (same.json()["deploy"], changed.json()["deploy"]) == ("unchanged", "updated")
    assert changed.json()["version"] == 2


def test_it_refuses_files_past_the_cap_with_400_naming_the_setting(api, settings):
    settings.CHALK_MAX_FILES_BYTES = 10

    response = api.put(URL, deploy_body(files=[shipped("data.bin", b"x" * 11)]), format="json")

    assert response.status_code == 400
    assert response.json() == {
        "error": "invalid_files",
        "detail": "the shipped files are 11 bytes; the limit is 10 bytes (CHALK_MAX_FILES_BYTES "
        "on the server). Ship code, not data: leave large files out (add_local_dir "
        "exclude=[...]) and read them from your store at run time",
    }
    assert not Function.objects.exists()


@pytest.mark.parametrize(
    ("files", "detail"),
    [
        ("x", 'files: must be a list of {"path": "helpers/rates.py", "content_base64": "..."}'),
        ([{"path": "a.py"}], 'files: item 0 must be {"path": "...", "content_base64": "..."}'),
        ([{"path": "a.py", "content_base64": "%%"}], "files: item 0 ('a.py'): content_base64"),
        ([shipped("../a.py", b"")], "file path '../a.py' must be relative"),
        ([shipped("/etc/a", b"")], "file path '/etc/a' must be relative"),
        ([shipped("refresh_rates.py", b"")], "file refresh_rates.py is the module itself"),
        ([shipped("a.py", b""), shipped("a.py", b"")], "files: 'a.py' is listed twice"),
    ],
)
def test_it_refuses_malformed_files_with_400(api, files, detail):
    response = api.put(URL, deploy_body(files=files), format="json")

    assert response.status_code == 400
    assert response.json()["detail"].startswith(detail), response.json()
    assert not Function.objects.exists()


def test_env_secrets_must_be_stored_and_keep_their_values_out_of_the_document(api):
    env = {"MODE": "prod", "TOKEN": {"secret": "API_TOKEN"}}

    missing = api.put(URL, deploy_body(env=env), format="json")
    secret_set(name="API_TOKEN", value="tok-value", actor=PLATFORM, now=NOW)
    stored = api.put(URL, deploy_body(env=env), format="json")

    assert missing.status_code == 400
    assert missing.json()["error"] == "unknown_secret"
    assert stored.status_code == 201
    assert stored.json()["env"] == env
    assert "tok-value" not in stored.content.decode()


def test_it_finds_a_function_by_its_python_name(api):
    api.put(URL, deploy_body(), format="json")

    by_derived = api.get("/api/v1/functions/refresh_rates")
    triggered = api.post("/api/v1/functions/refresh_rates/trigger")

    assert (by_derived.status_code, by_derived.json()["name"]) == (200, "refresh-rates")
    assert (triggered.status_code, triggered.json()["function"]) == (201, "refresh-rates")
    assert api.get("/api/v1/functions/no_such_job").status_code == 404


def test_it_filters_functions_by_tag(api):
    api.put(URL, deploy_body(tags={"team": "data"}), format="json")
    api.put("/api/v1/functions/other", deploy_body(tags={"team": "web"}), format="json")
    api.put("/api/v1/functions/untagged", deploy_body(), format="json")

    def names(query: str) -> list[str]:
        return [f["name"] for f in api.get(f"/api/v1/functions{query}").json()["results"]]

    assert names("?tag=team:data") == ["refresh-rates"]
    assert names("?tag=team") == ["other", "refresh-rates"]
    assert names("?tag=team:data&tag=team:web") == []
    bad = api.get("/api/v1/functions?tag=has space:x")
    assert bad.status_code == 400
    assert bad.json()["error"] == "invalid_tag"

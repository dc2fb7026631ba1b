"""/simple/: the SDK's PEP 503 index. Public (it is only the SDK), serves `chalkweb-sdk` and
nothing else, and its links carry the wheel's sha256."""

import hashlib
import re

import pytest

from sdk.distribution import wheel

pytestmark = pytest.mark.django_db
PROJECT = "/simple/chalkweb-sdk/"


def test_it_lists_the_sdk_on_the_root_page_without_a_login(client):
    response = client.get("/simple/")

    assert response.status_code == 200
    assert response["Content-Type"] == "text/html; charset=utf-8"
    assert re.findall(r'<a href="([^"]*)">([^<]*)</a>', response.content.decode()) == [
        ("chalkweb-sdk/", "chalkweb-sdk")
    ]


def test_it_links_the_wheel_with_its_sha256_and_python_requirement(client):
    response = client.get(PROJECT)

    assert response.status_code == 200
    links = re.findall(
        r'<a href="([^"#]+)#sha256=([0-9a-f]{64})" data-requires-python="([^"]+)">([^<]+)</a>',
        response.content.decode(),
    )
    assert links == [(wheel().filename, wheel().sha256, "&gt;=3.11", wheel().filename)]


def test_it_serves_the_wheel_its_link_names(client):
    response = client.get(PROJECT + wheel().filename)

    assert response.status_code == 200
    assert response["Content-Type"] == "application/octet-stream"
    assert hashlib.sha256(response.content).hexdigest() == wheel().sha256


def test_it_redirects_a_name_that_is_not_in_normal_form(client):
    response = client.get("/simple/Chalkweb_SDK/")

    assert response.status_code == 301
    assert response["Location"] == "../chalkweb-sdk/"


@pytest.mark.parametrize("name", ["chalkcompute", "requests", "chalkweb-sdk-extra"])
def test_it_serves_no_other_project_and_says_which_to_install(client, name):
    response = client.get(f"/simple/{name}/")

    assert response.status_code == 404
    assert "serves only chalkweb-sdk" in response.content.decode()


def test_it_answers_404_for_a_file_it_does_not_have(client):
    for path in (PROJECT + "chalkweb_sdk-9.9.9-py3-none-any.whl", "/simple/chalkcompute/x.whl"):
        assert client.get(path).status_code == 404, path


def test_it_refuses_to_change_anything(client):
    for path in ("/simple/", PROJECT, PROJECT + wheel().filename):
        assert client.post(path).status_code == 405, path

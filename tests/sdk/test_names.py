"""Every name rule matches the whole string: a name with a trailing newline (which `$` alone
lets through) is refused with the rule's own message, by the SDK and by the API with a 400,
and is never stored as a twin of the name without it."""

import pytest
from rest_framework.test import APIClient

from chalkcompute.image import Image, InvalidImageError
from chalkcompute.names import InvalidNameError, check_function_name, check_secret_name
from chalkcompute.secret import Secret as SecretRef
from scheduling.models import Function, Secret
from tests.personas import make_token
from tests.server.support import deploy_body

NOT_A_DNS_LABEL = "is not a DNS label: use lowercase letters, digits and '-'"
NOT_AN_ENV_NAME = "must be usable as an environment variable"
TAILS = ["\n", "\r\n", "\nrm", " ", "\t", "\x00"]


@pytest.mark.parametrize("tail", TAILS, ids=repr)
def test_a_function_name_with_a_trailing_character_is_refused(tail):
    with pytest.raises(InvalidNameError, match=NOT_A_DNS_LABEL):
        check_function_name("leak" + tail)


@pytest.mark.parametrize("tail", TAILS, ids=repr)
def test_a_secret_name_with_a_trailing_character_is_refused(tail):
    with pytest.raises(InvalidNameError, match=NOT_AN_ENV_NAME):
        check_secret_name("PLAIN" + tail)
    with pytest.raises(InvalidNameError, match=NOT_AN_ENV_NAME):
        SecretRef.from_name("PLAIN" + tail)


def test_the_names_without_the_newline_are_accepted():
    assert check_function_name("leak") == "leak"
    assert check_secret_name("PLAIN") == "PLAIN"


@pytest.mark.parametrize("package", ["curl\n", "curl\nrm", "libpq-dev=15.*\n"], ids=repr)
def test_an_apt_package_with_a_newline_is_refused(package):
    with pytest.raises(InvalidImageError, match="is not a Debian package name"):
        Image.debian_slim().apt_install(package)


@pytest.mark.parametrize("package", ["bubblewrap-", "curl=7.88-", "-y", "--purge"], ids=repr)
def test_an_apt_package_that_apt_would_read_as_removal_or_an_option_is_refused(package):
    with pytest.raises(InvalidImageError, match="is not a Debian package name"):
        Image.debian_slim().apt_install(package)


def test_a_trailing_dash_is_explained_and_real_names_pass():
    with pytest.raises(InvalidImageError, match='a trailing "-" tells apt to remove it'):
        Image.debian_slim().apt_install("bubblewrap-")
    assert Image.debian_slim().apt_install("g++", "libpq-dev=15.*", "python3.11").spec


def test_an_image_env_key_with_a_newline_is_refused():
    with pytest.raises(InvalidImageError, match="is not an environment variable name"):
        Image.debian_slim().env({"PLAIN\n": "x"})


# --- the API ------------------------------------------------------------------------------


@pytest.fixture
def api(db):
    _, token = make_token("names-tests")
    client = APIClient()
    client.credentials(HTTP_AUTHORIZATION=f"Bearer {token}")
    return client


def test_the_api_refuses_a_secret_name_with_a_newline_and_stores_no_twin(api):
    assert api.put("/api/v1/secrets/PLAIN", {"value": "one"}, format="json").status_code == 201

    response = api.put("/api/v1/secrets/PLAIN%0A", {"value": "two"}, format="json")

    assert response.status_code == 400
    assert response.json() == {
        "error": "invalid_name",
        "detail": "secret name 'PLAIN\\n' must be usable as an environment variable: letters, "
        "digits and '_', not starting with a digit, at most 128 characters, e.g. "
        '"EXCHANGE_API_KEY"',
    }
    assert list(Secret.objects.values_list("name", flat=True)) == ["PLAIN"]
    assert api.get("/api/v1/secrets/PLAIN%0A").status_code == 400
    assert api.delete("/api/v1/secrets/PLAIN%0A").status_code == 400


def test_the_api_refuses_a_function_name_with_a_newline_and_stores_no_twin(api):
    response = api.put("/api/v1/functions/leak%0A", deploy_body(), format="json")

    assert response.status_code == 400
    assert response.json() == {
        "error": "invalid_name",
        "detail": "function name 'leak\\n' is not a DNS label: use lowercase letters, digits "
        "and '-', starting and ending with a letter or digit, e.g. \"refresh-exchange-rates\"",
    }
    assert not Function.objects.exists()


@pytest.mark.parametrize(
    "overrides, error, fragment",
    [
        ({"secrets": ["PLAIN\n"]}, "invalid_secrets", f"secret name 'PLAIN\\n' {NOT_AN_ENV_NAME}"),
        (
            {"image": {"steps": [{"apt_install": ["curl\n"]}]}},
            "invalid_image",
            "package 'curl\\n' is not a Debian package name",
        ),
        (
            {"image": {"steps": [{"apt_install": ["bubblewrap-"]}]}},
            "invalid_image",
            "package 'bubblewrap-' is not a Debian package name",
        ),
        (
            {"image": {"steps": [{"env": {"PLAIN\n": "x"}}]}},
            "invalid_image",
            "name 'PLAIN\\n' is not an environment variable name",
        ),
    ],
    ids=["secret-name", "apt-package", "apt-removal", "image-env-key"],
)
def test_the_api_refuses_a_deploy_naming_something_with_a_newline(api, overrides, error, fragment):
    response = api.put("/api/v1/functions/leak", deploy_body(**overrides), format="json")

    assert response.status_code == 400
    assert response.json()["error"] == error
    assert fragment in response.json()["detail"]
    assert not Function.objects.exists()

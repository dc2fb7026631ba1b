"""The "Deploy from your machine" box: the README's lines with this server's public URL, on the
Deploy page (always in the menu) and on the functions page while there is no function."""

import html as html_module
import re

import pytest

from tests.readme_deploy import deploy_blocks
from tests.runs.support import deploy

PUBLIC_URL = "https://chalk.acme.test"


@pytest.fixture(autouse=True)
def public_url(settings):
    settings.CHALK_PUBLIC_URL = PUBLIC_URL + "/"


def _blocks(page: str) -> dict[str, str]:
    return {
        name: html_module.unescape(text)
        for name, text in re.findall(r'<pre id="deploy-([a-z-]+)">(.*?)</pre>', page, re.S)
    }


def test_it_shows_the_readmes_lines_with_the_servers_public_url(console):
    response = console.get("/deploy")

    assert response.status_code == 200
    assert _blocks(response.content.decode()) == deploy_blocks(PUBLIC_URL)
    assert 'url = "https://chalk.acme.test/simple/"' in deploy_blocks(PUBLIC_URL)["uv-index"]


def test_its_lines_pin_the_index_and_never_add_one(console):
    blocks = _blocks(console.get("/deploy").content.decode())

    assert "explicit = true" in blocks["uv-index"]
    assert 'chalkweb-sdk = { index = "chalkweb" }' in blocks["uv-index"]
    assert "--index-url https://chalk.acme.test/simple/ chalkweb-sdk" in blocks["pip-commands"]
    assert "extra-index" not in "".join(blocks.values())
    assert not re.search(r"install [^\n]*\bchalkcompute\b", "".join(blocks.values()))


def test_it_is_in_the_menu_of_every_page(console):
    page = console.get("/runs").content.decode()

    assert '<a href="/deploy">Deploy</a>' in page


def test_the_functions_page_shows_it_while_there_is_no_function(console):
    assert _blocks(console.get("/").content.decode()) == deploy_blocks(PUBLIC_URL)
    deploy("refresh-rates", "pass", schedule="1h")

    assert _blocks(console.get("/").content.decode()) == {}


def test_it_sends_an_anonymous_visitor_to_log_in(client, db):
    response = client.get("/deploy")

    assert response.status_code == 302
    assert response["Location"] == "/login/?next=/deploy"

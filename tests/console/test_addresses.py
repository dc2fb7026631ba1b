"""Addresses people type: a trailing slash leads to the page, and a missing page says so in
words."""

import pytest


@pytest.mark.parametrize(
    ("typed", "page"),
    [
        ("/runs/", "/runs"),
        ("/runs/?status=failed", "/runs?status=failed"),
        ("/functions/refresh-rates/", "/functions/refresh-rates"),
        ("/secrets/", "/secrets"),
        ("/tokens/", "/tokens"),
    ],
)
def test_it_redirects_an_address_with_a_trailing_slash_to_its_page(console, rates, typed, page):
    response = console.get(typed)

    assert response.status_code == 302
    assert response["Location"] == page
    assert console.get(response["Location"]).status_code == 200


def test_it_says_in_words_that_an_unknown_address_has_no_page(console):
    response = console.get("/nothing-here")

    assert response.status_code == 404
    page = response.content.decode()
    assert "There is nothing at this address." in page
    assert "Resolver404" not in page


def test_it_says_which_run_does_not_exist(console):
    response = console.get("/runs/999999")

    assert response.status_code == 404
    assert "No run 999999" in response.content.decode()

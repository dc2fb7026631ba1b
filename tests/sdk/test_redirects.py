"""The SDK, the CLI and the runner never send Authorization to another origin after a redirect:
a redirect within the server's origin is followed, one to another origin is refused with a
message that says which address to use. Two real local HTTP servers: one redirects, the other
(another origin: another port) records the headers of what reaches it."""

import json
import os
import subprocess
import sys
import threading
import urllib.request
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest

from chalkcompute.client import Client, CrossOriginRedirectError, origin
from tests.runs.runner_harness import REPO, RunnerApiServer, attempt_spec, run_runner

TOKEN = "api-token-for-tests"


class Server:
    """A local HTTP server: every request is recorded with its headers; a path in `redirects`
    is answered with that (status, location), any other with a JSON page of no functions."""

    def __init__(self) -> None:
        self.requests: list[tuple[str, str, dict]] = []
        self.redirects: dict[str, tuple[int, str]] = {}
        server = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args) -> None:
                pass

            def _handle(self) -> None:
                self.rfile.read(int(self.headers.get("Content-Length") or 0))
                server.requests.append((self.command, self.path, dict(self.headers)))
                path = self.path.split("?")[0]
                if path in server.redirects:
                    status, location = server.redirects[path]
                    self.send_response(status)
                    self.send_header("Location", location)
                    self.send_header("Content-Length", "0")
                    self.end_headers()
                    return
                data = json.dumps({"results": [], "next": None}).encode()
                self.send_response(200)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

            do_GET = do_POST = do_PUT = do_HEAD = _handle

        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        threading.Thread(target=self.httpd.serve_forever, args=(0.05,), daemon=True).start()

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.httpd.server_address[1]}"

    def close(self) -> None:
        self.httpd.shutdown()
        self.httpd.server_close()


@pytest.fixture
def redirector():
    server = Server()
    yield server
    server.close()


@pytest.fixture
def elsewhere():
    server = Server()
    yield server
    server.close()


FUNCTIONS = "/api/v1/functions"


def test_urllib_alone_sends_authorization_to_the_origin_it_is_redirected_to(redirector, elsewhere):
    """Why the handler exists: CPython's HTTPRedirectHandler.redirect_request keeps every
    header but Content-Length and Content-Type."""
    redirector.redirects[FUNCTIONS] = (302, elsewhere.url + "/stolen")
    request = urllib.request.Request(
        redirector.url + FUNCTIONS, headers={"Authorization": f"Bearer {TOKEN}"}
    )
    urllib.request.urlopen(request, timeout=10).read()

    assert elsewhere.requests[0][2]["Authorization"] == f"Bearer {TOKEN}"


@pytest.mark.parametrize("status", [301, 302, 303, 307, 308])
def test_the_sdk_refuses_a_redirect_to_another_origin(redirector, elsewhere, status):
    redirector.redirects["/api/v1/functions"] = (status, elsewhere.url + "/api/v1/functions")

    with pytest.raises(CrossOriginRedirectError) as refused:
        Client(url=redirector.url, token=TOKEN).list_functions()

    assert elsewhere.requests == []
    assert str(refused.value) == (
        f"{redirector.url}/api/v1/functions?limit=1000 answered HTTP {status} with a redirect "
        f"to {elsewhere.url}, another origin; requests carrying a token are not sent there. "
        f"Use the server's own address: if {elsewhere.url} is it, set "
        f"CHALK_COMPUTE_URL={elsewhere.url}."
    )


def test_the_sdk_refuses_a_redirect_to_another_scheme_on_the_same_host(redirector):
    host_and_port = redirector.url.removeprefix("http://")
    redirector.redirects["/api/v1/functions"] = (301, f"https://{host_and_port}/api/v1/functions")

    with pytest.raises(CrossOriginRedirectError, match=f"to https://{host_and_port}, another"):
        Client(url=redirector.url, token=TOKEN).list_functions()


def test_the_sdk_follows_a_redirect_within_the_origin_with_its_token(redirector):
    redirector.redirects["/api/v1/functions"] = (307, "/api/v2/functions")

    assert Client(url=redirector.url, token=TOKEN).list_functions() == []

    (_, first, _), (_, second, headers) = redirector.requests
    assert (first, second) == ("/api/v1/functions?limit=1000", "/api/v2/functions")
    assert headers["Authorization"] == f"Bearer {TOKEN}"


@pytest.mark.parametrize(
    "url, expected",
    [
        ("http://Example.com/x", ("http", "example.com", 80)),
        ("http://example.com:80/x", ("http", "example.com", 80)),
        ("https://example.com/x", ("https", "example.com", 443)),
        ("http://example.com:8000", ("http", "example.com", 8000)),
        ("http://[::1]:8000/", ("http", "::1", 8000)),
        ("http://example.com:bad/", ("http", "example.com", -1)),
    ],
)
def test_an_origin_is_scheme_host_and_port(url, expected):
    assert origin(url) == expected


def test_the_cli_says_which_address_to_use_and_sends_the_token_nowhere_else(redirector, elsewhere):
    redirector.redirects["/api/v1/functions"] = (302, elsewhere.url + "/api/v1/functions")
    env = {**os.environ, "CHALK_COMPUTE_URL": redirector.url, "CHALK_COMPUTE_TOKEN": TOKEN}

    result = subprocess.run(
        [sys.executable, "-m", "chalkcompute.cli", "ls"],
        env=env,
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=60,
    )

    assert result.returncode == 1
    assert f"with a redirect to {elsewhere.url}, another origin" in result.stderr
    assert elsewhere.requests == []


def test_the_runner_fetches_no_attempt_from_another_origin(redirector):
    """The origin redirected to would answer with code to run: the runner does not ask it."""
    spec = attempt_spec('print("from elsewhere")')
    with RunnerApiServer(spec) as other:
        redirector.redirects["/api/runner/v1/attempt"] = (302, other.url + "/api/runner/v1/attempt")

        result = run_runner(spec, server=other, server_url=redirector.url, timeout=60)

    assert result.returncode == 3
    assert "cannot fetch the attempt: GET attempt: HTTP 302: a redirect to another origin" in (
        result.stderr
    )
    assert other.requests == [] and result.lines == []
    (_, path, headers), *_ = redirector.requests
    assert path == "/api/runner/v1/attempt" and headers["Authorization"].startswith("Bearer ")

"""A small client for the Chalkweb REST API. Standard library only: the SDK imports on laptops
and inside runs without Django or requests.

Settings come from the environment: CHALK_COMPUTE_URL (default http://127.0.0.1:8000) and
CHALK_COMPUTE_TOKEN. Every failure is a ChalkClientError whose message says what to do.
"""

import functools
import http.client
import json
import os
import socket
import urllib.error
import urllib.parse
import urllib.request
from dataclasses import dataclass
from typing import Any

DEFAULT_URL = "http://127.0.0.1:8000"
TIMEOUT_SECONDS = 60
CREATE_TOKEN_HELP = (
    "Create a token on the server with `python manage.py create_token NAME --user USERNAME` "
    "(or on the console's API tokens page), then `export CHALK_COMPUTE_TOKEN=<token>`."
)


class ChalkClientError(Exception):
    """A request failed; str() is a message for the person at the keyboard."""


class ServerUnreachableError(ChalkClientError):
    pass


class NotAuthenticatedError(ChalkClientError):
    pass


class CrossOriginRedirectError(ChalkClientError):
    """The server answered with a redirect to another origin, which is not followed: the
    request's Authorization header would go along (urllib copies it onto the redirect)."""

    def __init__(self, url: str, location: str, status: int) -> None:
        target = "{}://{}".format(*urllib.parse.urlsplit(location)[:2])
        super().__init__(
            f"{url} answered HTTP {status} with a redirect to {target}, another origin; "
            "requests carrying a token are not sent there. Use the server's own address: "
            f"if {target} is it, set CHALK_COMPUTE_URL={target}."
        )
        self.url = url
        self.location = location
        self.status = status


def origin(url: str) -> tuple[str, str, int | None]:
    """(scheme, host, port) of a URL, the port filled in for http and https."""
    parts = urllib.parse.urlsplit(url)
    scheme = parts.scheme.lower()
    try:
        port = parts.port
    except ValueError:
        port = -1  # no valid port: never the origin of a valid URL
    return scheme, (parts.hostname or "").lower(), port or {"http": 80, "https": 443}.get(scheme)


class SameOriginRedirectHandler(urllib.request.HTTPRedirectHandler):
    """Follows a redirect only within the origin (scheme, host and port) of the request.

    urllib's own handler copies every header but Content-Length and Content-Type onto the
    redirected request, Authorization too. A redirect elsewhere is refused, not followed
    without the token: what answers there is not this server (a runner would run the code it
    sent), and the person who set the URL is told which address to use instead."""

    def redirect_request(self, req, fp, code, msg, headers, newurl):
        if origin(newurl) != origin(req.full_url):
            raise CrossOriginRedirectError(req.full_url, newurl, code)
        return super().redirect_request(req, fp, code, msg, headers, newurl)


_OPENER = urllib.request.build_opener(SameOriginRedirectHandler)


def urlopen(request: urllib.request.Request, timeout: float, unix_socket: str | None = None):
    """urllib.request.urlopen, but a redirect to another origin raises
    CrossOriginRedirectError. The SDK, the CLI and the runner send every request with it.
    With `unix_socket`, http:// and https:// requests go as plain HTTP to that socket (a
    sandboxed runner's way to the runner API: the worker's proxy there speaks to the server)."""
    if unix_socket:
        opener = urllib.request.build_opener(
            SameOriginRedirectHandler, _UnixSocketHandler(unix_socket)
        )
        return opener.open(request, timeout=timeout)
    return _OPENER.open(request, timeout=timeout)


class _UnixSocketConnection(http.client.HTTPConnection):
    def __init__(self, host: str, *, socket_path: str, **kwargs) -> None:
        super().__init__(host, **kwargs)
        self.socket_path = socket_path

    def connect(self) -> None:
        self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        self.sock.settimeout(self.timeout)
        self.sock.connect(self.socket_path)


class _UnixSocketHandler(urllib.request.AbstractHTTPHandler):
    handler_order = 100  # before urllib's own http and https handlers

    def __init__(self, socket_path: str) -> None:
        super().__init__()
        self.socket_path = socket_path

    def http_open(self, request):
        return self.do_open(
            functools.partial(_UnixSocketConnection, socket_path=self.socket_path), request
        )

    https_open = http_open
    http_request = https_request = urllib.request.AbstractHTTPHandler.do_request_


class RequestRejectedError(ChalkClientError):
    """The server refused the request (4xx) with {"error", "detail"}."""

    def __init__(self, status: int, code: str, detail: str) -> None:
        super().__init__(detail)
        self.status = status
        self.code = code
        self.detail = detail


@dataclass(frozen=True)
class Client:
    url: str
    token: str | None

    @classmethod
    def from_env(cls) -> "Client":
        url = os.environ.get("CHALK_COMPUTE_URL", "").strip() or DEFAULT_URL
        token = os.environ.get("CHALK_COMPUTE_TOKEN", "").strip() or None
        return cls(url=url.rstrip("/"), token=token)

    def request(self, method: str, path: str, body: Any = None) -> tuple[int, Any]:
        """Sends one request and returns (status, parsed JSON or None); raises
        ChalkClientError for anything but a 2xx answer."""
        data = None
        headers = {"Accept": "application/json", "User-Agent": "chalkcompute"}
        if body is not None:
            data = json.dumps(body, ensure_ascii=False).encode("utf-8")
            headers["Content-Type"] = "application/json"
        if self.token:
            headers["Authorization"] = f"Bearer {self.token}"
        url = self.url + path
        request = urllib.request.Request(url, data=data, headers=headers, method=method)
        try:
            with urlopen(request, timeout=TIMEOUT_SECONDS) as response:
                return response.status, _json_or_none(response.read())
        except urllib.error.HTTPError as error:
            raise self._rejected(error.code, error.read()) from None
        except (OSError, http.client.HTTPException) as error:
            reason = getattr(error, "reason", None) or error
            raise ServerUnreachableError(
                f"Cannot reach the Chalkweb server at {self.url} ({reason}). Start it with "
                "`make run` in your Chalkweb checkout, or set CHALK_COMPUTE_URL to the "
                "server's address."
            ) from None

    def _rejected(self, status: int, raw: bytes) -> ChalkClientError:
        body = _json_or_none(raw)
        if not isinstance(body, dict) or "error" not in body:
            if status >= 500:
                return ChalkClientError(
                    f"The Chalkweb server at {self.url} failed (HTTP {status}); its log says why."
                )
            return ChalkClientError(
                f"{self.url} answered HTTP {status} without a Chalkweb error: is "
                "CHALK_COMPUTE_URL the address of a Chalkweb server?"
            )
        detail = str(body.get("detail", ""))
        if status == 401:
            if not self.token:
                return NotAuthenticatedError(
                    f"CHALK_COMPUTE_TOKEN is not set, and {self.url} needs an API token. "
                    + CREATE_TOKEN_HELP
                )
            return NotAuthenticatedError(
                f"{self.url} refused CHALK_COMPUTE_TOKEN: {detail}"
                if "create_token" in detail
                else f"{self.url} refused CHALK_COMPUTE_TOKEN: {detail} {CREATE_TOKEN_HELP}"
            )
        return RequestRejectedError(status, str(body["error"]), detail)

    # --- the operations the SDK uses ------------------------------------------------------

    def put_secret(self, name: str, value: str) -> dict:
        return self.request("PUT", f"/api/v1/secrets/{_segment(name)}", {"value": value})[1]

    def deploy_function(self, name: str, payload: dict) -> dict:
        return self.request("PUT", f"/api/v1/functions/{_segment(name)}", payload)[1]

    def list_functions(self) -> list[dict]:
        functions: list[dict] = []
        path = "/api/v1/functions?limit=1000"
        while path:
            page = self.request("GET", path)[1]
            functions += page["results"]
            following = page.get("next")
            path = None
            if following:
                parts = urllib.parse.urlsplit(following)
                path = parts.path + (f"?{parts.query}" if parts.query else "")
        return functions

    def trigger(self, name: str) -> dict:
        return self.request("POST", f"/api/v1/functions/{_segment(name)}/trigger")[1]

    def get_run(self, run_id: int) -> dict:
        return self.request("GET", f"/api/v1/runs/{int(run_id)}")[1]

    def run_logs(self, run_id: int, after: int) -> dict:
        return self.request("GET", f"/api/v1/runs/{int(run_id)}/logs?after={int(after)}")[1]


def _segment(name: str) -> str:
    return urllib.parse.quote(name, safe="")


def _json_or_none(raw: bytes) -> Any:
    if not raw:
        return None
    try:
        return json.loads(raw.decode("utf-8"))
    except ValueError:
        return None

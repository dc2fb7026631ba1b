"""A sandboxed run's own network (runs/executors/local/network.py), tried as an attacker would:
a deployed function connects to what listens on the worker's loopback (a test server,
PostgreSQL, ::1), to the slirp gateway and to the cloud metadata address, and to a server on
this machine's non-loopback address, the stand-in for the internet; it resolves a name and
sends UDP. Real bwrap, real slirp4netns, real runs through the local executor, whose logs reach
the server through the runner API's socket. Where slirp4netns is missing the fallback is
warned, or the run refused, and the tests check both everywhere."""

import contextlib
import hashlib
import json
import os
import select
import shutil
import socket
import subprocess
import sys
import tempfile
import threading
import time
import tracemalloc
import urllib.error
import urllib.request
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest
from django.utils import timezone

from chalkcompute.client import urlopen
from chalkweb.management.commands import run_platform
from runs.executors.local import network, sandbox
from runs.executors.local.executor import LocalExecutor
from runs.models import LogLine
from runs.services import attempt_claim, run_trigger
from tests.personas import acting
from tests.runs.support import Gate, deploy, host_address

REPO = Path(__file__).resolve().parents[2]
HAS_TOOLS = bool(shutil.which("bwrap") and shutil.which("slirp4netns"))
# As test_sandbox.py: a laptop without them skips; CI installs both, so there a miss fails.
if not HAS_TOOLS and os.environ.get("CI"):
    raise RuntimeError(
        "CI must run the network tests: apt-get install bubblewrap slirp4netns (.ci/run does)"
    )
needs_tools = pytest.mark.skipif(not HAS_TOOLS, reason="bubblewrap or slirp4netns is missing")

# One `probe NAME = JSON` line per thing tried; `{targets}` maps names to (host, port).
REACH = """
import json, socket
def report(name, value):
    print("probe", name, "=", json.dumps(value))
def reach(host, port):
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    try:
        with socket.socket(family) as peer:
            peer.settimeout(5)
            peer.connect((host, port))
            return "connected: " + peer.recv(64).decode()
    except OSError as exc:
        return "refused: " + (exc.strerror or type(exc).__name__)
for name, (host, port) in {targets!r}.items():
    report(name, reach(host, port))
"""

NAMES_AND_UDP = """
with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as udp:
    udp.settimeout(5)
    udp.sendto(b"ping", {udp!r})
    report("udp", udp.recv(64).decode())
report("resolv.conf", open("/etc/resolv.conf").read().splitlines()[0])
report("pypi.org", sorted({{a[4][0].count(".") for a in socket.getaddrinfo("pypi.org", 443)}}))
"""


def probes(run) -> dict:
    texts = LogLine.objects.filter(attempt__run=run, text__startswith="probe ").values_list(
        "text", flat=True
    )
    return {name: json.loads(value) for name, value in (t[6:].split(" = ", 1) for t in texts)}


def run_now(function, settings, live_server):
    """Runs one attempt of `function` through the local executor, here and now."""
    settings.CHALK_RUNNER_SERVER_URL = live_server.url
    run = run_trigger(function=function, trigger="manual", actor=acting("test"), now=timezone.now())
    attempt, token = attempt_claim(
        attempt_id=run.attempts.get().id, executor="local", executor_ref="test", now=timezone.now()
    )
    LocalExecutor().run(attempt, token)
    run.refresh_from_db()
    return run


class UdpEcho:
    def __init__(self, address: str) -> None:
        self.socket = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        self.socket.bind((address, 0))
        self.address = self.socket.getsockname()
        threading.Thread(target=self._serve, daemon=True).start()

    def _serve(self) -> None:
        while True:
            try:
                data, peer = self.socket.recvfrom(64)
            except OSError:
                return
            self.socket.sendto(b"pong " + data, peer)


@needs_tools
def test_a_run_reaches_the_outside_world_but_nothing_on_the_workers_loopback(
    settings, live_server, transactional_db
):
    loopback = Gate(b"loopback")
    loopback6 = Gate(b"loopback6", address="::1")
    outside = Gate(b"outside")  # on this machine's own address: a machine like any other
    echo = UdpEcho(host_address())
    targets = {
        "loopback server": ("127.0.0.1", loopback.port),
        "loopback name": ("localhost", loopback.port),
        "postgresql": ("127.0.0.1", 5432),
        "::1 server": ("::1", loopback6.port),
        "gateway to the loopback": ("10.0.2.2", loopback.port),
        "metadata": ("169.254.169.254", 80),
        "outside": (outside.address, outside.port),
    }
    body = REACH.format(targets=targets) + NAMES_AND_UDP.format(udp=echo.address)
    function = deploy("attacker", body)

    run = run_now(function, settings, live_server)

    assert run.status == "succeeded", run.status_reason
    found = probes(run)
    for name in ("loopback server", "loopback name", "postgresql", "::1 server"):
        assert found[name] == "refused: Connection refused", (name, found)
    assert found["gateway to the loopback"].startswith("refused: "), found
    assert found["metadata"] == "refused: No route to host"
    assert (loopback.connections, loopback6.connections) == (0, 0)
    assert found["outside"] == "connected: outside" and outside.connections == 1
    assert found["udp"] == "pong ping"
    assert found["resolv.conf"] == "nameserver 10.0.2.3"  # slirp4netns's forwarder
    assert found["pypi.org"] == [3]  # IPv4 addresses: names resolve (this machine reaches PyPI)
    assert not LogLine.objects.filter(attempt__run=run, stream="system").exists()  # no warning
    for gate in (loopback, loopback6, outside):
        gate.close()


@needs_tools
def test_a_worker_that_is_not_root_gives_its_runs_their_own_network_too():
    """The network module as a worker running as nobody uses it: bwrap in a user namespace,
    slirp4netns joining it, the route put in through that namespace."""
    loopback, outside = Gate(b"loopback"), Gate(b"outside")
    probe = REACH.format(
        targets={
            "loopback": ("127.0.0.1", loopback.port),
            "metadata": ("169.254.169.254", 80),
            "outside": (outside.address, outside.port),
        }
    )
    folder = Path(tempfile.mkdtemp(prefix="chalk-worker-"))  # the worker's own: its log
    drop, python = [], sys.executable
    if os.geteuid() == 0:  # this test runs as root: the worker is nobody, with Debian's python
        os.chown(folder, 65534, 65534)
        drop = ["setpriv", "--reuid=65534", "--regid=65534", "--clear-groups", "--"]
        python = shutil.which("python3", path="/usr/bin:/bin")
    worker = f"""
import subprocess, sys
from pathlib import Path
from runs.executors.local import network
command = ["bwrap", "--die-with-parent", "--unshare-user", "--unshare-pid", "--unshare-net",
           "--ro-bind", "/", "/", "--proc", "/proc", "--dev", "/dev", "--",
           {python!r}, "-c", {probe!r}]
process, own = network.spawn(command, slirp4netns="slirp4netns", log=Path({str(folder)!r}) / "log",
                             stdout=subprocess.PIPE)
print(process.communicate()[0].decode(), end="")
own.close()
"""
    result = subprocess.run(
        [*drop, python, "-c", worker], env={"PYTHONPATH": str(REPO), "PATH": "/usr/bin:/bin"},
        capture_output=True, text=True, timeout=60,
    )  # fmt: skip

    shutil.rmtree(folder)
    assert result.returncode == 0, result.stderr
    found = {
        name: json.loads(value)
        for name, value in (line[6:].split(" = ", 1) for line in result.stdout.splitlines())
    }
    assert found == {
        "loopback": "refused: Connection refused",
        "metadata": "refused: No route to host",
        "outside": "connected: outside",
    }
    assert loopback.connections == 0


# Without slirp4netns: warned, or refused; never a silent downgrade.


@pytest.mark.django_db
def test_auto_without_slirp4netns_shares_the_network_and_says_so_everywhere(settings, tmp_path):
    settings.CHALK_LOCAL_NETWORK = "auto"  # the embedded default's; production requires it
    settings.CHALK_LOCAL_SLIRP4NETNS = str(tmp_path / "no-slirp4netns")

    found = sandbox.isolation()

    if not found.bwrap:
        pytest.skip("bubblewrap is missing: runs are not isolated at all (test_sandbox.py)")
    assert (found.slirp4netns, found.refusal) == (None, None)
    assert found.warning == (
        f"Runs share this worker's network (slirp4netns was not found ("
        f"{str(tmp_path / 'no-slirp4netns')!r} is not an executable here)): a run's function "
        "reaches every service listening on this machine's loopback (127.0.0.1 and ::1: "
        "databases, Redis, this server) and the cloud metadata address 169.254.169.254. Install "
        "slirp4netns (apt install slirp4netns) to give each run its own network; "
        "CHALK_LOCAL_NETWORK=isolated refuses runs without it."
    )
    assert LocalExecutor().isolation() == found.warning  # the function and run pages
    assert run_platform.runs_line().endswith("; NETWORK NOT ISOLATED: " + found.warning)


@needs_tools
def test_a_run_without_its_own_network_says_so_on_its_log(settings, live_server, transactional_db):
    settings.CHALK_LOCAL_NETWORK = "host"
    gate = Gate(b"shared", address="127.0.0.1")

    run = run_now(
        deploy("shared", REACH.format(targets={"loopback": ("127.0.0.1", gate.port)})),
        settings,
        live_server,
    )

    assert run.status == "succeeded", run.status_reason
    warning = sandbox.isolation().warning
    assert warning.startswith("Runs share this worker's network (CHALK_LOCAL_NETWORK=host): ")
    assert list(
        LogLine.objects.filter(attempt__run=run, stream="system").values_list("level", "text")
    ) == [("WARNING", warning)]
    assert probes(run) == {"loopback": "connected: shared"}


@needs_tools
@pytest.mark.django_db
def test_isolated_without_slirp4netns_refuses_the_run_and_says_why(settings, tmp_path):
    settings.CHALK_LOCAL_NETWORK = "isolated"
    settings.CHALK_LOCAL_SLIRP4NETNS = str(tmp_path / "no-slirp4netns")
    run = run_trigger(
        function=deploy("required", "pass", retries=2),
        trigger="manual",
        actor=acting("test"),
        now=timezone.now(),
    )
    attempt, token = attempt_claim(
        attempt_id=run.attempts.get().id, executor="local", executor_ref="test", now=timezone.now()
    )

    LocalExecutor().run(attempt, token)

    run.refresh_from_db()
    assert run.status == "failed"
    assert run.status_reason.startswith(
        "runs are refused: CHALK_LOCAL_NETWORK=isolated, but slirp4netns was not found ("
    )
    assert run.attempts.count() == 1


@needs_tools
def test_a_slirp4netns_that_cannot_attach_is_said_with_what_it_said(settings):
    settings.CHALK_LOCAL_NETWORK = "auto"  # the embedded default's; production requires it
    settings.CHALK_LOCAL_SLIRP4NETNS = "false"  # exits 1 at once, as a broken helper would

    warning = sandbox.isolation().warning

    assert warning.startswith(
        f"Runs share this worker's network (a sandbox's network cannot be made here: "
        f"{shutil.which('false')} did not bring the network up (exit code 1: )): "
    ), warning


def test_an_unknown_network_setting_stops_the_server_at_start(tmp_path):
    started = subprocess.run(
        [sys.executable, "-c", "import django; django.setup()"], cwd=REPO, capture_output=True,
        text=True, timeout=60, env={**os.environ, "DJANGO_SETTINGS_MODULE": "chalkweb.settings",
        "CHALK_LOCAL_NETWORK": "none", "CHALK_DATA_DIR": str(tmp_path)},
    )  # fmt: skip

    assert started.returncode == 1
    assert started.stderr.strip().splitlines()[-1] == (
        "django.core.exceptions.ImproperlyConfigured: CHALK_LOCAL_NETWORK='none': use auto, "
        "isolated or host"
    )


# The runner API's socket: the runner API, and nothing else of the server.


class Upstream(BaseHTTPRequestHandler):
    seen: list[tuple[str, str, str, bytes]] = []
    BIG = 8 * 2**20  # the answer to .../big: sent in pieces, with no Content-Length

    def _answer(self) -> None:
        length = int(self.headers.get("Content-Length") or 0)
        if self.path.endswith("/big"):
            return self._big()
        if self.path.endswith("/digest"):  # the body read in pieces: its size and hash
            digest, left = hashlib.sha256(), length
            while left and (chunk := self.rfile.read(min(left, 65_536))):
                digest.update(chunk)
                left -= len(chunk)
            body = json.dumps({"bytes": length - left, "sha256": digest.hexdigest()}).encode()
        else:
            body = self.rfile.read(length)
        self.seen.append((self.command, self.path, self.headers["Host"], body))
        content = body if self.path.endswith("/digest") else b'{"ok": true}'
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(content)))
        self.end_headers()
        self.wfile.write(content)

    def _big(self) -> None:
        self.send_response(200)
        self.send_header("Content-Type", "application/octet-stream")
        self.end_headers()  # HTTP/1.0: the body ends where the connection does
        piece = b"b" * 65_536
        with contextlib.suppress(BrokenPipeError, ConnectionResetError):  # a proxy that gave up
            for _ in range(self.BIG // len(piece)):
                self.wfile.write(piece)

    do_GET = do_POST = _answer

    def log_message(self, *args) -> None:
        pass


@pytest.fixture
def upstream():
    server = ThreadingHTTPServer(("127.0.0.1", 0), Upstream)
    threading.Thread(target=server.serve_forever, args=(0.01,), daemon=True).start()
    Upstream.seen = []
    yield f"http://127.0.0.1:{server.server_address[1]}/chalk"  # served under a path
    server.shutdown()


@contextlib.contextmanager
def serving(path: Path, url: str, **options):
    served = network.RunnerApiProxy(path, url, **options)
    served.url = url
    try:
        yield served
    finally:
        served.close()


@pytest.fixture
def proxy(tmp_path, upstream):
    with serving(tmp_path / "api.sock", upstream) as served:
        yield served


def ask(proxy, method: str, path: str, body: bytes | None = None, headers=None):
    request = urllib.request.Request(
        proxy.url + path, data=body, method=method, headers=headers or {}
    )
    try:
        with urlopen(request, timeout=10, unix_socket=str(proxy.path)) as answer:
            return answer.status, json.loads(answer.read())
    except urllib.error.HTTPError as exc:
        return exc.code, json.loads(exc.read())


def test_the_socket_forwards_the_runner_api_to_the_server(proxy):
    headers = {"Authorization": "Bearer t", "Content-Type": "application/json"}
    status, answer = ask(proxy, "POST", "/api/runner/v1/heartbeat", b'{"lines": []}', headers)

    assert (status, answer) == (200, {"ok": True})
    host = proxy.url.split("/")[2]
    assert Upstream.seen == [("POST", "/chalk/api/runner/v1/heartbeat", host, b'{"lines": []}')]


@pytest.mark.parametrize(
    "path",
    [
        "/api/v1/secrets",
        "/admin/",
        "/api/runner/v2/attempt",
        "/api/runner/v1/../../v1/secrets",
        "/",
    ],
)
def test_the_socket_refuses_everything_else_of_the_server(proxy, path):
    status, answer = ask(proxy, "GET", path)

    assert status == 403
    assert answer == {
        "error": "proxy",
        "detail": "only the runner API (/chalk/api/runner/v1/) is reachable here",
    }
    assert Upstream.seen == []


def test_the_socket_refuses_a_body_it_will_not_hold(proxy):
    with socket.socket(socket.AF_UNIX) as peer:
        peer.connect(str(proxy.path))
        peer.sendall(
            b"POST /chalk/api/runner/v1/heartbeat HTTP/1.1\r\nHost: x\r\n"
            b"Content-Length: 99999999999\r\n\r\n"
        )
        answer = peer.recv(4096).decode()

    assert answer.startswith("HTTP/1.0 413 ")
    assert Upstream.seen == []


def test_the_socket_answers_502_while_the_server_is_down(tmp_path):
    with socket.socket() as closed:
        closed.bind(("127.0.0.1", 0))
        port = closed.getsockname()[1]
    served = network.RunnerApiProxy(tmp_path / "api.sock", f"http://127.0.0.1:{port}")
    served.url = f"http://127.0.0.1:{port}"
    try:
        status, answer = ask(served, "GET", "/api/runner/v1/attempt")
    finally:
        served.close()

    assert status == 502  # the runner retries it
    assert answer["detail"].startswith("the runner API cannot be reached: ")
    assert not (tmp_path / "api.sock").exists()


def test_the_socket_is_made_in_a_folder_deeper_than_a_socket_path_may_be(tmp_path):
    """A unix socket's path is at most 107 bytes; a data folder can be deeper than that."""
    deep = tmp_path / ("d" * 60) / ("e" * 60)
    deep.mkdir(parents=True)
    served = network.RunnerApiProxy(deep / "api.sock", "http://127.0.0.1:9/chalk")
    try:
        assert len(str(served.path)) > 108 and served.path.is_socket()
        (tmp_path / "short").symlink_to(deep)  # the sandbox mounts the folder at a short path
        served.path, served.url = tmp_path / "short" / "api.sock", "http://127.0.0.1:9/chalk"
        status, answer = ask(served, "GET", "/api/runner/v1/attempt")
        assert status == 502  # reached the proxy, which found no server upstream
    finally:
        served.path = deep / "api.sock"
        served.close()
    assert not (deep / "api.sock").exists()


# What one attempt can hold in the worker through its socket: threads, memory, time.


def connected(proxy) -> socket.socket:
    peer = socket.socket(socket.AF_UNIX)
    peer.connect(str(proxy.path))  # blocking: with a timeout, a full backlog is EAGAIN at once
    peer.settimeout(10)
    return peer


def received(peer: socket.socket) -> bytes:
    """All the proxy sends, until it closes the connection (a reset, where it left unread
    bytes of ours)."""
    parts = []
    with contextlib.suppress(ConnectionResetError):
        while part := peer.recv(65_536):
            parts.append(part)
    return b"".join(parts)


def threads_become(count: int, timeout: float = 5) -> int:
    deadline = time.monotonic() + timeout
    while threading.active_count() != count and time.monotonic() < deadline:
        time.sleep(0.01)
    return threading.active_count()


def threads_back_to(count: int, timeout: float = 5) -> bool:
    """Whether the threads are back to `count` or fewer: a thread of an earlier test (a live
    server's, say) may end meanwhile, and only one left over by the proxy is a leak."""
    deadline = time.monotonic() + timeout
    while threading.active_count() > count and time.monotonic() < deadline:
        time.sleep(0.01)
    return threading.active_count() <= count


def test_connections_past_the_cap_are_answered_503_at_once_without_a_thread(proxy):
    threads = threading.active_count()
    held = [connected(proxy) for _ in range(network.MAX_CONNECTIONS)]  # each holds a thread
    assert threads_become(threads + network.MAX_CONNECTIONS) == threads + network.MAX_CONNECTIONS

    began = time.monotonic()
    extras = [connected(proxy) for _ in range(200)]
    answers = [received(peer) for peer in extras]
    took = time.monotonic() - began

    assert {answer.split(b"\r\n")[0] for answer in answers} == {b"HTTP/1.0 503 Service Unavailable"}
    assert json.loads(answers[0].split(b"\r\n\r\n")[1]) == {
        "error": "proxy",
        "detail": f"at most {network.MAX_CONNECTIONS} connections to the runner API at once",
    }
    try:  # the runner's own client: it retries either
        refused = ask(proxy, "GET", "/api/runner/v1/attempt")[0]
    except urllib.error.URLError as exc:  # its request came after the 503 and the close
        refused = type(exc.reason).__name__
    assert refused in (503, "BrokenPipeError", "ConnectionResetError"), refused
    assert threading.active_count() == threads + network.MAX_CONNECTIONS
    assert took < 5  # refused without waiting on anything
    for peer in held + extras:
        peer.close()
    assert threads_back_to(threads)
    assert ask(proxy, "GET", "/api/runner/v1/attempt") == (200, {"ok": True})  # slots came back


def test_a_body_past_the_runner_apis_limit_is_refused_413_without_being_read(proxy, settings):
    assert network.MAX_BODY_BYTES == settings.DATA_UPLOAD_MAX_MEMORY_SIZE  # the runner API's own
    size = network.MAX_BODY_BYTES + 1
    piece = b"x" * 65_536
    tracemalloc.start()
    try:
        with connected(proxy) as peer:
            peer.sendall(
                b"POST /chalk/api/runner/v1/heartbeat HTTP/1.1\r\nHost: x\r\n"
                b"Content-Length: %d\r\n\r\n" % size
            )
            try:
                for _ in range(size // len(piece) + 1):
                    peer.sendall(piece)
            except (BrokenPipeError, ConnectionResetError):
                pass  # refused, and closed, before the body was all sent
            answer = received(peer)
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()

    assert answer.startswith(b"HTTP/1.0 413 ")
    assert json.loads(answer.split(b"\r\n\r\n")[1])["detail"] == (
        "a request body is at most 2621440 bytes"
    )
    assert peak < 2**20, peak  # never held: the body is 2.5 MiB
    assert Upstream.seen == []


def test_bodies_pass_through_in_pieces_both_ways(proxy):
    body = os.urandom(network.MAX_BODY_BYTES)  # the largest the runner API reads
    tracemalloc.start()
    try:
        status, answer = ask(proxy, "POST", "/api/runner/v1/digest", body)
        request = urllib.request.Request(proxy.url + "/api/runner/v1/big")
        with urlopen(request, timeout=10, unix_socket=str(proxy.path)) as big:
            received_bytes = 0
            while chunk := big.read(65_536):
                received_bytes += len(chunk)
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()

    assert (status, answer) == (
        200,
        {"bytes": len(body), "sha256": hashlib.sha256(body).hexdigest()},
    )
    assert received_bytes == Upstream.BIG
    assert peak < 2**20, peak  # pieces of 64 KiB, not a 2.5 MiB body nor an 8 MiB answer


SLOW = {
    "nothing": (b"", b""),
    "headers": (b"POST /chalk/api/runner/v1/heartbeat HTTP/1.1\r\n", b"X-Slow: " + b"s" * 500),
    "body": (
        b"POST /chalk/api/runner/v1/heartbeat HTTP/1.1\r\nContent-Length: 1000\r\n\r\n",
        b"{" * 1000,
    ),
}


@pytest.mark.parametrize("sending", SLOW)
def test_a_client_that_sends_slowly_is_cut_off_at_the_deadline(tmp_path, upstream, sending):
    start, trickle = SLOW[sending]
    with serving(tmp_path / "api.sock", upstream, client_seconds=0.5) as proxy:
        with connected(proxy) as peer:
            began = time.monotonic()
            peer.sendall(start)
            for byte in trickle or b"." * 500:  # a byte every 20 ms: 10 s for all of them
                readable, _, _ = select.select([peer], [], [], 0.02)
                if readable:
                    break
                if trickle:
                    peer.sendall(bytes([byte]))
            answer, took = received(peer), time.monotonic() - began

    assert answer == b""  # closed, nothing forwarded
    assert 0.4 < took < 2, took
    assert all(len(seen[3]) < 1000 for seen in Upstream.seen)


def test_a_client_that_does_not_take_its_answer_is_cut_off_at_the_deadline(tmp_path, upstream):
    with serving(tmp_path / "api.sock", upstream, client_seconds=0.5) as proxy:
        threads = threading.active_count()
        with connected(proxy) as peer:
            peer.sendall(b"GET /chalk/api/runner/v1/big HTTP/1.1\r\n\r\n")  # 8 MiB
            time.sleep(1)  # not reading: the proxy's sends wait for room
            answer = received(peer)
        assert threads_back_to(threads)

    assert answer.startswith(b"HTTP/1.0 200 OK\r\n")
    assert len(answer) < Upstream.BIG  # what the socket's buffers held when it was cut off


def test_the_server_is_given_up_on_after_the_upstream_timeout(tmp_path):
    with socket.create_server(("127.0.0.1", 0)) as silent:  # accepts, never answers
        url = f"http://127.0.0.1:{silent.getsockname()[1]}"
        with serving(tmp_path / "api.sock", url, upstream_seconds=0.5) as proxy:
            began = time.monotonic()
            status, answer = ask(proxy, "GET", "/api/runner/v1/attempt")
            took = time.monotonic() - began

    assert status == 502
    assert answer["detail"] == "the runner API cannot be reached: timed out"
    assert took < 2, took

"""A sandboxed attempt's own network: what it reaches, and how it reaches the runner API.

bwrap gives the attempt a new, empty network namespace (`--unshare-net`), and slirp4netns joins
it to the outside world: a tap device, 10.0.2.100/24, outbound TCP and UDP made from the worker's
own sockets, and a DNS forwarder at 10.0.2.3. With `--disable-host-loopback` the gateway does not
lead to the worker's 127.0.0.1, and the namespace's own loopback is empty, so nothing listening
on the worker's loopback (PostgreSQL, Redis, the server) can be reached; an `unreachable` route
closes 169.254.0.0/16, the cloud metadata address among them. IPv6 is off: ::1 inside is empty.
The runner reaches the runner API through a unix socket the worker proxies to
CHALK_RUNNER_SERVER_URL, and to its runner API paths only (RunnerApiProxy).

The order (`spawn`): bwrap starts with `--info-fd` (it writes the sandbox's pid there) and
`--block-fd` (the command waits until a byte arrives); slirp4netns attaches to that pid and says
when the network is up (`--ready-fd`); the route goes in; then the byte lets the runner start.
slirp4netns joins the sandbox's user namespace itself when the worker is not root, and runs in a
seccomp filter (and, under a root worker, a sandbox) of its own. It stops when the worker closes
its `--exit-fd`, or dies with the worker.

No Django here, so that tests can run it as an unprivileged worker would.
"""

import ctypes
import fcntl
import http.client
import http.server
import io
import json
import os
import select
import shutil
import socket
import socketserver
import subprocess
import sys
import threading
import time
import urllib.parse
from pathlib import Path

from chalkcompute.runtime import protocol
from chalkcompute.runtime.parent import die_with_parent

NAMESERVER = "10.0.2.3"  # slirp4netns's DNS forwarder, to the worker's own resolver
BLOCKED = ("169.254.0.0/16",)  # link-local: the cloud metadata address (169.254.169.254) is here
SOCKET_FOLDER = "/run/chalkweb"  # in the sandbox, read-only: the runner API's socket
SOCKET_NAME = "runner-api.sock"
READY_SECONDS = 10
# The runner API's socket. A run's own code can connect to it too, so what one attempt may
# hold in the worker is bounded: threads, memory, and time.
MAX_CONNECTIONS = 8  # at once, per attempt: the runner holds one or two (heartbeats, finish)
MAX_BODY_BYTES = protocol.MAX_REQUEST_BYTES  # the most the runner API reads
CHUNK_BYTES = 65_536  # bodies pass through in pieces of at most this, never whole
CLIENT_SECONDS = 30  # to send a request (headers and body), and again to take its answer
UPSTREAM_TIMEOUT_SECONDS = 30  # per socket operation; the runner itself gives up after 30 s
_HOP_BY_HOP = {
    "connection", "keep-alive", "proxy-authenticate", "proxy-authorization", "te", "trailer",
    "transfer-encoding", "upgrade", "host", "content-length",
}  # fmt: skip


class NetworkError(RuntimeError):
    """The attempt's network could not be made; the message says what failed."""


class RunNetwork:
    """The slirp4netns of one sandbox; `close()` stops it."""

    def __init__(self, process: subprocess.Popen, exit_write: int) -> None:
        self.process = process
        self._exit_write = exit_write

    def close(self) -> None:
        if self._exit_write >= 0:
            os.close(self._exit_write)  # slirp4netns's --exit-fd: it stops at once
            self._exit_write = -1
        try:
            self.process.wait(timeout=5)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait()


def resolv_conf() -> str:
    """The sandbox's /etc/resolv.conf: slirp4netns's forwarder (the worker's own nameservers
    may be on loopback, which the sandbox cannot reach), the worker's search and options."""
    kept = []
    try:
        for line in Path("/etc/resolv.conf").read_text().splitlines():
            if line.split()[:1] in (["search"], ["domain"], ["options"]):
                kept.append(line)
    except OSError:
        pass
    return "\n".join([f"nameserver {NAMESERVER}", *kept]) + "\n"


def spawn(
    command: list[str], *, slirp4netns: str, log: Path, pass_fds=(), **popen
) -> tuple[subprocess.Popen, RunNetwork | None]:
    """Starts the bwrap `command` (which has `--unshare-net`) with its network attached before
    its command runs. Returns the process and its network (None when bwrap exited before it
    made the sandbox: its exit code and stderr say why). Raises NetworkError, the sandbox
    killed, when the network cannot be made."""
    info_read, info_write = os.pipe()
    block_read, block_write = os.pipe()
    fds = ["--info-fd", str(info_write), "--block-fd", str(block_read)]
    command = [command[0], *fds, *command[1:]]
    try:
        process = subprocess.Popen(command, pass_fds=(*pass_fds, info_write, block_read), **popen)
    except BaseException:
        os.close(info_read)
        os.close(block_write)
        raise
    finally:
        os.close(info_write)
        os.close(block_read)
    try:
        with open(info_read, "rb") as info:
            written = info.read(4096)
        if not written:  # bwrap failed before it made the sandbox
            return process, None
        pid = json.loads(written)["child-pid"]
        try:
            network = attach(slirp4netns, pid, log)
        except NetworkError:
            process.kill()
            process.wait()
            raise
        except FileNotFoundError:  # the sandbox ended before its network was made: bwrap says why
            return process, None
        try:
            os.write(block_write, b"1")
        except BrokenPipeError:  # the sandbox ended meanwhile: bwrap's exit says why
            network.close()
            return process, None
        return process, network
    finally:
        os.close(block_write)


def attach(slirp4netns: str, pid: int, log: Path) -> RunNetwork:
    """Joins the network namespace of `pid` to the outside world; returns once it is up."""
    namespaces = _Namespaces(pid)
    ready_read, ready_write = os.pipe()
    exit_read, exit_write = os.pipe()
    try:
        with open(log, "ab") as output:
            process = subprocess.Popen(
                [slirp4netns, "--configure", "--mtu=65520", "--disable-host-loopback",
                 "--enable-seccomp", f"--ready-fd={ready_write}",
                 f"--exit-fd={exit_read}", *namespaces.slirp4netns_args(), "tap0"],
                stdin=subprocess.DEVNULL, stdout=output, stderr=output,
                pass_fds=(ready_write, exit_read, *namespaces.fds), preexec_fn=die_with_parent,
                env={},
            )  # fmt: skip
    except OSError as exc:
        for fd in (ready_read, exit_write):
            os.close(fd)
        namespaces.close()
        raise NetworkError(f"{slirp4netns} cannot run: {exc}") from None
    finally:
        os.close(ready_write)
        os.close(exit_read)
    network = RunNetwork(process, exit_write)
    try:
        poll = select.poll()  # not select(): a worker of hundreds of runs has fds past 1024
        poll.register(ready_read, select.POLLIN)
        if not poll.poll(READY_SECONDS * 1000) or os.read(ready_read, 1) != b"1":
            try:
                code = process.wait(timeout=1)
            except subprocess.TimeoutExpired:
                code = None
            said = log.read_text(errors="replace").strip()[-300:] if log.exists() else ""
            raise NetworkError(
                f"{slirp4netns} did not bring the network up (exit code {code}: {said})"
            )
        _block_routes(namespaces)
    except BaseException:
        network.close()
        raise
    finally:
        os.close(ready_read)
        namespaces.close()
    return network


class _Namespaces:
    """The sandbox's network namespace and the user namespace that owns it, held open.

    The owner comes from the network namespace itself (ioctl NS_GET_USERNS), not from
    /proc/PID/ns/user: bwrap moves its child into a nested user namespace of its own (to map
    the run's uid after mounting /dev as root), which has no rights over the network one. For
    a worker that is root the owner is its own user namespace, and there is none to join."""

    NS_GET_USERNS = 0xB701  # _IO(0xb7, 0x1), linux/nsfs.h

    def __init__(self, pid: int) -> None:
        self.net = os.open(f"/proc/{pid}/ns/net", os.O_RDONLY)
        self.user = fcntl.ioctl(self.net, self.NS_GET_USERNS)
        if os.fstat(self.user).st_ino == os.stat("/proc/self/ns/user").st_ino:
            os.close(self.user)
            self.user = None
        else:
            self._wait_for_id_maps(pid)
        self.fds = (self.net,) if self.user is None else (self.net, self.user)

    def _wait_for_id_maps(self, pid: int) -> None:
        """bwrap's child writes its user namespace's uid and gid maps itself, just after the
        pid is announced; until then nobody can act as root in it, slirp4netns neither. The
        maps it shows later (its nested namespace's) come after the owner's."""
        deadline = time.monotonic() + READY_SECONDS
        while not all(Path(f"/proc/{pid}/{name}").read_text() for name in ("uid_map", "gid_map")):
            if time.monotonic() > deadline:
                self.close()
                raise NetworkError("the sandbox's user namespace got no uid map in time")
            time.sleep(0.001)

    def slirp4netns_args(self) -> list[str]:
        # A root worker's slirp4netns confines itself (its own mount namespace, no capabilities
        # left). A worker that is not root runs it as its own unprivileged uid, in the user
        # namespace: there slirp4netns 1.2.0 cannot become root for that sandbox.
        if self.user is None:
            return ["--enable-sandbox", "--netns-type=path", f"/proc/self/fd/{self.net}"]
        return ["--netns-type=path", f"--userns-path=/proc/self/fd/{self.user}",
                f"/proc/self/fd/{self.net}"]  # fmt: skip

    def enter(self) -> None:
        """setns into them, in a child (setns into a user namespace needs one thread): the
        user namespace first, as it is what gives the right to enter the network one."""
        libc = ctypes.CDLL(None, use_errno=True)
        for fd in (self.user, self.net):
            if fd is not None and libc.setns(fd, 0) != 0:
                raise OSError(ctypes.get_errno(), "setns")

    def close(self) -> None:
        for fd in self.fds:
            os.close(fd)
        self.fds = ()


def _block_routes(namespaces: _Namespaces) -> None:
    """`ip route add unreachable …` run inside the sandbox's namespaces: the run's own
    processes never hold the right to change it."""
    ip = shutil.which("ip", path="/usr/sbin:/usr/bin:/sbin:/bin")
    if not ip:
        raise NetworkError("ip (iproute2) was not found, and the sandbox's routes need it")
    for blocked in BLOCKED:
        result = subprocess.run(
            [ip, "route", "add", "unreachable", blocked], preexec_fn=namespaces.enter, env={},
            capture_output=True, timeout=10,
        )  # fmt: skip
        if result.returncode != 0:
            said = result.stderr.decode("utf-8", "replace").strip()[-300:]
            raise NetworkError(f"the sandbox's route to {blocked} could not be closed: {said}")


# The runner API, through a unix socket.


class RunnerApiProxy:
    """Serves a unix socket (mounted read-only into the sandbox) that forwards HTTP requests
    for the runner API's paths to `upstream` (CHALK_RUNNER_SERVER_URL), and nothing else: a
    run reaches the platform only through the API its runner needs. One request per connection
    (HTTP/1.0, so no idle keep-alive), a thread for each of at most MAX_CONNECTIONS at once;
    one more is answered 503 at once, without a thread. `client_seconds` bounds the time to send
    a request and to take its answer. `close()` stops it and removes the socket."""

    def __init__(
        self,
        path: Path,
        upstream: str,
        *,
        client_seconds: float = CLIENT_SECONDS,
        upstream_seconds: float = UPSTREAM_TIMEOUT_SECONDS,
    ) -> None:
        parts = urllib.parse.urlsplit(upstream)
        self.path = path
        self.prefix = parts.path.rstrip("/") + protocol.API_PATH
        self.client_seconds = client_seconds
        connection = (
            http.client.HTTPSConnection if parts.scheme == "https" else http.client.HTTPConnection
        )
        self._connect = lambda: connection(parts.hostname, parts.port, timeout=upstream_seconds)
        # A unix socket's path is at most 107 bytes and a data folder can be deep: bind through
        # the folder's descriptor (/proc/self/fd/N/NAME), short whatever the folder's path.
        folder = os.open(path.parent, os.O_RDONLY | os.O_DIRECTORY)
        try:
            self._server = _UnixServer(f"/proc/self/fd/{folder}/{path.name}", _ProxyHandler)
        finally:
            os.close(folder)
        self._server.proxy = self
        self._server.slots = threading.BoundedSemaphore(MAX_CONNECTIONS)
        # The run's uid must be able to connect; the work folder around it (0700, the
        # worker's) keeps everyone else out.
        os.chmod(path, 0o666)
        # Polled often, so that close() at the end of an attempt does not wait half a second.
        self._thread = threading.Thread(
            target=self._server.serve_forever, kwargs={"poll_interval": 0.01}, daemon=True
        )
        self._thread.start()

    def close(self) -> None:
        self._server.shutdown()
        self._server.server_close()
        self._thread.join()
        self.path.unlink(missing_ok=True)


# The runner retries a 5xx, and a connection closed on it (what a client that writes before
# it reads may meet instead, as the connection is closed at once).
_BUSY_CONTENT = json.dumps(
    {"error": "proxy", "detail": f"at most {MAX_CONNECTIONS} connections to the runner API at once"}
).encode()
_BUSY = (
    b"HTTP/1.0 503 Service Unavailable\r\nContent-Type: application/json\r\n"
    b"Content-Length: %d\r\nRetry-After: 1\r\n\r\n%s" % (len(_BUSY_CONTENT), _BUSY_CONTENT)
)


class _UnixServer(socketserver.ThreadingMixIn, socketserver.UnixStreamServer):
    daemon_threads = True
    proxy: RunnerApiProxy
    slots: threading.BoundedSemaphore  # one per connection being served

    def process_request(self, request, client_address) -> None:
        if not self.slots.acquire(blocking=False):
            # Answered here, in the accepting thread: one send that never waits on the client.
            try:
                request.send(_BUSY, socket.MSG_DONTWAIT)
            except OSError:
                pass
            self.shutdown_request(request)
            return
        try:
            super().process_request(request, client_address)  # its thread releases the slot
        except BaseException:
            self.slots.release()
            raise

    def process_request_thread(self, request, client_address) -> None:
        try:
            super().process_request_thread(request, client_address)
        finally:
            self.slots.release()

    def handle_error(self, request, client_address) -> None:
        if not isinstance(sys.exc_info()[1], OSError):  # a client that left or was cut off
            super().handle_error(request, client_address)


class _ClientGone(Exception):
    """The client stopped sending its body, or ran out of time: nothing to answer."""


class _Client(io.RawIOBase):
    """The sandbox's end of a connection, read and written against a deadline: each socket
    call waits only for the time left, so a client that trickles its request or takes its
    answer slowly (slowloris) is cut off when the time is up, not just when it pauses."""

    def __init__(self, sock: socket.socket, seconds: float) -> None:
        self.sock, self.seconds = sock, seconds
        self.restart()

    def restart(self) -> None:
        self.until = time.monotonic() + self.seconds

    def _wait(self) -> None:
        left = self.until - time.monotonic()
        if left <= 0:
            raise TimeoutError("the client took too long")
        self.sock.settimeout(left)

    def readable(self) -> bool:
        return True

    def writable(self) -> bool:
        return True

    def readinto(self, buffer) -> int:
        self._wait()
        return self.sock.recv_into(buffer)

    def write(self, data) -> int:
        self._wait()
        self.sock.sendall(data)  # its timeout bounds the whole call
        return len(data)


class _ProxyHandler(http.server.BaseHTTPRequestHandler):
    server: _UnixServer

    def setup(self) -> None:
        self.connection = self.request
        self.client = _Client(self.request, self.server.proxy.client_seconds)
        self.rfile = io.BufferedReader(self.client, CHUNK_BYTES)
        self.wfile = self.client

    def _forward(self) -> None:
        proxy = self.server.proxy
        path = urllib.parse.urlsplit(self.path).path
        if not path.startswith(proxy.prefix) or ".." in path.split("/"):
            return self._refuse(403, f"only the runner API ({proxy.prefix}) is reachable here")
        if self.headers.get("Transfer-Encoding"):
            return self._refuse(411, "send the body with a Content-Length")
        try:
            length = int(self.headers.get("Content-Length") or 0)
        except ValueError:
            return self._refuse(400, "Content-Length is not a number")
        if not 0 <= length <= MAX_BODY_BYTES:  # refused before a byte of it is read
            return self._refuse(413, f"a request body is at most {MAX_BODY_BYTES} bytes")
        headers = {k: v for k, v in self.headers.items() if k.lower() not in _HOP_BY_HOP}
        if length:
            headers["Content-Length"] = str(length)  # so the body goes as it is, not chunked
        upstream = proxy._connect()
        try:
            try:
                upstream.request(
                    self.command, self.path, body=self._body(length) if length else None,
                    headers=headers,
                )  # fmt: skip
                answer = upstream.getresponse()
            except _ClientGone:
                self.close_connection = True
                return
            except (OSError, http.client.HTTPException) as exc:
                return self._refuse(502, f"the runner API cannot be reached: {exc}")
            self._relay(answer)
        finally:
            upstream.close()

    do_GET = do_POST = do_PUT = do_PATCH = do_DELETE = do_HEAD = _forward

    def _body(self, length: int):
        """The request's body, read as it is sent upstream."""
        while length:
            try:
                chunk = self.rfile.read(min(length, CHUNK_BYTES))
            except OSError:
                raise _ClientGone from None
            if not chunk:
                raise _ClientGone
            length -= len(chunk)
            yield chunk

    def _relay(self, answer: http.client.HTTPResponse) -> None:
        self.client.restart()  # the answer gets its own client_seconds
        self.send_response(answer.status, answer.reason)
        for name, value in answer.getheaders():
            if name.lower() not in _HOP_BY_HOP:
                self.send_header(name, value)
        if answer.length is not None:  # else the end of the connection ends the body
            self.send_header("Content-Length", str(answer.length))
        self.end_headers()
        while True:
            try:
                chunk = answer.read(CHUNK_BYTES)
            except (OSError, http.client.HTTPException):
                break  # cut short: the client sees fewer bytes than its Content-Length said
            if not chunk:
                break
            self.wfile.write(chunk)

    def _refuse(self, status: int, detail: str) -> None:
        content = json.dumps({"error": "proxy", "detail": detail}).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(content)))
        self.end_headers()
        self.wfile.write(content)

    def address_string(self) -> str:
        return "the sandbox"  # a unix socket's peer has no address

    def log_message(self, format, *args) -> None:
        pass  # the worker's log is not the run's

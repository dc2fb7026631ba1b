"""Real receivers for alerts: an SMTP server (aiosmtpd) and an HTTP server in this process, and
runs driven to their end through runs.services with celery's tasks run where they are sent."""

import datetime as dt
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest
from aiosmtpd.controller import Controller
from celery.signals import task_failure

import alerts.tasks  # noqa: F401 - loaded, so a task sent by name runs eagerly here
from chalkweb.celery import app as celery_app
from tests.alerts.support import HttpReceiver, MailBox, Received, free_port
from tests.runs.support import finish_run


@pytest.fixture
def loopback_allowed(settings):
    """The receivers below listen on 127.0.0.1, off limits to alerts unless allow-listed."""
    settings.CHALK_ALERT_ALLOWED_NETWORKS = ["127.0.0.1/32"]


@pytest.fixture
def http_receiver(loopback_allowed):
    receiver = HttpReceiver(url="")

    class Handler(BaseHTTPRequestHandler):
        def do_POST(self):
            body = self.rfile.read(int(self.headers.get("Content-Length", 0)))
            receiver.requests.append(Received(self.path, dict(self.headers), body))
            status = receiver.answers.pop(0) if receiver.answers else 200
            self.send_response(status)
            self.send_header("Content-Type", "text/plain")
            self.end_headers()
            self.wfile.write(b"thanks" if status < 400 else b"not now")

        def log_message(self, *args):
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    receiver.url = f"http://127.0.0.1:{server.server_address[1]}"
    # shutdown() waits for serve_forever's next poll: every 0.05 s, not the default 0.5 s.
    thread = threading.Thread(target=server.serve_forever, args=(0.05,), daemon=True)
    thread.start()
    yield receiver
    server.shutdown()
    server.server_close()


@pytest.fixture
def smtp_server(loopback_allowed):
    box = MailBox()
    port = free_port()
    controller = Controller(box, hostname="127.0.0.1", port=port)
    controller.start()
    box.port = port
    yield box
    controller.stop()


@pytest.fixture
def eager_tasks():
    """Tasks run where they are sent. Not propagating: celery raises an eager task's Retry
    instead of running the retry when it propagates; a task that fails fails the test here."""
    failures = []

    def failed(sender=None, exception=None, **_):
        failures.append(f"{sender.name}: {exception!r}")

    task_failure.connect(failed, weak=False)
    celery_app.conf.task_always_eager = True
    yield
    celery_app.conf.task_always_eager = False
    task_failure.disconnect(failed)
    assert failures == []


@pytest.fixture
def end_run(eager_tasks, django_capture_on_commit_callbacks):
    """end_run(function, status, at=…): a manual run claimed, begun and ended through
    runs.services, its commit's callbacks run (so the alert task runs, eagerly, here)."""

    def end(function, status="failed", *, at: dt.datetime, lines=(), error=None):
        with django_capture_on_commit_callbacks(execute=True):
            return finish_run(function, status=status, at=at, lines=lines, error=error)

    return end

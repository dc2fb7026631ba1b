"""gunicorn's settings for Chalkweb's web process outside the embedded default:

    gunicorn --config python:chalkweb.gunicorn_conf chalkweb.wsgi

The same command runs under systemd (deploy/systemd/chalkweb-web.service), in the Kubernetes
image (deploy/kubernetes/) and from `make run` when DATABASE_URL is set. Why gunicorn: it is
pure Python (nothing compiled to trust on each platform), its reload is graceful (SIGHUP starts
new workers and lets the old ones finish their requests), it writes access logs, and
Chalkweb's views are plain synchronous Django, which its threaded workers serve well.

Read from the environment like every setting (chalkweb/env.py: a bad value stops the start):
CHALK_WEB_BIND (default 127.0.0.1:$PORT, PORT 8000), CHALK_WEB_WORKERS (processes, default
2 x CPUs + 1), CHALK_WEB_THREADS (per process, default 4), CHALK_WEB_TIMEOUT_SECONDS (a
request longer than this is killed with its worker, default 60) and
CHALK_WEB_GRACEFUL_SECONDS (how long a stopping worker may finish its requests, default 30).
"""

import os
import sys

from django.core.exceptions import ImproperlyConfigured

from chalkweb.env import env_int, env_str


def _at_least_one(name: str, default: int) -> int:
    value = env_int(name, default)
    if value < 1:
        raise ImproperlyConfigured(f"{name}={value}: use 1 or more")
    return value


bind = [env_str("CHALK_WEB_BIND", f"127.0.0.1:{env_int('PORT', 8000)}")]
workers = _at_least_one("CHALK_WEB_WORKERS", 2 * (os.cpu_count() or 1) + 1)
threads = _at_least_one("CHALK_WEB_THREADS", 4)
worker_class = "gthread"
timeout = _at_least_one("CHALK_WEB_TIMEOUT_SECONDS", 60)
graceful_timeout = _at_least_one("CHALK_WEB_GRACEFUL_SECONDS", 30)
keepalive = 5
# Access log on stdout (journald or the container's log), with the time each request took.
accesslog = "-"
access_log_format = '%(h)s "%(r)s" %(s)s %(b)s %(M)sms "%(a)s"'
errorlog = "-"
# Each worker loads the app itself: a SIGHUP then reloads new code, and a worker never shares
# the parent's database connections.
preload_app = False


def post_worker_init(worker) -> None:
    """A web whose code is older than the database (a newer Chalkweb migrated it) refuses to
    serve: each worker checks once it has loaded Django, and gunicorn then stops with "App
    failed to load" (status 4), the sentence in its log. Checked in the worker, not here in
    the master, which must not import Django: a SIGHUP reload would then keep old code."""
    from django.db import connection
    from gunicorn.arbiter import Arbiter

    from runs.versions import older_than_database

    try:
        sentence = older_than_database()
    finally:
        connection.close()
    if sentence:
        worker.log.error(sentence)
        sys.exit(Arbiter.APP_LOAD_ERROR)  # gunicorn stops the whole server, not just this worker

"""Chalkweb settings, read from the environment.

With nothing set, the embedded default serves: SQLite and a filesystem broker in
CHALK_DATA_DIR, the local executor. Production sets DATABASE_URL, CELERY_BROKER_URL,
CHALK_SECRETS_KEY and DJANGO_SECRET_KEY (see README); with DATABASE_URL set, the keys must be.
"""

import ipaddress
import os
import secrets
from datetime import timedelta
from pathlib import Path
from urllib.parse import urlsplit

import dj_database_url
from cryptography.fernet import Fernet
from django.core.exceptions import ImproperlyConfigured

from chalkcompute.runtime import protocol
from chalkweb.datafolder import private_empty_file, private_file, private_folder
from chalkweb.env import (
    env_bool,
    env_choice,
    env_float,
    env_int,
    env_json_object,
    env_list,
    env_str,
)
from runs.executors.kubernetes.config import KubernetesConfig

BASE_DIR = Path(__file__).resolve().parent.parent
DATA_DIR = Path(env_str("CHALK_DATA_DIR", str(BASE_DIR / ".chalkweb"))).resolve()
private_folder(DATA_DIR)  # 0700: see chalkweb/datafolder.py


def _key_file(name: str, make) -> str:
    """Returns a key kept in DATA_DIR, creating it 0600 on first start (embedded default only)."""
    return private_file(DATA_DIR / name, make)


# With DATABASE_URL set (production) both keys must be given: a key made in one process's data
# folder would differ between replicas and be lost with the container, and with it the secrets
# encrypted under it and every session signed with it.
_KEY_RECIPES = {
    "DJANGO_SECRET_KEY": "python -c 'import secrets; print(secrets.token_urlsafe(50))'",
    "CHALK_SECRETS_KEY": "python -c 'from cryptography.fernet import Fernet; "
    "print(Fernet.generate_key().decode())'",
}
# The embedded default (no DATABASE_URL): SQLite, keys in the data folder, runserver. Anything
# else is production: given keys, and gunicorn for the web (chalkweb/gunicorn_conf.py).
CHALK_EMBEDDED = not env_str("DATABASE_URL").strip()
_MISSING_KEYS = [name for name in _KEY_RECIPES if not env_str(name).strip()]
if _MISSING_KEYS and not CHALK_EMBEDDED:
    raise ImproperlyConfigured(
        f"DATABASE_URL is set, so {' and '.join(_MISSING_KEYS)} must be set too, the same on "
        f"every process (or {' / '.join(f'{name}_FILE' for name in _MISSING_KEYS)} naming a "
        "file that holds it); only the embedded default, without DATABASE_URL, makes its own "
        "keys. Make " + "; ".join(f"{name} with: {_KEY_RECIPES[name]}" for name in _MISSING_KEYS)
    )
SECRET_KEY = env_str("DJANGO_SECRET_KEY").strip() or _key_file(
    "django-secret.key", lambda: secrets.token_urlsafe(50)
)
# Encrypts user secrets at rest. Production must set it (the same on every replica).
CHALK_SECRETS_KEY = env_str("CHALK_SECRETS_KEY").strip() or _key_file(
    "secrets.key", lambda: Fernet.generate_key().decode()
)
DEBUG = env_bool("DJANGO_DEBUG", False)

# The URL users and runners reach this server on; printed by `make run` and the SDK.
CHALK_PUBLIC_URL = env_str("CHALK_PUBLIC_URL", f"http://127.0.0.1:{env_int('PORT', 8000)}")
# The Host names answered (another gets 400, so a forged Host never shows in the links an
# answer builds): by default the public URL's, the runner API URL's and this machine's own,
# which `make run`, health probes and local checks use.
ALLOWED_HOSTS = env_list(
    "DJANGO_ALLOWED_HOSTS",
    [
        f"[{host}]" if ":" in host else host  # an IPv6 address, as Django writes it
        for host in dict.fromkeys(
            (
                urlsplit(CHALK_PUBLIC_URL).hostname,
                urlsplit(env_str("CHALK_RUNNER_SERVER_URL", CHALK_PUBLIC_URL)).hostname,
                "localhost",
                "127.0.0.1",
                "::1",
            )
        )
        if host
    ],
)

# Deployment behind TLS. The server speaks plain HTTP; a proxy in front (an ingress, a load
# balancer) ends TLS. Each default follows CHALK_PUBLIC_URL: on when it is https://, off for the
# embedded default's http://127.0.0.1. Nothing redirects HTTP to HTTPS: runners may reach the
# runner API over an in-cluster http:// address (CHALK_RUNNER_SERVER_URL); the proxy redirects.
_PUBLIC_URL = urlsplit(CHALK_PUBLIC_URL)
_PUBLIC_HTTPS = _PUBLIC_URL.scheme == "https"
# Session and CSRF cookies are sent over HTTPS only.
CHALK_SECURE_COOKIES = env_bool("CHALK_SECURE_COOKIES", _PUBLIC_HTTPS)
SESSION_COOKIE_SECURE = CSRF_COOKIE_SECURE = CHALK_SECURE_COOKIES
# The proxy's `X-Forwarded-Proto: https` marks a request as HTTPS, and the last
# X-Forwarded-For entry is the client's address (sign-in lockouts). Only behind a proxy that
# sets X-Forwarded-Proto and appends X-Forwarded-For: otherwise clients could claim either.
CHALK_BEHIND_TLS_PROXY = env_bool("CHALK_BEHIND_TLS_PROXY", _PUBLIC_HTTPS)
SECURE_PROXY_SSL_HEADER = ("HTTP_X_FORWARDED_PROTO", "https") if CHALK_BEHIND_TLS_PROXY else None
# Strict-Transport-Security on HTTPS answers: browsers refuse plain HTTP to this host for as
# long (a year by default on https://; 0 sends none). Subdomains only when asked.
SECURE_HSTS_SECONDS = env_int("CHALK_HSTS_SECONDS", 365 * 24 * 3600 if _PUBLIC_HTTPS else 0)
SECURE_HSTS_INCLUDE_SUBDOMAINS = env_bool("CHALK_HSTS_INCLUDE_SUBDOMAINS", False)
# Origins whose form posts are accepted (Django checks Origin against the host otherwise); the
# public URL's origin by default.
CSRF_TRUSTED_ORIGINS = env_list(
    "DJANGO_CSRF_TRUSTED_ORIGINS", [f"{_PUBLIC_URL.scheme}://{_PUBLIC_URL.netloc}"]
)
SESSION_COOKIE_HTTPONLY = True
X_FRAME_OPTIONS = "DENY"
SECURE_CONTENT_TYPE_NOSNIFF = True
SECURE_REFERRER_POLICY = "same-origin"
# Content-Security-Policy (django-csp) on every answer: the console loads its scripts and styles
# from static files only, with no inline script, style or event handler; pages must keep it so
# (tests/console/test_browser.py checks every page in Chromium).
CONTENT_SECURITY_POLICY = {
    "DIRECTIVES": {
        "default-src": ["'self'"],
        "script-src": ["'self'"],
        "style-src": ["'self'"],
        "img-src": ["'self'", "data:"],
        "connect-src": ["'self'"],
        "frame-ancestors": ["'none'"],
        "form-action": ["'self'"],
        "base-uri": ["'self'"],
        "object-src": ["'none'"],
    },
}

INSTALLED_APPS = [
    "django.contrib.admin",
    "django.contrib.auth",
    "django.contrib.contenttypes",
    "django.contrib.sessions",
    "django.contrib.messages",
    "django.contrib.staticfiles",
    "rest_framework",
    "drf_spectacular",
    "drf_spectacular_sidecar",
    "django_celery_beat",
    "django_htmx",
    "template_partials",
    "axes",
    "csp",
    "access",
    "scheduling",
    "runs",
    "alerts",
    "health",
    "console",
    "chalkweb",
]

MIDDLEWARE = [
    "django.middleware.security.SecurityMiddleware",
    "whitenoise.middleware.WhiteNoiseMiddleware",
    "csp.middleware.CSPMiddleware",
    "django.contrib.sessions.middleware.SessionMiddleware",
    "django.middleware.common.CommonMiddleware",
    "django.middleware.csrf.CsrfViewMiddleware",
    "django.contrib.auth.middleware.AuthenticationMiddleware",
    "django.contrib.messages.middleware.MessageMiddleware",
    "django.middleware.clickjacking.XFrameOptionsMiddleware",
    "django_htmx.middleware.HtmxMiddleware",
    # Last, as django-axes asks: turns a locked-out sign-in into its 429 page.
    "axes.middleware.AxesMiddleware",
]

ROOT_URLCONF = "chalkweb.urls"
WSGI_APPLICATION = "chalkweb.wsgi.application"

TEMPLATES = [
    {
        "BACKEND": "django.template.backends.django.DjangoTemplates",
        "DIRS": [BASE_DIR / "templates"],
        "APP_DIRS": True,
        "OPTIONS": {
            "context_processors": [
                "django.template.context_processors.request",
                "django.contrib.auth.context_processors.auth",
                "django.contrib.messages.context_processors.messages",
                "console.access.rights",
                "console.platform.platform_banner",
            ],
        },
    },
]

DATABASES = {
    "default": dj_database_url.parse(
        env_str("DATABASE_URL") or f"sqlite:///{DATA_DIR / 'db.sqlite3'}",
        conn_max_age=env_int("CHALK_DB_CONN_MAX_AGE", 60),
    )
}
if DATABASES["default"]["ENGINE"].endswith("sqlite3"):
    # Web, worker and beat share one SQLite file: wait for a lock rather than fail at once.
    DATABASES["default"]["OPTIONS"] = {
        "timeout": 20,
        "transaction_mode": "IMMEDIATE",
        "init_command": "PRAGMA journal_mode=WAL; PRAGMA synchronous=NORMAL;",
    }
    DATABASES["default"]["CONN_MAX_AGE"] = 0
    # Tests start workers in other processes: the SQLite test database must be a file.
    DATABASES["default"]["TEST"] = {"NAME": str(DATA_DIR / "test.sqlite3")}
    if not env_str("DATABASE_URL"):
        private_empty_file(DATA_DIR / "db.sqlite3")  # before SQLite creates it 0644
DEFAULT_AUTO_FIELD = "django.db.models.BigAutoField"

AUTH_PASSWORD_VALIDATORS = [
    {"NAME": "django.contrib.auth.password_validation.MinimumLengthValidator"},
]
LOGIN_URL = "login"
LOGIN_REDIRECT_URL = "/"
LOGOUT_REDIRECT_URL = "login"

# Sign-in lockout (django-axes), on the console's and the admin's login forms; API tokens never
# sign in this way. After CHALK_LOGIN_FAILURE_LIMIT failed sign-ins in a row for one username
# from one address, that username is refused from that address, right password or not, for
# CHALK_LOGIN_LOCKOUT_SECONDS (0: until an admin unlocks it); each try meanwhile restarts the
# wait, a success resets the count. Per username *and* address, so nobody can lock another
# person out from elsewhere. Admins see the counts under Axes in the admin and unlock with
# `manage.py axes_reset_username NAME` (`axes_reset` for everyone) or by deleting the row.
AUTHENTICATION_BACKENDS = [
    "axes.backends.AxesStandaloneBackend",  # first: refuses a locked-out sign-in
    "django.contrib.auth.backends.ModelBackend",
]
CHALK_LOGIN_FAILURE_LIMIT = env_int("CHALK_LOGIN_FAILURE_LIMIT", 5)
CHALK_LOGIN_LOCKOUT_SECONDS = env_int("CHALK_LOGIN_LOCKOUT_SECONDS", 15 * 60)
if CHALK_LOGIN_FAILURE_LIMIT < 1:
    raise ImproperlyConfigured(
        f"CHALK_LOGIN_FAILURE_LIMIT={CHALK_LOGIN_FAILURE_LIMIT}: use 1 or more"
    )
if CHALK_LOGIN_LOCKOUT_SECONDS < 0:
    raise ImproperlyConfigured(
        f"CHALK_LOGIN_LOCKOUT_SECONDS={CHALK_LOGIN_LOCKOUT_SECONDS}: use 0 (until an admin "
        "unlocks) or more seconds"
    )
AXES_FAILURE_LIMIT = CHALK_LOGIN_FAILURE_LIMIT
AXES_COOLOFF_TIME = (
    timedelta(seconds=CHALK_LOGIN_LOCKOUT_SECONDS) if CHALK_LOGIN_LOCKOUT_SECONDS else None
)
AXES_LOCKOUT_PARAMETERS = [["username", "ip_address"]]
AXES_RESET_ON_SUCCESS = True
AXES_ENABLE_ACCESS_FAILURE_LOG = True  # every failure, kept for the admin (1,000 per username)
AXES_CLIENT_IP_CALLABLE = "chalkweb.security.client_ip"
AXES_LOCKOUT_CALLABLE = "chalkweb.security.lockout_response"
AXES_HTTP_RESPONSE_CODE = 429

LANGUAGE_CODE = "en-us"
TIME_ZONE = "UTC"
USE_I18N = False
USE_TZ = True

STATIC_URL = "static/"
STATICFILES_DIRS = [BASE_DIR / "static"]
STATIC_ROOT = DATA_DIR / "static"
private_folder(STATIC_ROOT)
WHITENOISE_USE_FINDERS = True  # serves static without collectstatic in the embedded default

REST_FRAMEWORK = {
    "DEFAULT_SCHEMA_CLASS": "drf_spectacular.openapi.AutoSchema",
    "UNAUTHENTICATED_USER": None,
    # Every /api/v1 endpoint needs a bearer token; a console login does not count.
    "DEFAULT_AUTHENTICATION_CLASSES": ["access.auth.BearerTokenAuthentication"],
    "DEFAULT_PERMISSION_CLASSES": ["access.auth.HasApiToken"],
    "DEFAULT_PARSER_CLASSES": ["common.api.BoundedJSONParser"],
    "DEFAULT_RENDERER_CLASSES": ["rest_framework.renderers.JSONRenderer"],
    "EXCEPTION_HANDLER": "common.api_errors.exception_handler",
    "DEFAULT_PAGINATION_CLASS": "common.api.Pagination",
    "PAGE_SIZE": 100,
}
# The largest module source a deploy may carry, in bytes (UTF-8).
CHALK_MAX_SOURCE_BYTES = env_int("CHALK_MAX_SOURCE_BYTES", 1024 * 1024)
# The most bytes of files a deploy may ship with its code (Image.add_local_*), all together.
CHALK_MAX_FILES_BYTES = env_int("CHALK_MAX_FILES_BYTES", 4 * 1024 * 1024)
SPECTACULAR_SETTINGS = {
    "TITLE": "Chalkweb API",
    "DESCRIPTION": "Deploy, schedule and inspect scheduled Python functions.",
    "VERSION": "1",
    "SERVE_INCLUDE_SCHEMA": False,
    "SWAGGER_UI_DIST": "SIDECAR",
    "SWAGGER_UI_FAVICON_HREF": "SIDECAR",
    "REDOC_DIST": "SIDECAR",
    # 3.1 (JSON Schema) can state the rules on env and tag names (propertyNames).
    "OAS_VERSION": "3.1.0",
    "POSTPROCESSING_HOOKS": [
        "drf_spectacular.hooks.postprocess_schema_enums",
        "common.api.schema_in_openapi_3_1",
    ],
    "ENUM_NAME_OVERRIDES": {
        "RunStatusEnum": "runs.models.RunStatus",
        "AttemptStatusEnum": "runs.models.AttemptStatus",
        "BackfillStatusEnum": "runs.models.BackfillStatus",
        "ChannelKindEnum": "alerts.models.ChannelKind",
    },
}

# Celery. The embedded default uses kombu's filesystem transport: no broker server to run.
CELERY_BROKER_URL = env_str("CELERY_BROKER_URL", "filesystem://")
if CELERY_BROKER_URL.startswith("filesystem://"):
    CELERY_BROKER_TRANSPORT = "chalkweb.broker:Transport"  # kombu's, with atomic writes
    _broker_dir = DATA_DIR / "broker"
    for _folder in (_broker_dir, *(_broker_dir / sub for sub in ("queue", "processed", "control"))):
        private_folder(_folder)
    CELERY_BROKER_TRANSPORT_OPTIONS = {
        "data_folder_in": str(_broker_dir / "queue"),
        "data_folder_out": str(_broker_dir / "queue"),
        "processed_folder": str(_broker_dir / "processed"),
        "control_folder": str(_broker_dir / "control"),
        "store_processed": False,
        "polling_interval": 0.1,
    }
CELERY_TASK_IGNORE_RESULT = True  # outcomes live in the database, not a result backend
CELERY_TASK_ACKS_LATE = True
# Runs are sent ahead of their slot with the slot as ETA; check the ETA schedule often.
CELERY_WORKER_TIMER_PRECISION = 0.1
CELERY_WORKER_PREFETCH_MULTIPLIER = 1
# Puts a task from a newer Chalkweb back in its queue instead of discarding it (runs/worker.py).
CELERY_WORKER_CONSUMER = "runs.worker:VersionCheckingConsumer"
CELERY_BROKER_CONNECTION_RETRY_ON_STARTUP = True
CELERY_BEAT_SCHEDULER = "django_celery_beat.schedulers:DatabaseScheduler"
CELERY_TIMEZONE = "UTC"

LOGGING = {
    "version": 1,
    "disable_existing_loggers": False,
    "formatters": {"plain": {"format": "%(asctime)s %(levelname)s %(name)s %(message)s"}},
    "handlers": {"console": {"class": "logging.StreamHandler", "formatter": "plain"}},
    "root": {"handlers": ["console"], "level": env_str("CHALK_LOG_LEVEL", "INFO")},
    # Failed sign-ins and lockouts are warnings; axes' per-request chatter is not shown.
    "loggers": {"axes": {"level": "WARNING"}},
}

# Running functions.
CHALK_EXECUTOR = env_choice("CHALK_EXECUTOR", ("local", "kubernetes"), "local")
# Where runners reach this server's runner API (pods may need an in-cluster address).
CHALK_RUNNER_SERVER_URL = env_str("CHALK_RUNNER_SERVER_URL", CHALK_PUBLIC_URL)
# Local runs start when their cpu and memory requests fit what is free on the machine
# (runs/executors/local/admission.py): its capacity, overridable here, less what runs already
# hold. A function without requests holds the small defaults. MAX_RUNS is a hard ceiling on
# runs at once per runs worker (its threads).
CHALK_LOCAL_MAX_RUNS = env_int("CHALK_LOCAL_MAX_RUNS", 256)
CHALK_LOCAL_CPU = env_str("CHALK_LOCAL_CPU")  # e.g. "8" or "7500m"; empty: the machine's cores
CHALK_LOCAL_MEMORY = env_str("CHALK_LOCAL_MEMORY")  # e.g. "16Gi"; empty: the machine's memory
CHALK_LOCAL_DEFAULT_CPU = env_str("CHALK_LOCAL_DEFAULT_CPU", "10m")
CHALK_LOCAL_DEFAULT_MEMORY = env_str("CHALK_LOCAL_DEFAULT_MEMORY", "64Mi")
# Seconds of the whole machine one local run's preparation takes (sandbox, network, runner,
# import; bench/burst.py measures it): a slot of N runs is prepared 1 + N x this ahead.
CHALK_LOCAL_PREPARE_SECONDS = env_float("CHALK_LOCAL_PREPARE_SECONDS", 0.25)
# Local runs prepared at once (each from its sandbox's making to its module imported).
CHALK_LOCAL_PREPARE_PARALLEL = env_int("CHALK_LOCAL_PREPARE_PARALLEL", 2 * (os.cpu_count() or 1))
# How long before its slot a Kubernetes attempt's Job is made: its pod has this long to be
# scheduled, pull its image and start its runner, which then waits for the slot.
CHALK_K8S_LOOKAHEAD_SECONDS = env_int("CHALK_K8S_LOOKAHEAD_SECONDS", 30)
# The most any attempt is prepared ahead of its start time (and the tick looks ahead).
CHALK_MAX_PREPARE_SECONDS = env_int("CHALK_MAX_PREPARE_SECONDS", 60)
# The most the tick creates a slot's runs ahead of it (runs/scheduler.py): 5 s for a small
# slot, more for a large one, up to this. At most 60, a schedule's shortest interval, so no
# function ever has two runs waiting for their slots; 5 keeps the fixed five seconds.
CHALK_TICK_MAX_LOOKAHEAD_SECONDS = env_int("CHALK_TICK_MAX_LOOKAHEAD_SECONDS", 60)
if not 5 <= CHALK_TICK_MAX_LOOKAHEAD_SECONDS <= 60:
    raise ImproperlyConfigured(
        f"CHALK_TICK_MAX_LOOKAHEAD_SECONDS={CHALK_TICK_MAX_LOOKAHEAD_SECONDS}: use 5 to 60 (5"
        " keeps the fixed five-second lookahead; more than 60 would let a function that runs"
        " every minute have two runs waiting for their slots)"
    )
# Database connections one runs worker's threads hold at once, at most.
CHALK_WORKER_DB_CONNECTIONS = env_int("CHALK_WORKER_DB_CONNECTIONS", 8)
# Local runs' sandbox (runs/executors/local/sandbox.py): `auto` uses bubblewrap when it works
# on this machine, else runs unsandboxed and says so on every run; `bwrap` requires it (an
# attempt that cannot be sandboxed fails, saying why); `off` runs unsandboxed, still warned.
# Production (DATABASE_URL set) requires the sandbox and its network by default: a missing
# piece refuses runs, with the reason, and the runs worker says so at start; only the embedded
# default, tried on a laptop, falls back to running them unsandboxed (warned).
CHALK_LOCAL_SANDBOX = env_choice(
    "CHALK_LOCAL_SANDBOX", ("auto", "bwrap", "off"), "auto" if CHALK_EMBEDDED else "bwrap"
)
CHALK_LOCAL_BWRAP = env_str("CHALK_LOCAL_BWRAP", "bwrap")  # a path, or a name on PATH
# A sandboxed run's network (runs/executors/local/network.py): `auto` gives each attempt its own
# network namespace, joined to the outside world by slirp4netns, when it works here, else
# shares the worker's network and says so on every run; `isolated` requires it (an attempt
# that cannot have it fails, saying why); `host` shares the worker's network, still warned.
CHALK_LOCAL_NETWORK = env_choice(
    "CHALK_LOCAL_NETWORK", ("auto", "isolated", "host"), "auto" if CHALK_EMBEDDED else "isolated"
)
CHALK_LOCAL_SLIRP4NETNS = env_str("CHALK_LOCAL_SLIRP4NETNS", "slirp4netns")  # a path or a name
# A worker running as root runs each attempt as this uid and gid (nobody/nogroup), never 0.
CHALK_LOCAL_RUN_UID = env_int("CHALK_LOCAL_RUN_UID", 65534)
CHALK_LOCAL_RUN_GID = env_int("CHALK_LOCAL_RUN_GID", CHALK_LOCAL_RUN_UID)
if CHALK_LOCAL_RUN_UID <= 0 or CHALK_LOCAL_RUN_GID <= 0:
    raise ImproperlyConfigured(
        f"CHALK_LOCAL_RUN_UID={CHALK_LOCAL_RUN_UID} / CHALK_LOCAL_RUN_GID={CHALK_LOCAL_RUN_GID}:"
        " runs must not run as root; use an unprivileged uid and gid (65534 is nobody)"
    )
# A run without timeout= stops after this long: a day, so a daily job never outlives its next
# slot and no run holds the cpu and memory admission gave it for ever.
CHALK_RUN_DEFAULT_TIMEOUT_SECONDS = env_int("CHALK_RUN_DEFAULT_TIMEOUT_SECONDS", 86400)
# The processes one sandboxed local run may have at once (the runner counts its PID namespace
# every 0.1 s).
CHALK_RUN_MAX_PROCESSES = env_int("CHALK_RUN_MAX_PROCESSES", 512)
# A local image build's step (pip install, a run_commands line) is stopped after this long,
# whether or not it prints; the venv and the build's folder together stop at this size.
CHALK_BUILD_STEP_TIMEOUT_SECONDS = env_int("CHALK_BUILD_STEP_TIMEOUT_SECONDS", 1800)
CHALK_LOCAL_IMAGE_MAX_SIZE = env_str("CHALK_LOCAL_IMAGE_MAX_SIZE", "8Gi")
# Wake-up messages sent per start time: at most this many workers pull attempts at once.
CHALK_DISPATCH_PARALLELISM = env_int("CHALK_DISPATCH_PARALLELISM", CHALK_LOCAL_MAX_RUNS)
# After downtime, the latest missed slot still runs if it is at most this old.
CHALK_CATCH_UP_SECONDS = env_int("CHALK_CATCH_UP_SECONDS", 3600)
# A backfill (runs/backfills.py) that would run more slots than this is confirmed first; one
# whose range holds more slots than MAX is refused.
CHALK_BACKFILL_CONFIRM_SLOTS = env_int("CHALK_BACKFILL_CONFIRM_SLOTS", 100)
CHALK_BACKFILL_MAX_SLOTS = env_int("CHALK_BACKFILL_MAX_SLOTS", 10_000)
# Runners beat every second; this much silence means the worker or node is gone.
CHALK_HEARTBEAT_TIMEOUT_SECONDS = env_int("CHALK_HEARTBEAT_TIMEOUT_SECONDS", 30)
# A queued attempt still waiting this long after its start time is sent to a worker again.
CHALK_REDISPATCH_SECONDS = env_int("CHALK_REDISPATCH_SECONDS", 60)
# Retries that do not count against the user's: evictions, node shutdowns.
CHALK_MAX_INTERRUPTIONS = env_int("CHALK_MAX_INTERRUPTIONS", 3)
CHALK_MAX_LOG_BYTES = env_int("CHALK_MAX_LOG_BYTES", protocol.DEFAULT_MAX_LOG_BYTES)
# The most Django reads of a request body (its own default): the runner API's bound, which the
# runner keeps its heartbeats within.
DATA_UPLOAD_MAX_MEMORY_SIZE = protocol.MAX_REQUEST_BYTES
CHALK_RUN_RETENTION_DAYS = env_int("CHALK_RUN_RETENTION_DAYS", 30)
# Audit events (who did what) are kept this long; by default as long as runs.
CHALK_AUDIT_RETENTION_DAYS = env_int("CHALK_AUDIT_RETENTION_DAYS", CHALK_RUN_RETENTION_DAYS)
# /metrics: set, a scraper must send `Authorization: Bearer <token>`; empty, it is open (for a
# scraper on a private network; it shows function names and counts, never code or secrets).
CHALK_METRICS_TOKEN = env_str("CHALK_METRICS_TOKEN")
# What /metrics shows: each app's collector (a class made per scrape with `now`, whose
# collect() yields metric families), named here so health/metrics.py imports no app above it.
METRICS_COLLECTORS = [
    "health.metrics.PlatformCollector",
    "alerts.metrics.DeliveryCollector",
]

# Runs go to their own queue so long runs never hold up the tick and the reaper.
CELERY_TASK_DEFAULT_QUEUE = "chalk-control"
CELERY_TASK_ROUTES = {
    "runs.tasks.run_due_attempts": {"queue": "chalk-runs"},
    "runs.tasks.build_image": {"queue": "chalk-runs"},  # a local image is a runs worker's venv
    "alerts.tasks.*": {"queue": "chalk-control"},  # alerts never wait behind runs
}
# Alerts (alerts/rules.py): the rules of every function whose code does not set its own
# (`alerts=chalkcompute.Alerts(...)`). A failing function alerts once, after this many failed
# runs in a row, then reminds at most this often while it keeps failing (or stays late), and
# says "recovered" once. A slot whose run has not started this long after it is late (the dead
# man: workers down, queue stuck); a run still running this long after it started alerts;
# skipped slots alert when ON_SKIP is on. 0 turns a duration rule off.
CHALK_ALERT_REMIND_SECONDS = env_int("CHALK_ALERT_REMIND_SECONDS", 3600)
CHALK_ALERT_AFTER_FAILURES = env_int("CHALK_ALERT_AFTER_FAILURES", 1)
CHALK_ALERT_ON_RECOVERY = env_bool("CHALK_ALERT_ON_RECOVERY", True)
CHALK_ALERT_LATE_AFTER_SECONDS = env_int("CHALK_ALERT_LATE_AFTER_SECONDS", 300)
CHALK_ALERT_RUNNING_AFTER_SECONDS = env_int("CHALK_ALERT_RUNNING_AFTER_SECONDS", 0)
CHALK_ALERT_ON_SKIP = env_bool("CHALK_ALERT_ON_SKIP", False)
# Deliveries (what was sent to each channel, and its answer) are kept this long.
CHALK_ALERT_RETENTION_DAYS = env_int("CHALK_ALERT_RETENTION_DAYS", CHALK_RUN_RETENTION_DAYS)
# Alert channels never reach loopback, private, link-local, multicast or cloud metadata
# addresses (alerts/destinations.py), except those inside these networks (CIDR, comma-separated,
# e.g. "10.20.0.0/16,127.0.0.1/32"); a metadata address only when listed on its own.
CHALK_ALERT_ALLOWED_NETWORKS = env_list("CHALK_ALERT_ALLOWED_NETWORKS", [])
for _network in CHALK_ALERT_ALLOWED_NETWORKS:
    try:
        ipaddress.ip_network(_network, strict=False)
    except ValueError:
        raise ImproperlyConfigured(
            f"CHALK_ALERT_ALLOWED_NETWORKS: {_network!r} is not a network; use CIDR such as "
            "10.0.0.0/8 or 127.0.0.1/32, comma-separated"
        ) from None

# Kubernetes executor. runs/executors/kubernetes/executor.py turns these into its
# KubernetesConfig, whose defaults are these settings' defaults (one source: the pure
# manifest and outcome tests build it without settings); deploy/kubernetes/README.md says
# when to set which.
# How the server reaches the API server, first match wins: CHALK_K8S_API_URL (a plain URL
# with no credentials: `kubectl proxy`, the tests' fake), the in-cluster service account when
# KUBERNETES_SERVICE_HOST is set (a pod), else a kubeconfig (CHALK_K8S_KUBECONFIG, or
# $KUBECONFIG / ~/.kube/config) and its CHALK_K8S_CONTEXT or current context.
CHALK_K8S_API_URL = env_str("CHALK_K8S_API_URL")
CHALK_K8S_KUBECONFIG = env_str("CHALK_K8S_KUBECONFIG")
CHALK_K8S_CONTEXT = env_str("CHALK_K8S_CONTEXT")
CHALK_K8S_NAMESPACE = env_str("CHALK_K8S_NAMESPACE", KubernetesConfig.namespace)
CHALK_K8S_RUN_SERVICE_ACCOUNT = env_str(
    "CHALK_K8S_RUN_SERVICE_ACCOUNT", KubernetesConfig.run_service_account
)
# Images: built once per spec and pushed to CHALK_K8S_REGISTRY ("registry.example.com/team"),
# or, with no registry and this explicit opt-in, installed by every run as it starts.
CHALK_K8S_REGISTRY = env_str("CHALK_K8S_REGISTRY")
CHALK_K8S_REGISTRY_SECRET = env_str("CHALK_K8S_REGISTRY_SECRET")
CHALK_K8S_REGISTRY_INSECURE = env_bool("CHALK_K8S_REGISTRY_INSECURE", False)
CHALK_K8S_INSTALL_AT_START = env_bool("CHALK_K8S_INSTALL_AT_START", False)
# GPU type -> {"node_selector": {label: value}, "tolerations": [toleration, ...]}. Replaces the
# built-in map (GKE accelerators, Karpenter on AWS) as a whole.
CHALK_K8S_GPU_NODE_SELECTORS = env_json_object(
    "CHALK_K8S_GPU_NODE_SELECTORS",
    value_keys=("node_selector", "tolerations"),
    example='{"node_selector": {"cloud.google.com/gke-accelerator": "nvidia-l4"}}',
)
# Python version -> "sha256:…" digest of its python:<version>-slim-trixie base image.
CHALK_K8S_BASE_IMAGE_DIGESTS = env_json_object("CHALK_K8S_BASE_IMAGE_DIGESTS") or {}
# How long a pod may wait for a node, and for its image, before the attempt fails.
CHALK_K8S_PENDING_TIMEOUT_SECONDS = env_int(
    "CHALK_K8S_PENDING_TIMEOUT_SECONDS", KubernetesConfig.pending_timeout_seconds
)
CHALK_K8S_IMAGE_PULL_GRACE_SECONDS = env_int(
    "CHALK_K8S_IMAGE_PULL_GRACE_SECONDS", KubernetesConfig.image_pull_grace_seconds
)
# Finished Jobs (and their pods' logs) stay this long for `kubectl` before Kubernetes deletes
# them; the reconcile pass reads what it needs within seconds.
CHALK_K8S_JOB_TTL_SECONDS = env_int(
    "CHALK_K8S_JOB_TTL_SECONDS", KubernetesConfig.ttl_seconds_after_finished
)

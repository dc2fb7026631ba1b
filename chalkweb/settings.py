"""Chalkweb settings, read from the environment.

With nothing set, the embedded default serves: SQLite and a filesystem broker in
CHALK_DATA_DIR, the local executor. Production sets DATABASE_URL, CELERY_BROKER_URL and
CHALK_SECRETS_KEY (see README).
"""

import secrets
from pathlib import Path

import dj_database_url
from cryptography.fernet import Fernet

from chalkweb.env import ImproperlyConfiguredEnv, env_bool, env_int, env_list, env_str

BASE_DIR = Path(__file__).resolve().parent.parent
DATA_DIR = Path(env_str("CHALK_DATA_DIR", str(BASE_DIR / ".chalkweb"))).resolve()
DATA_DIR.mkdir(parents=True, exist_ok=True)


def _key_file(name: str, make) -> str:
    """Returns a key kept in DATA_DIR, creating it on first start (embedded default only)."""
    path = DATA_DIR / name
    if not path.exists():
        path.write_text(make())
        path.chmod(0o600)
    return path.read_text().strip()


SECRET_KEY = env_str("DJANGO_SECRET_KEY") or _key_file(
    "django-secret.key", lambda: secrets.token_urlsafe(50)
)
# Encrypts user secrets at rest. Production must set it (the same on every replica).
CHALK_SECRETS_KEY = env_str("CHALK_SECRETS_KEY") or _key_file(
    "secrets.key", lambda: Fernet.generate_key().decode()
)
DEBUG = env_bool("DJANGO_DEBUG", False)
ALLOWED_HOSTS = env_list("DJANGO_ALLOWED_HOSTS", ["*"])
CSRF_TRUSTED_ORIGINS = env_list("DJANGO_CSRF_TRUSTED_ORIGINS", [])

# The URL users and runners reach this server on; printed by `make run` and the SDK.
CHALK_PUBLIC_URL = env_str("CHALK_PUBLIC_URL", f"http://127.0.0.1:{env_int('PORT', 8000)}")

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
    "scheduling",
    "runs",
    "console",
    "chalkweb",
]

MIDDLEWARE = [
    "django.middleware.security.SecurityMiddleware",
    "whitenoise.middleware.WhiteNoiseMiddleware",
    "django.contrib.sessions.middleware.SessionMiddleware",
    "django.middleware.common.CommonMiddleware",
    "django.middleware.csrf.CsrfViewMiddleware",
    "django.contrib.auth.middleware.AuthenticationMiddleware",
    "django.contrib.messages.middleware.MessageMiddleware",
    "django.middleware.clickjacking.XFrameOptionsMiddleware",
    "django_htmx.middleware.HtmxMiddleware",
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
DEFAULT_AUTO_FIELD = "django.db.models.BigAutoField"

AUTH_PASSWORD_VALIDATORS = [
    {"NAME": "django.contrib.auth.password_validation.MinimumLengthValidator"},
]
LOGIN_URL = "login"
LOGIN_REDIRECT_URL = "/"
LOGOUT_REDIRECT_URL = "login"

LANGUAGE_CODE = "en-us"
TIME_ZONE = "UTC"
USE_I18N = False
USE_TZ = True

STATIC_URL = "static/"
STATICFILES_DIRS = [BASE_DIR / "static"]
STATIC_ROOT = DATA_DIR / "static"
STATIC_ROOT.mkdir(exist_ok=True)
WHITENOISE_USE_FINDERS = True  # serves static without collectstatic in the embedded default

REST_FRAMEWORK = {
    "DEFAULT_SCHEMA_CLASS": "drf_spectacular.openapi.AutoSchema",
    "UNAUTHENTICATED_USER": None,
    # Every /api/v1 endpoint needs a bearer token; a console login does not count.
    "DEFAULT_AUTHENTICATION_CLASSES": ["scheduling.auth.BearerTokenAuthentication"],
    "DEFAULT_PERMISSION_CLASSES": ["scheduling.auth.HasApiToken"],
    "DEFAULT_PARSER_CLASSES": ["common.api.BoundedJSONParser"],
    "DEFAULT_RENDERER_CLASSES": ["rest_framework.renderers.JSONRenderer"],
    "EXCEPTION_HANDLER": "common.api_errors.exception_handler",
    "DEFAULT_PAGINATION_CLASS": "common.api.Pagination",
    "PAGE_SIZE": 100,
}
# The largest module source a deploy may carry, in bytes (UTF-8).
CHALK_MAX_SOURCE_BYTES = env_int("CHALK_MAX_SOURCE_BYTES", 1024 * 1024)
SPECTACULAR_SETTINGS = {
    "TITLE": "Chalkweb API",
    "DESCRIPTION": "Deploy, schedule and inspect scheduled Python functions.",
    "VERSION": "1",
    "SERVE_INCLUDE_SCHEMA": False,
    "SWAGGER_UI_DIST": "SIDECAR",
    "SWAGGER_UI_FAVICON_HREF": "SIDECAR",
    "REDOC_DIST": "SIDECAR",
    "ENUM_NAME_OVERRIDES": {
        "RunStatusEnum": "runs.models.RunStatus",
        "AttemptStatusEnum": "runs.models.AttemptStatus",
    },
}

# Celery. The embedded default uses kombu's filesystem transport: no broker server to run.
CELERY_BROKER_URL = env_str("CELERY_BROKER_URL", "filesystem://")
if CELERY_BROKER_URL.startswith("filesystem://"):
    CELERY_BROKER_TRANSPORT = "chalkweb.broker:Transport"  # kombu's, with atomic writes
    _broker_dir = DATA_DIR / "broker"
    for _sub in ("queue", "processed", "control"):
        (_broker_dir / _sub).mkdir(parents=True, exist_ok=True)
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
CELERY_BROKER_CONNECTION_RETRY_ON_STARTUP = True
CELERY_BEAT_SCHEDULER = "django_celery_beat.schedulers:DatabaseScheduler"
CELERY_TIMEZONE = "UTC"

LOGGING = {
    "version": 1,
    "disable_existing_loggers": False,
    "formatters": {"plain": {"format": "%(asctime)s %(levelname)s %(name)s %(message)s"}},
    "handlers": {"console": {"class": "logging.StreamHandler", "formatter": "plain"}},
    "root": {"handlers": ["console"], "level": env_str("CHALK_LOG_LEVEL", "INFO")},
}

# Running functions.
CHALK_EXECUTOR = env_str("CHALK_EXECUTOR", "local")
if CHALK_EXECUTOR not in ("local", "kubernetes"):
    raise ImproperlyConfiguredEnv(f"CHALK_EXECUTOR={CHALK_EXECUTOR!r}: use local or kubernetes")
# Where runners reach this server's runner API (pods may need an in-cluster address).
CHALK_RUNNER_SERVER_URL = env_str("CHALK_RUNNER_SERVER_URL", CHALK_PUBLIC_URL)
CHALK_LOCAL_MAX_RUNS = env_int("CHALK_LOCAL_MAX_RUNS", 4)
# Wake-up messages sent per start time: at most this many workers pull attempts at once.
CHALK_DISPATCH_PARALLELISM = env_int("CHALK_DISPATCH_PARALLELISM", CHALK_LOCAL_MAX_RUNS)
# After downtime, the latest missed slot still runs if it is at most this old.
CHALK_CATCH_UP_SECONDS = env_int("CHALK_CATCH_UP_SECONDS", 3600)
# Runners beat every second; this much silence means the worker or node is gone.
CHALK_HEARTBEAT_TIMEOUT_SECONDS = env_int("CHALK_HEARTBEAT_TIMEOUT_SECONDS", 30)
# A queued attempt still waiting this long after its start time is sent to a worker again.
CHALK_REDISPATCH_SECONDS = env_int("CHALK_REDISPATCH_SECONDS", 60)
# Retries that do not count against the user's: evictions, node shutdowns.
CHALK_MAX_INTERRUPTIONS = env_int("CHALK_MAX_INTERRUPTIONS", 3)
CHALK_MAX_LOG_BYTES = env_int("CHALK_MAX_LOG_BYTES", 10_000_000)
CHALK_RUN_RETENTION_DAYS = env_int("CHALK_RUN_RETENTION_DAYS", 30)

# Runs go to their own queue so long runs never hold up the tick and the reaper.
CELERY_TASK_DEFAULT_QUEUE = "chalk-control"
CELERY_TASK_ROUTES = {"runs.tasks.run_due_attempts": {"queue": "chalk-runs"}}
if DATABASES["default"]["ENGINE"].endswith("sqlite3"):
    # Tests start workers in other processes: the SQLite test database must be a file.
    DATABASES["default"]["TEST"] = {"NAME": str(DATA_DIR / "test.sqlite3")}

# Kubernetes executor. runs/executors/kubernetes/executor.py turns these into its
# KubernetesConfig; deploy/kubernetes/README.md says when to set which.
# How the server reaches the API server, first match wins: CHALK_K8S_API_URL (a plain URL
# with no credentials: `kubectl proxy`, the tests' fake), the in-cluster service account when
# KUBERNETES_SERVICE_HOST is set (a pod), else a kubeconfig (CHALK_K8S_KUBECONFIG, or
# $KUBECONFIG / ~/.kube/config) and its CHALK_K8S_CONTEXT or current context.
CHALK_K8S_API_URL = env_str("CHALK_K8S_API_URL")
CHALK_K8S_KUBECONFIG = env_str("CHALK_K8S_KUBECONFIG")
CHALK_K8S_CONTEXT = env_str("CHALK_K8S_CONTEXT")
CHALK_K8S_NAMESPACE = env_str("CHALK_K8S_NAMESPACE", "chalkweb-runs")
CHALK_K8S_RUN_SERVICE_ACCOUNT = env_str("CHALK_K8S_RUN_SERVICE_ACCOUNT", "chalkweb-run")
# Images: built once per spec and pushed to CHALK_K8S_REGISTRY ("registry.example.com/team"),
# or, with no registry and this explicit opt-in, installed by every run as it starts.
CHALK_K8S_REGISTRY = env_str("CHALK_K8S_REGISTRY")
CHALK_K8S_REGISTRY_SECRET = env_str("CHALK_K8S_REGISTRY_SECRET")
CHALK_K8S_REGISTRY_INSECURE = env_bool("CHALK_K8S_REGISTRY_INSECURE", False)
CHALK_K8S_INSTALL_AT_START = env_bool("CHALK_K8S_INSTALL_AT_START", False)


def _env_json_object(name: str) -> dict | None:
    import json

    raw = env_str(name).strip()
    if not raw:
        return None
    try:
        value = json.loads(raw)
    except ValueError as exc:
        raise ImproperlyConfiguredEnv(f"{name} is not valid JSON: {exc}") from None
    if not isinstance(value, dict):
        raise ImproperlyConfiguredEnv(f"{name} must be a JSON object, not {type(value).__name__}")
    return value


# GPU type -> {"node_selector": {label: value}, "tolerations": [toleration, ...]}. Replaces the
# built-in map (GKE accelerators, Karpenter on AWS) as a whole.
CHALK_K8S_GPU_NODE_SELECTORS = _env_json_object("CHALK_K8S_GPU_NODE_SELECTORS")
for _gpu_type, _placement in (CHALK_K8S_GPU_NODE_SELECTORS or {}).items():
    if not isinstance(_placement, dict) or not set(_placement) <= {"node_selector", "tolerations"}:
        raise ImproperlyConfiguredEnv(
            f"CHALK_K8S_GPU_NODE_SELECTORS[{_gpu_type!r}] must be an object with only "
            '"node_selector" and "tolerations", e.g. {"node_selector": '
            '{"cloud.google.com/gke-accelerator": "nvidia-l4"}}'
        )
# Python version -> "sha256:…" digest of its python:<version>-slim-trixie base image.
CHALK_K8S_BASE_IMAGE_DIGESTS = _env_json_object("CHALK_K8S_BASE_IMAGE_DIGESTS") or {}
# How long a pod may wait for a node, and for its image, before the attempt fails.
CHALK_K8S_PENDING_TIMEOUT_SECONDS = env_int("CHALK_K8S_PENDING_TIMEOUT_SECONDS", 300)
CHALK_K8S_IMAGE_PULL_GRACE_SECONDS = env_int("CHALK_K8S_IMAGE_PULL_GRACE_SECONDS", 120)
# Finished Jobs (and their pods' logs) stay this long for `kubectl` before Kubernetes deletes
# them; the reconcile pass reads what it needs within seconds.
CHALK_K8S_JOB_TTL_SECONDS = env_int("CHALK_K8S_JOB_TTL_SECONDS", 3600)

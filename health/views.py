"""/metrics (Prometheus) and /readyz (readiness); /healthz stays in chalkweb.views, a
liveness probe that touches nothing."""

import hmac

from celery import current_app
from django.conf import settings
from django.db import connection
from django.http import HttpResponse, JsonResponse
from django.utils import timezone
from django.views.decorators.http import require_GET
from prometheus_client import CONTENT_TYPE_LATEST

from chalkcompute.version import VERSION
from common.crypto import key_problem
from common.database import (
    newer_migrations_applied,
    not_migrated_sentence,
    older_than_database_sentence,
    pending_migrations,
)
from health import metrics
from health.state import (
    READY_TICK_AGE,
    READY_WORKER_AGE,
    PlatformState,
    periodic_task_problems,
)

BROKER_TIMEOUT_SECONDS = 2


@require_GET
def metrics_view(request):
    """Open when CHALK_METRICS_TOKEN is empty; otherwise `Authorization: Bearer <token>`."""
    token = settings.CHALK_METRICS_TOKEN
    if token:
        given = request.headers.get("Authorization", "")
        if not hmac.compare_digest(given.encode(), f"Bearer {token}".encode()):
            response = HttpResponse("a metrics token is required\n", status=401)
            response["WWW-Authenticate"] = 'Bearer realm="metrics"'
            return response
    return HttpResponse(metrics.render(), content_type=CONTENT_TYPE_LATEST)


def _database() -> dict:
    try:
        with connection.cursor() as cursor:
            cursor.execute("SELECT 1")
        return {"ok": True}
    except Exception as exc:
        return {"ok": False, "error": f"{type(exc).__name__}: {exc}"[:500]}


def _migrations() -> dict:
    """This web's code and the database agree: not behind it (migrate), nor ahead of it (a
    newer Chalkweb migrated it: this machine needs the upgrade)."""
    pending = pending_migrations()
    if pending:
        return {"ok": False, "pending": pending, "error": not_migrated_sentence(pending)}
    newer = newer_migrations_applied()
    if newer:
        return {"ok": False, "newer": newer, "error": older_than_database_sentence(VERSION, newer)}
    return {"ok": True}


def _broker() -> dict:
    try:  # chalkweb's app (chalkweb/__init__.py), as runs.dispatch sends with it
        with current_app.connection_for_read(connect_timeout=BROKER_TIMEOUT_SECONDS) as conn:
            conn.ensure_connection(max_retries=1, interval_start=0, timeout=BROKER_TIMEOUT_SECONDS)
        return {"ok": True}
    except Exception as exc:
        return {"ok": False, "error": f"{type(exc).__name__}: {exc}"[:500]}


def _age(moment, now) -> dict:
    if moment is None:
        return {"last_seen": None, "age_seconds": None}
    return {
        "last_seen": moment.isoformat(),
        "age_seconds": round((now - moment).total_seconds(), 1),
    }


@require_GET
def readyz(request):
    """200 when the database and the broker answer, the database is migrated to this code (not
    behind it, not ahead), beat ticked in the last 10 s, a runs worker was seen in the last
    30 s, the platform's periodic tasks are in place and the secrets key decrypts what is
    stored; 503 otherwise. The JSON names each check. `versions` says which workers and beats
    run another Chalkweb than this web: said, never a reason to be unready, since taking every
    web out of a load balancer for one lagging worker would turn the lag into an outage."""
    now = timezone.now()
    versions = {"this": VERSION, "others": []}
    checks = {"database": _database(), "broker": _broker()}
    if checks["database"]["ok"]:
        checks["migrations"] = _migrations()
    if checks["database"]["ok"] and checks["migrations"]["ok"]:
        state = PlatformState.read(now=now)
        versions["others"] = state.other_versions()
        tick = state.tick.seen_at if state.tick else None
        checks["beat"] = {
            "ok": state.tick_fresh(READY_TICK_AGE),
            "max_age_seconds": READY_TICK_AGE.total_seconds(),
            **_age(tick, now),
        }
        checks["runs_worker"] = {
            "ok": state.runs_worker_fresh(READY_WORKER_AGE),
            "max_age_seconds": READY_WORKER_AGE.total_seconds(),
            **_age(state.last_runs_worker(), now),
            "workers": [w.name for w in state.workers if w.component == "runs-worker"
                        and now - w.seen_at <= READY_WORKER_AGE],
        }  # fmt: skip
        problems = periodic_task_problems(now=now)
        checks["periodic_tasks"] = {"ok": not problems, "problems": problems}
        problem = key_problem()
        checks["secrets_key"] = {"ok": problem is None, **({"error": problem} if problem else {})}
    else:
        unknown = {"ok": False, "error": "the database does not answer"}
        if checks["database"]["ok"]:
            unknown = {"ok": False, "error": "the database is not migrated"}
        checks.setdefault("migrations", unknown)
        for name in ("beat", "runs_worker", "periodic_tasks", "secrets_key"):
            checks[name] = unknown
    ready = all(check["ok"] for check in checks.values())
    failed = [name for name, check in checks.items() if not check["ok"]]
    return JsonResponse(
        {
            "status": "ok" if ready else "unavailable",
            "failed": failed,
            "checks": checks,
            "versions": versions,
        },
        status=200 if ready else 503,
    )

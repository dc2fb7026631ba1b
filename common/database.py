"""Whether the database and this code agree on the schema, both ways. A web or worker of a new
version started before `manage.py migrate` says so in words (/readyz, the API's JSON errors)
instead of answering 500 with a ProgrammingError; a process whose code is older than the
database (another machine's newer Chalkweb migrated it) refuses to run beside it."""

import functools
from pathlib import Path

from django.apps import apps
from django.conf import settings
from django.db import DEFAULT_DB_ALIAS, DatabaseError, connections
from django.db.migrations.executor import MigrationExecutor
from django.db.migrations.loader import MigrationLoader
from django.db.migrations.recorder import MigrationRecorder

# The exit status of a process that refuses to run beside a database newer than its code
# (sysexits' EX_CONFIG): a supervisor can tell it from a crash and stop restarting it.
EXIT_OLDER_THAN_DATABASE = 78

_migrated: set[str] = set()  # once migrated, a process stays so: checked once, not per request


def pending_migrations(using: str = DEFAULT_DB_ALIAS) -> list[str]:
    """The migrations this code has that the database lacks ("runs.0004_…"), in order."""
    if using in _migrated:
        return []
    executor = MigrationExecutor(connections[using])
    plan = executor.migration_plan(executor.loader.graph.leaf_nodes())
    pending = [f"{migration.app_label}.{migration.name}" for migration, _ in plan]
    if not pending:
        _migrated.add(using)
    return pending


def not_migrated_sentence(pending: list[str]) -> str:
    more = f" and {len(pending) - 3} more" if len(pending) > 3 else ""
    return (
        f"the database is not migrated to this Chalkweb version ({len(pending)} migration(s) "
        f"not applied: {', '.join(pending[:3])}{more}); run `manage.py migrate`"
    )


@functools.cache
def _own_apps() -> frozenset[str]:
    """Chalkweb's own apps (access, scheduling, runs...), the packages of this repository. Only
    their migrations tell an older Chalkweb from a newer one: a third-party package may drop
    migrations it squashed, and their rows must not make the newest code refuse its database."""
    return frozenset(
        config.label
        for config in apps.get_app_configs()
        if Path(config.path).parent == settings.BASE_DIR
    )


@functools.cache
def _code_migrations() -> tuple[frozenset[tuple[str, str]], tuple[str, ...]]:
    """Read from disk once per process: every migration of Chalkweb's own apps this code knows
    (a squashed one's replaced names included) and the newest of each."""
    own = _own_apps()
    loader = MigrationLoader(None, ignore_no_migrations=True)
    known = set()
    for key, migration in loader.disk_migrations.items():
        known.add(key)
        known.update(migration.replaces)
    leaves = sorted(f"{app}.{name}" for app, name in loader.graph.leaf_nodes() if app in own)
    return frozenset(key for key in known if key[0] in own), tuple(leaves)


def code_migrations() -> list[str]:
    """The newest migration of each app in this code ("runs.0011_finished_runs", ...): what a
    process's heartbeat and its tasks' messages say it was built with."""
    return list(_code_migrations()[1])


def unknown_migrations(names) -> list[str]:
    """Of `names` ("app.migration"), those of Chalkweb's own apps that this code does not know:
    a newer Chalkweb made them."""
    own, known = _own_apps(), _code_migrations()[0]
    keys = (tuple(name.split(".", 1)) for name in names)
    return sorted(".".join(key) for key in keys if key[0] in own and key not in known)


def newer_migrations_applied(using: str = DEFAULT_DB_ALIAS) -> list[str]:
    """The migrations applied to the database that this code does not know: a newer Chalkweb
    migrated it, and this code is older than the database. Empty while the database does not
    answer (/readyz says that) or has no migrations table yet. One small query (the
    django_migrations rows): cheap enough for every heartbeat. Migrations are never deleted or
    renamed (README, "Releases"), so every name an older release applied is known here."""
    try:
        applied = MigrationRecorder(connections[using]).applied_migrations()
    except DatabaseError:
        return []
    return unknown_migrations(f"{app}.{name}" for app, name in applied)


def older_than_database_sentence(version: str, newer: list[str]) -> str:
    more = f" and {len(newer) - 3} more" if len(newer) > 3 else ""
    return (
        f"this machine's Chalkweb {version} is older than its database: a newer Chalkweb "
        f"applied {len(newer)} migration(s) this code does not know ({', '.join(newer[:3])}"
        f"{more}); upgrade this machine's Chalkweb (git pull && make install) and start it again"
    )

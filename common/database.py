"""Whether the database is migrated to this code: a web or worker of a new version started
before `manage.py migrate` says so in words (/readyz, the API's JSON errors) instead of
answering 500 with a ProgrammingError."""

from django.db import DEFAULT_DB_ALIAS, connections
from django.db.migrations.executor import MigrationExecutor

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

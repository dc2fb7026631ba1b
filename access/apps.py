from django.apps import AppConfig
from django.db.models.signals import post_migrate


class AccessConfig(AppConfig):
    name = "access"
    verbose_name = "Access"

    def ready(self) -> None:
        from access import signals  # noqa: F401 - sign-ins reach the audit trail

        post_migrate.connect(_ensure_roles, sender=self)


def _ensure_roles(**_) -> None:
    # Migration 0002 makes the roles; this keeps them after a flush (which empties every
    # table, and then sends post_migrate) and gives a right added later to its roles.
    from access.services import ensure_roles

    ensure_roles()

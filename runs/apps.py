from django.apps import AppConfig
from django.db.models.signals import post_migrate


class RunsConfig(AppConfig):
    name = "runs"
    verbose_name = "Runs"

    def ready(self) -> None:
        post_migrate.connect(_ensure_periodic_tasks, sender=self)


def _ensure_periodic_tasks(**_) -> None:
    """After every `manage.py migrate` (and `flush`), whatever it applied: the platform's
    periodic tasks exist, on an install of any history."""
    from runs.beat import ensure_periodic_tasks

    ensure_periodic_tasks()

import os

from celery import Celery

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "chalkweb.settings")

app = Celery("chalkweb")
app.config_from_object("django.conf:settings", namespace="CELERY")
app.autodiscover_tasks()


def purge_queues() -> None:
    """Empties Chalkweb's queues (benchmarks and process tests start from nothing)."""
    with app.connection_for_write() as connection:
        channel = connection.default_channel
        for queue in ("chalk-control", "chalk-runs"):
            channel.queue_declare(queue=queue, durable=True, auto_delete=False)
            channel.queue_purge(queue)

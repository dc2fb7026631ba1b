"""`python manage.py watch_kubernetes`: records Kubernetes runs' outcomes as they happen."""

import threading

from django.conf import settings
from django.core.management.base import BaseCommand, CommandError

from common.database import EXIT_OLDER_THAN_DATABASE
from runs.versions import older_than_database


class Command(BaseCommand):
    help = (
        "Follows the attempt Jobs on the cluster and records each change as Kubernetes reports "
        "it (see runs/executors/kubernetes/watcher.py). Runs until stopped."
    )

    def add_arguments(self, parser) -> None:
        parser.add_argument(
            "--watch-seconds",
            type=int,
            default=None,
            help="how long each watch request lasts before it is renewed (default 240)",
        )

    def handle(self, *args, watch_seconds: int | None, **options) -> None:
        if settings.CHALK_EXECUTOR != "kubernetes":
            raise CommandError(
                f"CHALK_EXECUTOR is {settings.CHALK_EXECUTOR!r}: the watcher follows runs on "
                "Kubernetes only; set CHALK_EXECUTOR=kubernetes"
            )
        if watch_seconds is not None and watch_seconds < 1:
            raise CommandError("--watch-seconds must be at least 1")
        refusal = older_than_database()  # it would record outcomes with an older code's rules
        if refusal:
            raise CommandError(refusal, returncode=EXIT_OLDER_THAN_DATABASE)
        # Imported here: `manage.py help` must not load the Kubernetes client.
        from runs.executors.kubernetes.watcher import WATCH_SECONDS, watch

        self.stdout.write(f"Watching the attempt Jobs in namespace {settings.CHALK_K8S_NAMESPACE}")
        self.stdout.flush()
        # SIGTERM ends the process where it stands: every change is recorded in a transaction
        # of its own, and what a stopped watcher missed the reconcile pass records.
        watch(threading.Event(), watch_seconds=watch_seconds or WATCH_SECONDS)

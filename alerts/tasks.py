"""Alert tasks, on the chalk-control queue (never on a runs worker). runs.dispatch sends
run_ended by name after a run's end commits; beat sends sweep and prune (runs/beat.py)."""

import datetime as dt

from celery import shared_task
from django.conf import settings
from django.utils import timezone

from alerts import services
from alerts import sweep as sweeps
from alerts.models import Delivery
from alerts.senders import RetryableDeliveryError

MAX_TRIES = 6  # the first and 5 retries


@shared_task(name="alerts.tasks.run_ended")
def run_ended(run_id: int) -> None:
    services.run_ended(run_id=run_id, now=timezone.now())


@shared_task(name="alerts.tasks.sweep")
def sweep() -> int:
    return len(sweeps.sweep(now=timezone.now()))


@shared_task(name="alerts.tasks.prune_deliveries")
def prune_deliveries() -> int:
    before = timezone.now() - dt.timedelta(days=settings.CHALK_ALERT_RETENTION_DAYS)
    return services.deliveries_prune(before=before)


@shared_task(
    bind=True,
    name="alerts.tasks.deliver",
    autoretry_for=(RetryableDeliveryError,),
    max_retries=MAX_TRIES - 1,
    retry_backoff=5,  # 5, 10, 20, 40, 80 seconds (with jitter), at most 10 minutes
    retry_backoff_max=600,
    retry_jitter=True,
)
def deliver(self, delivery_id: int) -> None:
    delivery = Delivery.objects.select_related("channel").filter(id=delivery_id).first()
    if delivery is None or delivery.status != "pending":
        return
    last_try = self.request.retries >= self.max_retries
    services.deliver(delivery=delivery, now=timezone.now(), last_try=last_try)

"""Deliveries kept the channel's answer (its body, or an error's text): a channel to a
service that is no webhook showed what that service said (NATS's banner, MySQL's greeting).
They now keep a fixed short reason; this shortens the answers stored before to the same."""

import re

from django.db import migrations

KEPT = {"sent", "the channel was deleted"}


def shortened(answer: str) -> str:
    status = re.match(r"HTTP (\d{3})\b", answer)
    if status:
        return f"HTTP {status[1]}"
    return answer if answer in KEPT else ""


def forwards(apps, schema_editor):
    Delivery = apps.get_model("alerts", "Delivery")
    batch = []
    for delivery in Delivery.objects.exclude(answer="").only("id", "answer").iterator():
        short = shortened(delivery.answer)
        if short != delivery.answer:
            delivery.answer = short
            batch.append(delivery)
        if len(batch) >= 500:
            Delivery.objects.bulk_update(batch, ["answer"])
            batch = []
    Delivery.objects.bulk_update(batch, ["answer"])


class Migration(migrations.Migration):
    dependencies = [("alerts", "0002_late_long_and_skipped")]

    operations = [migrations.RunPython(forwards, migrations.RunPython.noop)]

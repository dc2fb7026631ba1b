from django.db import models


class ChannelKind(models.TextChoices):
    APPRISE = "apprise"  # any apprise URL: slack://, discord://, mailto://, ntfy://, json://
    WEBHOOK = "webhook"  # Chalkweb's own signed JSON body, POSTed to an http(s) URL


class Channel(models.Model):
    """Where alerts go. The URL (it holds tokens) and the webhook secret are encrypted with
    common.crypto; only `display` (scheme and host, or the scheme alone when the host is a
    token) is ever shown."""

    name = models.CharField(max_length=100, unique=True)
    kind = models.CharField(max_length=16, choices=ChannelKind.choices)
    url_encrypted = models.TextField()
    display = models.CharField(max_length=300)
    secret_encrypted = models.TextField()
    # Alerts of every function that has no channel of its own go to the default channels.
    is_default = models.BooleanField(default=False)
    functions = models.ManyToManyField("scheduling.Function", blank=True, related_name="+")
    created_at = models.DateTimeField()
    created_by = models.CharField(max_length=150, blank=True)

    class Meta:
        ordering = ["name"]

    def __str__(self) -> str:
        return f"{self.name} ({self.display})"


class AlertKind(models.TextChoices):
    FAILED = "failed"
    LATE = "late"  # a slot's run has not started (workers down, queue stuck)
    STILL_RUNNING = "still_running"
    SKIPPED = "skipped"  # the scheduler skipped a slot (overlap, downtime)
    RECOVERED = "recovered"  # succeeded after a failure alert, or started after a late one
    TEST = "test"


class AlertState(models.Model):
    """One function's alert state: what it last told people, and when (no storms: one alert
    per change, reminders at most every `remind_every` of its rules)."""

    class State(models.TextChoices):
        OK = "ok"
        FAILING = "failing"  # a "failed" alert went out; the next success says "recovered"

    function = models.OneToOneField(
        "scheduling.Function", on_delete=models.CASCADE, related_name="+", primary_key=True
    )
    state = models.CharField(max_length=16, choices=State.choices, default=State.OK)
    consecutive_failures = models.PositiveIntegerField(default=0)
    last_alerted_at = models.DateTimeField(null=True, blank=True)
    last_run_id = models.BigIntegerField(null=True, blank=True)
    last_finished_at = models.DateTimeField(null=True, blank=True)
    # Late: the earliest slot found late, while no run has started since (null: on time).
    late_since = models.DateTimeField(null=True, blank=True)
    late_alerted_at = models.DateTimeField(null=True, blank=True)
    # The newest run told of as still running, and the newest skipped slot looked at: the sweep
    # tells of each once.
    long_run_id = models.BigIntegerField(null=True, blank=True)
    skipped_run_id = models.BigIntegerField(null=True, blank=True)
    skip_alerted_at = models.DateTimeField(null=True, blank=True)

    def __str__(self) -> str:
        return f"{self.function_id}: {self.state} ({self.consecutive_failures} failures)"


class DeliveryStatus(models.TextChoices):
    PENDING = "pending"
    SENT = "sent"
    FAILED = "failed"


class Delivery(models.Model):
    """One alert to one channel: what was sent (the webhook body), and the outcome of the last
    try as a fixed short reason ("HTTP 200", "timed out", "refused: loopback address"), never
    the body of what the other end answered."""

    channel = models.ForeignKey(
        Channel, null=True, on_delete=models.SET_NULL, related_name="deliveries"
    )
    channel_name = models.CharField(max_length=100)  # kept after the channel is deleted
    function = models.ForeignKey(
        "scheduling.Function", null=True, blank=True, on_delete=models.CASCADE, related_name="+"
    )
    run = models.ForeignKey(
        "runs.Run", null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    kind = models.CharField(max_length=16, choices=AlertKind.choices)
    status = models.CharField(
        max_length=16, choices=DeliveryStatus.choices, default=DeliveryStatus.PENDING
    )
    payload = models.JSONField()
    answer = models.TextField(blank=True)  # the fixed short reason (senders.DeliveryError)
    tries = models.PositiveIntegerField(default=0)
    at = models.DateTimeField()  # when the alert was decided
    sent_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["-id"]
        indexes = [
            models.Index(fields=["channel", "-id"], name="alerts_delivery_channel"),
            models.Index(fields=["function", "-id"], name="alerts_delivery_function"),
        ]

    def __str__(self) -> str:
        return f"{self.kind} to {self.channel_name}: {self.status}"

"""What a function IS: its deployed versions, the image they run in and the secrets they read.
What happened to it (runs) lives in `runs/`; who deployed it (people, API tokens) in `access/`."""

from datetime import datetime
from typing import Any

from django.conf import settings
from django.db import models
from django.db.models import Q

from chalkcompute import schedule as schedule_engine
from chalkcompute.alerts import Alerts
from chalkcompute.spec import FunctionSpec

OVERLAP_CHOICES = [("skip", "skip"), ("allow", "allow")]


def default_alerts() -> dict[str, Any]:
    """A version's alerts when its code declares none: every rule at the server's default."""
    return Alerts().as_dict()


class Image(models.Model):
    """An image spec (chalkcompute.Image.spec); equal specs are one row, built once per hash."""

    spec = models.JSONField()
    spec_hash = models.CharField(max_length=64)
    created_at = models.DateTimeField()

    class Meta:
        constraints = [
            # Deploys get_or_create images by hash: two deploys of one new image race on this.
            models.UniqueConstraint(fields=["spec_hash"], name="scheduling_one_image_per_spec"),
        ]

    def __str__(self) -> str:
        return f"image {self.spec_hash[:12]}"


class Secret(models.Model):
    """A value a run gets as the environment variable `name`. Only ciphertext is stored
    (common.crypto); the plaintext never leaves the runner API."""

    name = models.CharField(max_length=128)
    ciphertext = models.TextField()
    created_at = models.DateTimeField()
    updated_at = models.DateTimeField()

    class Meta:
        ordering = ["name"]
        constraints = [
            models.UniqueConstraint(fields=["name"], name="scheduling_unique_secret_name"),
        ]

    def __str__(self) -> str:
        return self.name


class FunctionQuerySet(models.QuerySet):
    def due(self, horizon: datetime) -> "FunctionQuerySet":
        """Functions whose next slot is at or before `horizon`: what the tick claims, through
        the partial index scheduling_function_due."""
        return self.filter(paused=False, next_fire_at__lte=horizon)


class Function(models.Model):
    """A deployed function: its current version, whether it is paused, and its next slot."""

    name = models.CharField(max_length=63)
    # Always the latest version; SET_NULL only matters while a Function is being deleted
    # (its versions cascade away with it).
    current_version = models.ForeignKey(
        "FunctionVersion", null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    # The next slot to run, computed by chalkcompute.schedule; null when on demand or paused.
    # The scheduler reads only this column.
    next_fire_at = models.DateTimeField(null=True, blank=True)
    paused = models.BooleanField(default=False)
    paused_at = models.DateTimeField(null=True, blank=True)
    paused_by = models.CharField(max_length=150, blank=True)  # a username or an API token name
    paused_reason = models.TextField(blank=True)
    created_at = models.DateTimeField()
    updated_at = models.DateTimeField()

    objects = FunctionQuerySet.as_manager()

    class Meta:
        ordering = ["name"]
        constraints = [
            # Deploy creates functions with get_or_create: two first deploys of one name race.
            models.UniqueConstraint(fields=["name"], name="scheduling_unique_function_name"),
            # A paused function has no next slot, so the scheduler can never pick it up.
            models.CheckConstraint(
                condition=Q(paused=False) | Q(next_fire_at__isnull=True),
                name="scheduling_paused_function_has_no_next_fire",
            ),
        ]
        indexes = [
            # The tick: WHERE next_fire_at <= now ORDER BY next_fire_at FOR UPDATE SKIP LOCKED.
            # Partial, so on-demand and paused functions do not fill the index.
            models.Index(
                fields=["next_fire_at"],
                condition=Q(next_fire_at__isnull=False),
                name="scheduling_function_due",
            ),
        ]

    def __str__(self) -> str:
        return self.name

    def next_slot_after(self, moment: datetime) -> datetime | None:
        """The current version's first slot after `moment`, on its schedule's clock
        (FunctionVersion.fire_schedule): where scheduling starts afresh, at a deploy that
        changes the schedule, a resume or a restore. None when paused or run on demand."""
        version = self.current_version
        schedule = None if self.paused or version is None else version.fire_schedule
        return None if schedule is None else schedule.next_after(moment)


class FunctionVersion(models.Model):
    """One immutable deployed content of a function, numbered 1..n per function."""

    function = models.ForeignKey(Function, on_delete=models.CASCADE, related_name="versions")
    number = models.PositiveIntegerField()
    source = models.TextField()
    source_filename = models.CharField(max_length=255)
    source_sha256 = models.CharField(max_length=64)
    entrypoint = models.CharField(max_length=255)
    image = models.ForeignKey(Image, on_delete=models.PROTECT, related_name="versions")
    # Null means "not set" here, as in the API's documents (and "" is never a valid value).
    schedule = models.TextField(null=True, blank=True)  # noqa: DJ001 - as written, e.g. "10m"
    cron = models.TextField(null=True, blank=True)  # noqa: DJ001 - canonical 5-field crontab
    # The IANA zone the crontab is read in; null is UTC.
    timezone = models.CharField(max_length=64, null=True, blank=True)  # noqa: DJ001
    cpu = models.CharField(max_length=32, null=True, blank=True)  # noqa: DJ001
    memory = models.CharField(max_length=32, null=True, blank=True)  # noqa: DJ001
    gpu = models.CharField(max_length=32, null=True, blank=True)  # noqa: DJ001
    retries = models.JSONField()  # chalkcompute.Retries.as_dict()
    timeout = models.FloatField(null=True, blank=True)  # seconds
    overlap = models.CharField(max_length=8, choices=OVERLAP_CHOICES, default="skip")
    secret_names = models.JSONField(default=list)  # sorted; names, never values
    # Variables of every run: a name to its value, or to {"secret": NAME} (never a value).
    env = models.JSONField(default=dict)
    tags = models.JSONField(default=dict)  # labels for finding functions
    alerts = models.JSONField(default=default_alerts)  # chalkcompute.Alerts.as_dict()
    # SHA-256 of the canonical JSON of everything above except `number`: a redeploy with the
    # current version's hash is "unchanged". Not unique: a rollback deploys old content again.
    content_hash = models.CharField(max_length=64)
    created_by = models.CharField(max_length=150, blank=True)  # a username or an API token name
    # Who deployed it, kept as a link too (null for versions from before these existed).
    created_by_user = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    created_by_token = models.ForeignKey(
        "access.ApiToken", null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    created_at = models.DateTimeField()

    class Meta:
        ordering = ["function", "-number"]
        constraints = [
            # Deploy locks the Function row, but this is the guarantee that two concurrent
            # deploys can never both become version n+1.
            models.UniqueConstraint(
                fields=["function", "number"], name="scheduling_version_number_unique"
            ),
            models.CheckConstraint(
                condition=Q(number__gte=1), name="scheduling_version_number_from_one"
            ),
            models.CheckConstraint(
                condition=Q(schedule__isnull=True, cron__isnull=True)
                | Q(schedule__isnull=False, cron__isnull=False),
                name="scheduling_version_schedule_has_cron",
            ),
            models.CheckConstraint(
                condition=Q(overlap__in=["skip", "allow"]), name="scheduling_version_overlap_known"
            ),
            models.CheckConstraint(
                condition=Q(timeout__isnull=True) | Q(timeout__gt=0),
                name="scheduling_version_timeout_positive",
            ),
        ]

    def __str__(self) -> str:
        return f"{self.function.name} v{self.number}"

    # The FunctionSpec is stored in the columns above: each field in the column of its name,
    # but the image (a row, shared by equal specs) and these. The scheduler reads `cron`.
    SPEC_COLUMNS = {"secrets": "secret_names"}

    @classmethod
    def spec_columns(cls, spec: FunctionSpec, image: Image) -> dict[str, Any]:
        """The column values that store `spec`, with `image` the row of its image."""
        document = spec.as_dict()
        columns = {cls.SPEC_COLUMNS.get(name, name): value for name, value in document.items()}
        columns["image"] = image
        columns["cron"] = spec.schedule.cron if spec.schedule is not None else None
        return columns

    @property
    def fire_schedule(self) -> schedule_engine.Schedule | None:
        """The schedule the scheduler fires: the canonical cron read in the version's zone."""
        return None if self.cron is None else schedule_engine.parse(self.cron, self.timezone)

    @property
    def spec_document(self) -> dict[str, Any]:
        """The spec's canonical JSON (FunctionSpec.as_dict()) as stored, read without checking
        it again: a version stays readable when a later rule would refuse it."""
        return {
            name: self.image.spec
            if name == "image"
            else getattr(self, self.SPEC_COLUMNS.get(name, name))
            for name in FunctionSpec.field_names()
        }

    @property
    def spec(self) -> FunctionSpec:
        """The FunctionSpec this version was deployed with, checked as a deploy checks it."""
        return FunctionSpec.from_dict(self.spec_document)

    @property
    def secrets_read(self) -> list[str]:
        """Every stored secret a run of this version gets, by name or under an env variable."""
        refs = (item["secret"] for item in self.env.values() if isinstance(item, dict))
        return sorted({*self.secret_names, *refs})


class VersionFile(models.Model):
    """A file shipped with a version's code (Image.add_local_python_source, add_local_file,
    add_local_dir): written at `path` in the run's working directory before it starts."""

    version = models.ForeignKey(FunctionVersion, on_delete=models.CASCADE, related_name="files")
    path = models.CharField(max_length=1024)  # relative, "/"-separated, checked at deploy
    content = models.BinaryField()
    size = models.PositiveIntegerField()
    sha256 = models.CharField(max_length=64)

    class Meta:
        ordering = ["version", "path"]
        constraints = [
            models.UniqueConstraint(
                fields=["version", "path"], name="scheduling_one_file_per_path"
            ),
        ]

    def __str__(self) -> str:
        return self.path

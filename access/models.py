from django.conf import settings
from django.db import models

from access.rights import WHAT_IT_ALLOWS, Right


class Access(models.Model):
    """Holds the five rights as Django permissions (no table): the roles' groups grant them."""

    class Meta:
        managed = False
        default_permissions = ()
        permissions = [(right.value, WHAT_IT_ALLOWS[right].capitalize()) for right in Right]

    def __str__(self) -> str:
        return "access"


class AuditAction(models.TextChoices):
    DEPLOY = "deploy"
    ROLLBACK = "rollback"
    DELETE = "delete"
    PAUSE = "pause"
    RESUME = "resume"
    RUN_NOW = "run_now"
    BACKFILL = "backfill"  # every slot of a past range; its cancel is a CANCEL
    CANCEL = "cancel"
    SECRET_SET = "secret_set"
    SECRET_REPLACE = "secret_replace"
    SECRET_DELETE = "secret_delete"
    TOKEN_CREATE = "token_create"
    TOKEN_REVOKE = "token_revoke"
    ROLE_CHANGE = "role_change"
    USER_CHANGE = "user_change"  # sign-in or admin-site access turned on or off
    SIGN_IN = "sign_in"
    SIGN_IN_FAILED = "sign_in_failed"
    CHANNEL_CREATE = "channel_create"
    CHANNEL_DELETE = "channel_delete"
    CHANNEL_TEST = "channel_test"
    RESTORE = "restore"  # manage.py after_restore: runs in flight at the backup ended


class AuditEvent(models.Model):
    """One change, recorded by the service that made it. Names are copied, not only linked:
    an event outlives the user, token, function or secret it describes."""

    at = models.DateTimeField()
    action = models.CharField(max_length=32, choices=AuditAction.choices)
    user = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    actor = models.CharField(max_length=150)  # the username, or "platform"
    token_id = models.BigIntegerField(null=True, blank=True)  # no foreign key: kept after deletion
    token_name = models.CharField(max_length=100, blank=True)
    address = models.GenericIPAddressField(null=True, blank=True)
    function = models.CharField(max_length=63, blank=True)  # the function it concerns, if any
    target = models.CharField(max_length=200, blank=True)  # "run 12", "secret EXCHANGE_API_KEY"
    # What changed: {"before": …, "after": …} or other facts of the action (never a secret).
    detail = models.JSONField(default=dict, blank=True)

    class Meta:
        ordering = ["-id"]
        indexes = [
            # The audit page and the API: newest first, optionally for one function or person.
            models.Index(fields=["function", "-id"], name="access_audit_function"),
            models.Index(fields=["actor", "-id"], name="access_audit_actor"),
            # Retention: DELETE WHERE at < cutoff.
            models.Index(fields=["at"], name="access_audit_at"),
        ]

    def __str__(self) -> str:
        return f"{self.at:%Y-%m-%d %H:%M} {self.actor} {self.action} {self.target}".strip()


class ApiToken(models.Model):
    """A bearer token for the REST API. Only its SHA-256 is stored; the text is shown once."""

    name = models.CharField(max_length=100)
    token_hash = models.CharField(max_length=64)
    prefix = models.CharField(max_length=16)  # the first characters, to tell tokens apart
    # The token's owner: it can never do more than this user may do now. Deleting the user
    # deletes their tokens; a token from before owners were required has none and is refused.
    created_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.CASCADE
    )
    # access.rights.Right values: what this token may do, within its owner's role.
    scopes = models.JSONField(default=list)
    created_at = models.DateTimeField()
    expires_at = models.DateTimeField(null=True, blank=True)
    last_used_at = models.DateTimeField(null=True, blank=True)
    last_used_from = models.GenericIPAddressField(null=True, blank=True)
    revoked_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        db_table = "scheduling_apitoken"  # made when tokens lived in scheduling/; kept
        verbose_name = "API token"
        ordering = ["-created_at"]
        constraints = [
            # Every request looks its token up by hash. (Named when tokens lived in scheduling/.)
            models.UniqueConstraint(fields=["token_hash"], name="scheduling_unique_token_hash"),
        ]

    def __str__(self) -> str:
        return f"{self.name} ({self.prefix}…)"

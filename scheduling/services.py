"""Writes to what a function is: deploy, pause, resume, delete; secrets; API tokens.

Every entry point (REST API, admin, console, management commands) calls these. Each takes
`now` from its caller, so one operation sees one instant.
"""

import hashlib
import json
import secrets as token_generator
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Literal

from django.conf import settings
from django.contrib.auth.base_user import AbstractBaseUser
from django.db import transaction
from django.db.models import Max
from django.utils import timezone

from chalkcompute.image import Image as ImageSpec
from chalkcompute.names import InvalidNameError, check_function_name, check_secret_name
from chalkcompute.retries import Retries
from chalkcompute.schedule import Schedule, parse
from scheduling import crypto
from scheduling.errors import (
    InvalidSecretNameError,
    InvalidSecretValueError,
    InvalidTokenNameError,
    SchedulingError,
    SecretInUseError,
    SourceTooLargeError,
    UnknownSecretError,
    UnknownVersionError,
)
from scheduling.models import ApiToken, Function, FunctionVersion, Image, Secret

MAX_SECRET_VALUE_BYTES = 64 * 1024
MAX_PAUSE_REASON = 500
REASON_TOO_LONG = "A reason is at most {limit} characters; this one is {length}. Shorten it."
EMPTY_SECRET_VALUE = "Type a value for {name}: a secret cannot be empty."
TOKEN_PREFIX = "chalk_"
TOKEN_DISPLAY_CHARS = 12  # "chalk_" and six characters of the random part
MAX_TOKEN_NAME = 100
CREATE_TOKEN_HINT = (
    "create one with `python manage.py create_token NAME` on the server (or on the console's "
    "API tokens page)"
)


# --- functions -------------------------------------------------------------------------------


@dataclass(frozen=True)
class DeployResult:
    function: Function
    outcome: Literal["created", "updated", "unchanged"]


def _content_hash(content: dict) -> str:
    canonical = json.dumps(content, sort_keys=True, separators=(",", ":"), ensure_ascii=True)
    return hashlib.sha256(canonical.encode("ascii")).hexdigest()


def function_deploy(
    *,
    name: str,
    source: str,
    source_filename: str,
    entrypoint: str,
    schedule: Schedule | None,
    image: ImageSpec,
    secret_names: Sequence[str],
    cpu: str | None,
    memory: str | None,
    gpu: str | None,
    retries: Retries,
    timeout: float | None,
    overlap: str,
    deployed_by: str,
    now: datetime,
) -> DeployResult:
    """Deploys `name`: creates the function, adds a version, or reports "unchanged".

    1. Check what needs no database: the name and the size of the source.
    2. In one transaction, lock the Function row, creating it if this is the first deploy.
    3. If the content hash equals the current version's, stop: nothing changes.
    4. Check that every secret exists, locking those rows so none is deleted meanwhile.
    5. Store the image (one row per spec), add version n+1 and make it current.
    6. Set next_fire_at: keep the slot if the canonical cron is unchanged (a redeploy never
       skips or repeats a slot), else the first slot after `now`; none when on demand or
       paused.
    """
    check_function_name(name)
    source_bytes = len(source.encode("utf-8"))
    if source_bytes > settings.CHALK_MAX_SOURCE_BYTES:
        raise SourceTooLargeError(
            f"source is {source_bytes} bytes; the limit is {settings.CHALK_MAX_SOURCE_BYTES} "
            "bytes (CHALK_MAX_SOURCE_BYTES on the server). Keep data out of the module: "
            "read it at run time from your store, or raise the limit"
        )
    secret_names = sorted(set(secret_names))
    content = {
        "source": source,
        "source_filename": source_filename,
        "entrypoint": entrypoint,
        "image": image.spec_hash,
        "schedule": schedule.expr if schedule else None,
        "cron": schedule.cron if schedule else None,
        "cpu": cpu,
        "memory": memory,
        "gpu": gpu,
        "retries": retries.as_dict(),
        "timeout": None if timeout is None else float(timeout),
        "overlap": overlap,
        "secret_names": secret_names,
    }
    content_hash = _content_hash(content)

    with transaction.atomic():
        # Two deploys of one name at once must not both create version n+1: the second waits
        # here for the first to commit. get_or_create handles two *first* deploys: the loser's
        # INSERT fails on scheduling_unique_function_name, and it then locks the winner's row.
        function, created = Function.objects.select_for_update().get_or_create(
            name=name, defaults={"created_at": now, "updated_at": now}
        )
        current = function.current_version
        if current is not None and current.content_hash == content_hash:
            return DeployResult(function=function, outcome="unchanged")

        found = set(
            Secret.objects.select_for_update()
            .filter(name__in=secret_names)
            .values_list("name", flat=True)
        )
        missing = [n for n in secret_names if n not in found]
        if missing:
            listed = ", ".join(missing)
            raise UnknownSecretError(
                f"secret {listed} is not stored on this server. Upload it with "
                f"Secret.from_env({missing[0]!r}) in your script (it sends your local "
                f"${missing[0]}), or PUT /api/v1/secrets/{missing[0]} first"
            )

        image_row, _ = Image.objects.get_or_create(
            spec_hash=image.spec_hash, defaults={"spec": image.spec, "created_at": now}
        )
        last_number = function.versions.aggregate(last=Max("number"))["last"] or 0
        version = FunctionVersion.objects.create(
            function=function,
            number=last_number + 1,
            source=source,
            source_filename=source_filename,
            source_sha256=hashlib.sha256(source.encode("utf-8")).hexdigest(),
            entrypoint=entrypoint,
            image=image_row,
            schedule=content["schedule"],
            cron=content["cron"],
            cpu=cpu,
            memory=memory,
            gpu=gpu,
            retries=content["retries"],
            timeout=content["timeout"],
            overlap=overlap,
            secret_names=secret_names,
            content_hash=content_hash,
            created_by=deployed_by,
            created_at=now,
        )

        same_cron = current is not None and current.cron == version.cron
        if function.paused or schedule is None:
            function.next_fire_at = None
        elif not (same_cron and function.next_fire_at is not None):
            function.next_fire_at = schedule.next_after(now)
        function.current_version = version
        function.updated_at = now
        function.save(update_fields=["current_version", "next_fire_at", "updated_at"])
    return DeployResult(function=function, outcome="created" if created else "updated")


def function_rollback(
    *, function: Function, number: int, deployed_by: str, now: datetime
) -> DeployResult:
    """Deploys the content of version `number` again, as a new version n+1 (history stays
    append-only; "unchanged" when that content is already current). Goes through
    function_deploy, so the same checks hold: a secret deleted since then stops it."""
    version = (
        FunctionVersion.objects.select_related("image")
        .filter(function=function, number=number)
        .first()
    )
    if version is None:
        raise UnknownVersionError(
            f"{function.name} has no version {number}; pick one from its version history"
        )
    return function_deploy(
        name=function.name,
        source=version.source,
        source_filename=version.source_filename,
        entrypoint=version.entrypoint,
        schedule=parse(version.schedule) if version.schedule is not None else None,
        image=ImageSpec.from_spec(version.image.spec),
        secret_names=version.secret_names,
        cpu=version.cpu,
        memory=version.memory,
        gpu=version.gpu,
        retries=Retries.coerce(version.retries),
        timeout=version.timeout,
        overlap=version.overlap,
        deployed_by=deployed_by,
        now=now,
    )


def _locked(function: Function) -> Function:
    # of=("self",): PostgreSQL cannot lock the nullable side of the outer join to the version.
    return (
        Function.objects.select_for_update(of=("self",))
        .select_related("current_version")
        .get(pk=function.pk)
    )


def check_pause_reason(reason: str) -> str:
    if len(reason) > MAX_PAUSE_REASON:
        raise SchedulingError(REASON_TOO_LONG.format(limit=MAX_PAUSE_REASON, length=len(reason)))
    return reason


def function_pause(*, function: Function, paused_by: str, reason: str, now: datetime) -> Function:
    """Stops scheduling `function`; pausing a paused function keeps who, when and why."""
    check_pause_reason(reason)
    with transaction.atomic():
        function = _locked(function)
        if function.paused:
            return function
        function.paused = True
        function.paused_at = now
        function.paused_by = paused_by
        function.paused_reason = reason
        function.next_fire_at = None
        function.updated_at = now
        function.save()
    return function


def function_resume(*, function: Function, now: datetime) -> Function:
    """Schedules `function` again from the first slot after `now`: the slots that passed while
    it was paused are not run."""
    with transaction.atomic():
        function = _locked(function)
        if not function.paused:
            return function
        function.paused = False
        function.paused_at = None
        function.paused_by = ""
        function.paused_reason = ""
        cron = function.current_version.cron if function.current_version else None
        function.next_fire_at = parse(cron).next_after(now) if cron else None
        function.updated_at = now
        function.save()
    return function


def functions_pause(
    *, functions: list[Function], paused_by: str, reason: str, now: datetime
) -> list[Function]:
    """Pauses each of `functions`: all of them or, if one fails, none."""
    check_pause_reason(reason)
    with transaction.atomic():
        return [
            function_pause(function=function, paused_by=paused_by, reason=reason, now=now)
            for function in functions
        ]


def functions_resume(*, functions: list[Function], now: datetime) -> list[Function]:
    """Resumes each of `functions`: all of them or, if one fails, none."""
    with transaction.atomic():
        return [function_resume(function=function, now=now) for function in functions]


def function_delete(*, function: Function) -> None:
    """Deletes the function with its versions and runs. The row lock waits out a tick or a
    deploy holding the function, so neither writes a run or a version for a deleted row."""
    with transaction.atomic():
        _locked(function).delete()


# --- secrets ---------------------------------------------------------------------------------


def check_secret_value(name: str, value: object) -> str:
    if not isinstance(value, str):
        raise InvalidSecretValueError(f"the value of secret {name} must be a string")
    if value == "":
        raise InvalidSecretValueError(EMPTY_SECRET_VALUE.format(name=name))
    if "\x00" in value:
        raise InvalidSecretValueError(
            f"the value of secret {name} holds a NUL character, which an environment variable "
            "cannot carry"
        )
    size = len(value.encode("utf-8", errors="surrogatepass"))
    if size > MAX_SECRET_VALUE_BYTES:
        raise InvalidSecretValueError(
            f"the value of secret {name} is {size} bytes; the limit is {MAX_SECRET_VALUE_BYTES} "
            "bytes. Store large material elsewhere and keep its credentials here"
        )
    return value


def secret_set(*, name: str, value: str, now: datetime) -> tuple[Secret, bool]:
    """Stores `value` encrypted under `name`, replacing any value there. Returns (secret,
    created)."""
    try:
        check_secret_name(name)
    except InvalidNameError as exc:
        raise InvalidSecretNameError(str(exc)) from None
    ciphertext = crypto.encrypt(check_secret_value(name, value))
    with transaction.atomic():
        secret, created = Secret.objects.select_for_update().get_or_create(
            name=name,
            defaults={"ciphertext": ciphertext, "created_at": now, "updated_at": now},
        )
        if not created:
            secret.ciphertext = ciphertext
            secret.updated_at = now
            secret.save(update_fields=["ciphertext", "updated_at"])
    return secret, created


def secret_value(*, secret: Secret) -> str:
    """The plaintext, for the runner API only. Never log it or put it in a response."""
    return crypto.decrypt(secret.ciphertext)


def secret_users(*, names: list[str]) -> dict[str, list[str]]:
    """For each of `names`, the functions whose current version reads it, in one query."""
    if not names:
        return {}
    # secret_names is a JSON list: matched here because SQLite has no JSON containment.
    rows = (
        FunctionVersion.objects.filter(
            pk__in=Function.objects.filter(current_version__isnull=False).values("current_version")
        )
        .exclude(secret_names=[])
        .values_list("function__name", "secret_names")
    )
    wanted = set(names)
    users: dict[str, list[str]] = {}
    for function_name, secret_names in rows:
        for name in wanted.intersection(secret_names):
            users.setdefault(name, []).append(function_name)
    return {name: sorted(functions) for name, functions in users.items()}


def secret_delete(*, secret: Secret) -> None:
    """Deletes a secret no function's current version reads; raises SecretInUseError else."""
    with transaction.atomic():
        # A deploy locks the secrets it names: this lock orders us before or after it, so a
        # deploy can never reference a secret deleted under it.
        secret = Secret.objects.select_for_update().get(pk=secret.pk)
        users = secret_users(names=[secret.name]).get(secret.name, [])
        if users:
            which = "that function" if len(users) == 1 else "those functions"
            raise SecretInUseError(
                f"secret {secret.name} is used by {', '.join(users)}; first redeploy {which} "
                f"without it, or delete {'it' if len(users) == 1 else 'them'}"
            )
        secret.delete()


def secrets_reencrypt() -> int:
    """Re-encrypts every secret under the first key of CHALK_SECRETS_KEY (key rotation), in one
    transaction that locks the secrets: a deploy or a run reading one waits, never sees a mix."""
    count = 0
    with transaction.atomic():
        for secret in Secret.objects.select_for_update():
            secret.ciphertext = crypto.reencrypt(secret.ciphertext)
            secret.save(update_fields=["ciphertext"])
            count += 1
    return count


# --- API tokens ------------------------------------------------------------------------------


def token_hash(plaintext: str) -> str:
    return hashlib.sha256(plaintext.encode("utf-8", errors="surrogatepass")).hexdigest()


def token_create(
    *, name: str, created_by: AbstractBaseUser | None = None, now: datetime | None = None
) -> tuple[ApiToken, str]:
    """Creates an API token and returns it with its text, which is stored only as a hash:
    show it once."""
    name = name.strip() if isinstance(name, str) else ""
    if not name or len(name) > MAX_TOKEN_NAME:
        raise InvalidTokenNameError(
            f"a token name is 1 to {MAX_TOKEN_NAME} characters that say who or what uses it, "
            'e.g. "alice-laptop" or "ci"'
        )
    plaintext = TOKEN_PREFIX + token_generator.token_urlsafe(32)
    token = ApiToken.objects.create(
        name=name,
        token_hash=token_hash(plaintext),
        prefix=plaintext[:TOKEN_DISPLAY_CHARS],
        created_by=created_by,
        created_at=now or timezone.now(),
    )
    return token, plaintext


def token_revoke(*, token: ApiToken, now: datetime) -> ApiToken:
    """Revokes `token`; revoking a revoked token keeps its first revocation time."""
    ApiToken.objects.filter(pk=token.pk, revoked_at__isnull=True).update(revoked_at=now)
    token.refresh_from_db()
    return token

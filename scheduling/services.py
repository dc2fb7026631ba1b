"""Writes to what a function is: deploy, pause, resume, delete; secrets.

Every entry point (REST API, admin, console, management commands) calls these. Each takes the
`actor` and `now` from its caller, checks the actor's rights (access.services.authorize) and
records what it changed in the audit trail, so no entry point can forget either.
"""

import hashlib
import json
import logging
from dataclasses import dataclass
from datetime import datetime
from typing import Literal

from celery import current_app
from cryptography.fernet import InvalidToken
from django.apps import apps
from django.conf import settings
from django.db import transaction
from django.db.models import Max

from access.actor import Actor
from access.models import AuditAction
from access.rights import Right
from access.services import audit, authorize
from chalkcompute.names import InvalidNameError, check_function_name, check_secret_name
from chalkcompute.spec import FunctionSpec
from common import crypto
from scheduling.errors import (
    InvalidFilesError,
    InvalidSecretNameError,
    InvalidSecretValueError,
    SchedulingError,
    SecretInUseError,
    SourceTooLargeError,
    UnknownSecretError,
    UnknownVersionError,
)
from scheduling.models import Function, FunctionVersion, Image, Secret, VersionFile

logger = logging.getLogger(__name__)

BUILD_IMAGE = "runs.tasks.build_image"
MAX_SECRET_VALUE_BYTES = 64 * 1024
MAX_PAUSE_REASON = 500
REASON_TOO_LONG = "A reason is at most {limit} characters; this one is {length}. Shorten it."
EMPTY_SECRET_VALUE = "Type a value for {name}: a secret cannot be empty."


# --- functions -------------------------------------------------------------------------------


@dataclass(frozen=True)
class DeployResult:
    function: Function
    outcome: Literal["created", "updated", "unchanged"]


# The spec fields hashed since the first version. A field added later is hashed only when it
# is not at its default, so adding an option does not turn every redeploy into a new version.
_FIRST_SPEC_FIELDS = frozenset(
    {"schedule", "image", "secrets", "cpu", "memory", "gpu", "retries", "timeout", "overlap"}
)


def files_digest(files: dict[str, bytes]) -> list[list[str]]:
    """Shipped files as [path, sha256] pairs, sorted: what a version's hash holds of them."""
    return [[path, hashlib.sha256(content).hexdigest()] for path, content in sorted(files.items())]


def content_hash(
    *,
    source: str,
    source_filename: str,
    entrypoint: str,
    spec: FunctionSpec,
    files: dict[str, bytes] | None = None,
) -> str:
    """SHA-256 of the canonical JSON of the code and spec.as_dict(): a redeploy with the
    current version's hash is "unchanged". Hashed as it always was, so versions stored before
    FunctionSpec stay "unchanged": the image by its hash, the secrets as `secret_names`, and
    the canonical cron beside the schedule (an engine that reads a schedule differently makes
    a new version, with the cron the scheduler then reads). Shipped files count by path and
    content hash, when there are any."""
    defaults = FunctionSpec().as_dict()
    content = {
        name: value
        for name, value in spec.as_dict().items()
        if name in _FIRST_SPEC_FIELDS or value != defaults[name]
    }
    content["image"] = spec.image.spec_hash
    content["secret_names"] = content.pop("secrets")
    content["cron"] = spec.schedule.cron if spec.schedule is not None else None
    content.update(source=source, source_filename=source_filename, entrypoint=entrypoint)
    if files:
        content["files"] = files_digest(files)
    canonical = json.dumps(content, sort_keys=True, separators=(",", ":"), ensure_ascii=True)
    return hashlib.sha256(canonical.encode("ascii")).hexdigest()


MAX_FILES = 1000
MAX_FILE_PATH = 1024


def check_files(files: dict[str, bytes], *, source_filename: str) -> dict[str, bytes]:
    """Files shipped with the code: relative "/"-separated paths with no "." or ".." part,
    not the module itself, at most MAX_FILES of them and CHALK_MAX_FILES_BYTES together."""
    if len(files) > MAX_FILES:
        raise InvalidFilesError(
            f"{len(files)} files are shipped; the limit is {MAX_FILES}. Ship a folder's "
            "code only (add_local_dir exclude=[...]) and read data from your store"
        )
    for path in files:
        parts = path.split("/")
        if (
            not path
            or len(path) > MAX_FILE_PATH
            or path.startswith("/")
            or "\\" in path
            or "\x00" in path
            or any(part in ("", ".", "..") for part in parts)
        ):
            raise InvalidFilesError(
                f"file path {path[:100]!r} must be relative, with no '.', '..' or empty part "
                '(e.g. "helpers/rates.py"), and at most 1024 characters'
            )
        if path == source_filename:
            raise InvalidFilesError(
                f"file {path} is the module itself ({source_filename}); do not ship it again"
            )
    total = sum(len(content) for content in files.values())
    if total > settings.CHALK_MAX_FILES_BYTES:
        raise InvalidFilesError(
            f"the shipped files are {total} bytes; the limit is {settings.CHALK_MAX_FILES_BYTES} "
            "bytes (CHALK_MAX_FILES_BYTES on the server). Ship code, not data: leave large "
            "files out (add_local_dir exclude=[...]) and read them from your store at run time"
        )
    return files


def _build_image_ahead(image_id: int) -> None:
    """Asks a runs worker to build a new version's image now, so that its first run does not
    start late by the build (runs.tasks.build_image, sent by name: scheduling does not import
    runs). A broker that cannot take it loses nothing: the first run builds the image."""
    try:
        current_app.signature(BUILD_IMAGE).apply_async(args=[image_id])
    except Exception:
        logger.exception("could not ask a runs worker to build image %s ahead", image_id)


def function_deploy(
    *,
    name: str,
    source: str,
    source_filename: str,
    entrypoint: str,
    spec: FunctionSpec,
    actor: Actor,
    now: datetime,
    files: dict[str, bytes] | None = None,
    rollback_of: int | None = None,
) -> DeployResult:
    """Deploys `name`: creates the function, adds a version, or reports "unchanged".

    1. Check what needs no database: the name, the size of the source and of the files
       shipped with it (each at a path the run can write).
    2. In one transaction, lock the Function row, creating it if this is the first deploy.
    3. If the content hash equals the current version's, stop: nothing changes.
    4. Check that every secret exists, locking those rows so none is deleted meanwhile.
    5. Store the image (one row per spec), add version n+1 and make it current.
    6. Set next_fire_at: keep the slot if the canonical cron and its zone are unchanged (a
       redeploy never skips or repeats a slot), else the first slot after `now`; none when on
       demand or paused.

    A function that reads secrets needs the secrets right too: running code that reads a
    secret is reading it.
    """
    authorize(actor, Right.DEPLOY)
    if spec.secrets_read:
        authorize(actor, Right.SECRETS)
    check_function_name(name)
    files = check_files(files or {}, source_filename=source_filename)
    source_bytes = len(source.encode("utf-8"))
    if source_bytes > settings.CHALK_MAX_SOURCE_BYTES:
        raise SourceTooLargeError(
            f"source is {source_bytes} bytes; the limit is {settings.CHALK_MAX_SOURCE_BYTES} "
            "bytes (CHALK_MAX_SOURCE_BYTES on the server). Keep data out of the module: "
            "read it at run time from your store, or raise the limit"
        )
    code = {"source": source, "source_filename": source_filename, "entrypoint": entrypoint}
    version_hash = content_hash(**code, spec=spec, files=files)

    with transaction.atomic():
        # Two deploys of one name at once must not both create version n+1: the second waits
        # here for the first to commit. get_or_create handles two *first* deploys: the loser's
        # INSERT fails on scheduling_unique_function_name, and it then locks the winner's row.
        function, created = Function.objects.select_for_update().get_or_create(
            name=name, defaults={"created_at": now, "updated_at": now}
        )
        current = function.current_version
        if current is not None and current.content_hash == version_hash:
            return DeployResult(function=function, outcome="unchanged")

        found = set(
            Secret.objects.select_for_update()
            .filter(name__in=spec.secrets_read)
            .values_list("name", flat=True)
        )
        missing = [n for n in spec.secrets_read if n not in found]
        if missing:
            listed = ", ".join(missing)
            raise UnknownSecretError(
                f"secret {listed} is not stored on this server. Upload it with "
                f"Secret.from_env({missing[0]!r}) in your script (it sends your local "
                f"${missing[0]}), or PUT /api/v1/secrets/{missing[0]} first"
            )

        image_row, _ = Image.objects.get_or_create(
            spec_hash=spec.image.spec_hash, defaults={"spec": spec.image.spec, "created_at": now}
        )
        last_number = function.versions.aggregate(last=Max("number"))["last"] or 0
        version = FunctionVersion.objects.create(
            function=function,
            number=last_number + 1,
            **code,
            source_sha256=hashlib.sha256(source.encode("utf-8")).hexdigest(),
            **FunctionVersion.spec_columns(spec, image_row),
            content_hash=version_hash,
            created_by=actor.name,
            created_by_user=actor.user,
            created_by_token=actor.token,
            created_at=now,
        )
        VersionFile.objects.bulk_create(
            VersionFile(
                version=version,
                path=path,
                content=content,
                size=len(content),
                sha256=hashlib.sha256(content).hexdigest(),
            )
            for path, content in sorted(files.items())
        )

        same_schedule = current is not None and (current.cron, current.timezone) == (
            version.cron,
            version.timezone,
        )
        function.current_version = version
        if not (same_schedule and function.next_fire_at is not None):
            function.next_fire_at = function.next_slot_after(now)
        function.updated_at = now
        function.save(update_fields=["current_version", "next_fire_at", "updated_at"])
        transaction.on_commit(lambda: _build_image_ahead(image_row.id))
        audit(
            actor=actor,
            action=AuditAction.DEPLOY if rollback_of is None else AuditAction.ROLLBACK,
            now=now,
            function=name,
            target=f"version {version.number}",
            detail={
                "before": current.number if current is not None else None,
                "after": version.number,
                **({"content_of": rollback_of} if rollback_of is not None else {}),
            },
        )
    return DeployResult(function=function, outcome="created" if created else "updated")


def function_rollback(
    *, function: Function, number: int, actor: Actor, now: datetime
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
        spec=version.spec,
        files={file.path: bytes(file.content) for file in version.files.all()},
        actor=actor,
        now=now,
        rollback_of=number,
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


def function_pause(*, function: Function, actor: Actor, reason: str, now: datetime) -> Function:
    """Stops scheduling `function`; pausing a paused function keeps who, when and why."""
    authorize(actor, Right.RUN)
    check_pause_reason(reason)
    with transaction.atomic():
        function = _locked(function)
        if function.paused:
            return function
        function.paused = True
        function.paused_at = now
        function.paused_by = actor.name
        function.paused_reason = reason
        function.next_fire_at = None
        function.updated_at = now
        function.save()
        audit(
            actor=actor,
            action=AuditAction.PAUSE,
            now=now,
            function=function.name,
            detail={"reason": reason},
        )
    return function


def function_resume(*, function: Function, actor: Actor, now: datetime) -> Function:
    """Schedules `function` again from the first slot after `now`: the slots that passed while
    it was paused are not run."""
    authorize(actor, Right.RUN)
    with transaction.atomic():
        function = _locked(function)
        if not function.paused:
            return function
        audit(
            actor=actor,
            action=AuditAction.RESUME,
            now=now,
            function=function.name,
            detail={"paused_by": function.paused_by, "reason": function.paused_reason},
        )
        function.paused = False
        function.paused_at = None
        function.paused_by = ""
        function.paused_reason = ""
        function.next_fire_at = function.next_slot_after(now)
        function.updated_at = now
        function.save()
    return function


def functions_pause(
    *, functions: list[Function], actor: Actor, reason: str, now: datetime
) -> list[Function]:
    """Pauses each of `functions`: all of them or, if one fails, none."""
    authorize(actor, Right.RUN)
    check_pause_reason(reason)
    with transaction.atomic():
        return [
            function_pause(function=function, actor=actor, reason=reason, now=now)
            for function in functions
        ]


def functions_resume(*, functions: list[Function], actor: Actor, now: datetime) -> list[Function]:
    """Resumes each of `functions`: all of them or, if one fails, none."""
    authorize(actor, Right.RUN)
    with transaction.atomic():
        return [function_resume(function=function, actor=actor, now=now) for function in functions]


def function_delete(*, function: Function, actor: Actor, now: datetime) -> None:
    """Deletes the function with its versions and runs. The row lock waits out a tick or a
    deploy holding the function, so neither writes a run or a version for a deleted row."""
    authorize(actor, Right.DEPLOY)
    with transaction.atomic():
        locked = _locked(function)
        version = locked.current_version.number if locked.current_version else None
        locked.delete()
        audit(
            actor=actor,
            action=AuditAction.DELETE,
            now=now,
            function=function.name,
            detail={"before": version, "after": None},
        )


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


def secret_set(*, name: str, value: str, actor: Actor, now: datetime) -> tuple[Secret, bool]:
    """Stores `value` encrypted under `name`, replacing any other value there. Returns (secret,
    created); storing the value already stored changes nothing (its `updated_at` stays). The
    audit trail gets the name, never the value."""
    authorize(actor, Right.SECRETS)
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
        if not created and crypto.decrypt(secret.ciphertext) == value:
            return secret, False  # the value it has: nothing changes, and updated_at stays
        if not created:
            secret.ciphertext = ciphertext
            secret.updated_at = now
            secret.save(update_fields=["ciphertext", "updated_at"])
        audit(
            actor=actor,
            action=AuditAction.SECRET_SET if created else AuditAction.SECRET_REPLACE,
            now=now,
            target=f"secret {name}",
        )
    return secret, created


def secret_values_for(version: FunctionVersion) -> dict[str, str]:
    """The plaintext of each secret `version` reads, by name; a secret deleted since the deploy
    is missing. For the runner API only: never log them or put them in a response. Raises
    crypto.SecretDecryptionError when no key of CHALK_SECRETS_KEY decrypts one."""
    secrets = Secret.objects.filter(name__in=version.secrets_read)
    return {secret.name: crypto.decrypt(secret.ciphertext) for secret in secrets}


def secret_users(*, names: list[str]) -> dict[str, list[str]]:
    """For each of `names`, the functions whose current version reads it, in one query."""
    if not names:
        return {}
    # secret_names and env are JSON: matched here because SQLite has no JSON containment.
    versions = (
        FunctionVersion.objects.filter(
            pk__in=Function.objects.filter(current_version__isnull=False).values("current_version")
        )
        .exclude(secret_names=[], env={})
        .select_related("function")
        .only("function__name", "secret_names", "env")
    )
    wanted = set(names)
    users: dict[str, list[str]] = {}
    for version in versions:
        for name in wanted.intersection(version.secrets_read):
            users.setdefault(name, []).append(version.function.name)
    return {name: sorted(functions) for name, functions in users.items()}


def secret_delete(*, secret: Secret, actor: Actor, now: datetime) -> None:
    """Deletes a secret no function's current version reads; raises SecretInUseError else."""
    authorize(actor, Right.SECRETS)
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
        audit(
            actor=actor, action=AuditAction.SECRET_DELETE, now=now, target=f"secret {secret.name}"
        )


def secrets_reencrypt(
    *, batch_size: int = 100, max_batches: int | None = None, progress=None
) -> int:
    """Re-encrypts every value not yet under the first key of CHALK_SECRETS_KEY (key rotation),
    in every encrypted column (crypto.ENCRYPTED_COLUMNS: secrets, alert channels' URLs and
    webhook secrets), and returns how many rows it re-encrypted.

    Safe while the platform runs: it goes through each table by id, `batch_size` rows at a time,
    each batch in its own short transaction that locks only those rows (a write to one of them
    waits for the batch; readers see the old or the new ciphertext, and every process decrypts
    both while the old key stays in the list). A row's columns change together, in its batch.
    Resumable: a value the first key alone already decrypts is skipped, so a run stopped part
    way (a crash, ^C, `max_batches`) loses at most its current batch, which rolls back, and the
    next run does only the rest. Values written meanwhile are already under the first key. A
    value no key decrypts is left as it is: encrypted_values_not_under_first_key names it.
    `progress(checked, reencrypted)` is called after each batch with the running totals."""
    if batch_size < 1:
        raise ValueError(f"batch_size must be 1 or more, not {batch_size}")
    checked = reencrypted = batches = 0
    for label, fields in crypto.ENCRYPTED_COLUMNS.items():
        model = apps.get_model(label)
        pk = model._meta.pk.name
        last_pk = None
        while max_batches is None or batches < max_batches:
            with transaction.atomic():
                rows = model.objects.select_for_update().order_by(pk).only(pk, *fields)
                if last_pk is not None:
                    rows = rows.filter(pk__gt=last_pk)
                batch = list(rows[:batch_size])
                if not batch:
                    break
                for row in batch:
                    changed = [field for field in fields if _reencrypted(row, field)]
                    if changed:
                        row.save(update_fields=changed)
                        reencrypted += 1
                last_pk = batch[-1].pk
            checked += len(batch)
            batches += 1
            if progress is not None:
                progress(checked, reencrypted)
    return reencrypted


def _reencrypted(row, field: str) -> bool:
    """Puts the row's value under the first key; False when it already was, or no key reads it."""
    value = getattr(row, field)
    if not value or crypto.is_under_first_key(value):
        return False
    try:
        setattr(row, field, crypto.reencrypt(value))
    except InvalidToken:
        return False
    return True


def encrypted_rows_count() -> int:
    return sum(apps.get_model(label).objects.count() for label in crypto.ENCRYPTED_COLUMNS)


def encrypted_values_not_under_first_key() -> list[str]:
    """Every encrypted value the first key of CHALK_SECRETS_KEY alone cannot decrypt, as
    "secret NAME (ciphertext)": empty when the keys after the first can be dropped."""
    left = []
    for label, fields in crypto.ENCRYPTED_COLUMNS.items():
        model = apps.get_model(label)
        for row in model.objects.order_by("pk").iterator():
            left += [
                f"{model._meta.verbose_name} {row} ({field})"
                for field in fields
                if getattr(row, field) and not crypto.is_under_first_key(getattr(row, field))
            ]
    return left

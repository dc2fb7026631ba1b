"""Encryption of values at rest: secrets' values, alert channels' URLs and signing secrets.

settings.CHALK_SECRETS_KEY holds one or more comma-separated Fernet keys. The first encrypts;
every one decrypts, so a key is rotated by putting the new key first (on every process),
running `manage.py rotate_secrets_key`, then dropping the old key.

ENCRYPTED_COLUMNS names every column that holds values encrypted here: the rotation re-encrypts
and checks each of them. The app that owns one registers it from its AppConfig.ready()
(scheduling its secrets, alerts its channels' URL and secret), so this module names no app.
"""

import functools

from cryptography.fernet import Fernet, InvalidToken, MultiFernet
from django.conf import settings
from django.core.exceptions import ImproperlyConfigured


class SecretDecryptionError(RuntimeError):
    pass


# "app_label.Model" -> the names of its encrypted text fields (rows are found by their pk).
ENCRYPTED_COLUMNS: dict[str, tuple[str, ...]] = {}


def register_encrypted_columns(model_label: str, *fields: str) -> None:
    ENCRYPTED_COLUMNS[model_label] = tuple(fields)


@functools.lru_cache(maxsize=4)
def _keys_for(keys: str) -> tuple[Fernet, ...]:
    fernets = []
    for position, key in enumerate((k.strip() for k in keys.split(",") if k.strip()), 1):
        try:
            fernets.append(Fernet(key))
        except ValueError:
            raise ImproperlyConfigured(
                f"CHALK_SECRETS_KEY key #{position} is not a Fernet key (32 url-safe base64 "
                "bytes); make one with: python -c 'from cryptography.fernet import Fernet; "
                "print(Fernet.generate_key().decode())'"
            ) from None
    if not fernets:
        raise ImproperlyConfigured("CHALK_SECRETS_KEY is empty; set it to a Fernet key")
    return tuple(fernets)


@functools.lru_cache(maxsize=4)
def _fernet_for(keys: str) -> MultiFernet:
    return MultiFernet(list(_keys_for(keys)))


def _fernet() -> MultiFernet:
    return _fernet_for(settings.CHALK_SECRETS_KEY)


def encrypt(value: str) -> str:
    return _fernet().encrypt(value.encode("utf-8")).decode("ascii")


def decrypt(ciphertext: str) -> str:
    try:
        return _fernet().decrypt(ciphertext.encode("ascii")).decode("utf-8")
    except InvalidToken:
        raise SecretDecryptionError(
            "a secret cannot be decrypted with any key in CHALK_SECRETS_KEY; was the key "
            "replaced instead of rotated (new key first, old key kept after a comma)?"
        ) from None


def reencrypt(ciphertext: str) -> str:
    """Returns the ciphertext under the first key (for rotation)."""
    return _fernet().rotate(ciphertext.encode("ascii")).decode("ascii")


def is_under_first_key(ciphertext: str) -> bool:
    """Whether the first key of CHALK_SECRETS_KEY alone decrypts the ciphertext: a rotation has
    nothing left to do for it."""
    try:
        _keys_for(settings.CHALK_SECRETS_KEY)[0].decrypt(ciphertext.encode("ascii"))
    except InvalidToken:
        return False
    return True


def key_problem() -> str | None:
    """Why CHALK_SECRETS_KEY cannot decrypt what is stored (one value of each encrypted column
    is tried), or None: a key replaced instead of rotated is said at start and on /readyz,
    not first by the run that needs a secret at 03:00."""
    from django.apps import apps

    for label, fields in ENCRYPTED_COLUMNS.items():
        model = apps.get_model(label)
        for field in fields:
            stored = model.objects.exclude(**{field: ""}).values_list(field, flat=True).first()
            if stored:
                try:
                    decrypt(stored)
                except SecretDecryptionError as exc:
                    return f"{model._meta.verbose_name_plural} ({field}): {exc}"
    return None

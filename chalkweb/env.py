"""Typed readers for settings from the environment.

Each reader fails loudly on a value it cannot understand, so a typo in a deployment stops the
process at start instead of running with a silent default. `NAME_FILE` is read in place of
`NAME` when set, for secrets mounted as files (Kubernetes, Docker). A bad value raises
Django's ImproperlyConfigured, the project's one "misconfigured" error.
"""

import json
import os
from collections.abc import Sequence
from pathlib import Path

from django.core.exceptions import ImproperlyConfigured


def env_str(name: str, default: str = "") -> str:
    file_path = os.environ.get(f"{name}_FILE")
    if file_path:
        try:
            return Path(file_path).read_text().strip()
        except OSError as exc:
            raise ImproperlyConfigured(f"{name}_FILE={file_path} cannot be read: {exc}") from exc
    return os.environ.get(name, default)


def env_bool(name: str, default: bool = False) -> bool:
    raw = env_str(name, "").strip().lower()
    if raw == "":
        return default
    if raw in ("1", "true", "yes", "on"):
        return True
    if raw in ("0", "false", "no", "off"):
        return False
    raise ImproperlyConfigured(f"{name}={raw!r} is not a boolean: use true or false")


def env_int(name: str, default: int) -> int:
    raw = env_str(name, "").strip()
    if raw == "":
        return default
    try:
        return int(raw)
    except ValueError:
        raise ImproperlyConfigured(f"{name}={raw!r} is not a whole number") from None


def env_float(name: str, default: float) -> float:
    """A finite number of at least 0."""
    raw = env_str(name, "").strip()
    if raw == "":
        return default
    try:
        value = float(raw)
    except ValueError:
        raise ImproperlyConfigured(f"{name}={raw!r} is not a number") from None
    if not 0 <= value < float("inf"):
        raise ImproperlyConfigured(f"{name}={raw!r}: use a finite number of at least 0")
    return value


def env_list(name: str, default: list[str]) -> list[str]:
    raw = env_str(name, "")
    if not raw.strip():
        return default
    return [item.strip() for item in raw.split(",") if item.strip()]


def env_choice(name: str, choices: Sequence[str], default: str) -> str:
    raw = env_str(name, "").strip()
    if raw == "":
        return default
    if raw not in choices:
        raise ImproperlyConfigured(f"{name}={raw!r}: use {_or(choices)}")
    return raw


def env_json_object(
    name: str, *, value_keys: Sequence[str] | None = None, example: str = ""
) -> dict | None:
    """A JSON object, or None when unset. With `value_keys`, each of its values must itself
    be an object with only those keys (`example` shows one in the error)."""
    raw = env_str(name).strip()
    if not raw:
        return None
    try:
        value = json.loads(raw)
    except ValueError as exc:
        raise ImproperlyConfigured(f"{name} is not valid JSON: {exc}") from None
    if not isinstance(value, dict):
        raise ImproperlyConfigured(f"{name} must be a JSON object, not {type(value).__name__}")
    if value_keys is None:
        return value
    for key, item in value.items():
        if not isinstance(item, dict) or not set(item) <= set(value_keys):
            keys = " and ".join(f'"{k}"' for k in value_keys)
            raise ImproperlyConfigured(
                f"{name}[{key!r}] must be an object with only {keys}"
                + (f", e.g. {example}" if example else "")
            )
    return value


def _or(choices: Sequence[str]) -> str:
    # a | a or b | a, b or c
    *rest, last = choices
    return f"{', '.join(rest)} or {last}" if rest else last

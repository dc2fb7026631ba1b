"""`chalkcompute.FunctionSpec`: how a function runs (everything but its name and its code).

One frozen value, built once by the decorator and once by the server from the deploy body, and
passed whole to deploy, rollback, the version diff and the executors. Each field is declared
once below, with its default, the rule that checks it (shared by the decorator and the server,
with the same messages), its JSON form and its schema in the API document. Adding an option is
a field here, a keyword of the decorator and a column of its name on FunctionVersion; the deploy
payload, the server's checks, the content hash, the API documents and the diff follow.

Standard library only: this is imported by users' scripts and inside every run.
"""

from __future__ import annotations

import json
import math
import re
from collections.abc import Callable, Iterable, Mapping
from dataclasses import MISSING, Field, dataclass, field, fields
from typing import Any, NamedTuple

from chalkcompute import schedule as schedule_engine
from chalkcompute.alerts import (
    CAN_BE_OFF,
    DURATION_BOUNDS,
    MAX_AFTER_FAILURES,
    MAX_CHANNELS,
    Alerts,
)
from chalkcompute.errors import FunctionError
from chalkcompute.image import SPEC_SCHEMA as IMAGE_SCHEMA
from chalkcompute.image import Image
from chalkcompute.names import ENV_NAME_SCHEMA, InvalidNameError, check_secret_name
from chalkcompute.quantities import GPU_TYPES, MAX_GPU_COUNT, parse_cpu, parse_gpu, parse_memory
from chalkcompute.retries import MAX_DELAY_SECONDS, MAX_RETRIES, Retries

OVERLAP_POLICIES = ("skip", "allow")
MAX_ENV = 100
MAX_ENV_VALUE_CHARS = 4096
MAX_TAGS = 50
MAX_TAG_VALUE_CHARS = 255
# Tag keys as Kubernetes label keys read them: letters, digits, "-", "_", ".", "/".
TAG_KEY = re.compile(r"^[A-Za-z0-9]([A-Za-z0-9._/-]{0,61}[A-Za-z0-9])?$")
MAX_TIMEOUT_SECONDS = 7 * 24 * 3600
MAX_SECRETS = 100
TOO_LARGE = "holds a number too large to use"


class Problem(NamedTuple):
    """One broken rule: the field, which item of it when it is a list, and the message."""

    field: str
    message: str
    index: int | None = None

    @property
    def path(self) -> str:
        """Where it is in the JSON document, e.g. "cpu" or "secrets[0]"."""
        return self.field if self.index is None else f"{self.field}[{self.index}]"

    @property
    def sentence(self) -> str:
        """The message on its own: one that starts with "must" gets the field as its subject
        ("timeout must be ..."); the others already name what they are about."""
        return f"{self.field} {self.message}" if self.message.startswith("must ") else self.message


class InvalidSpecError(FunctionError, ValueError):
    """A function spec breaks a rule; `problems` lists every broken one, in field order."""

    def __init__(self, problems: Iterable[Problem]) -> None:
        self.problems = tuple(problems)
        super().__init__("; ".join(f"{p.path}: {p.message}" for p in self.problems))


class _ItemProblems(ValueError):
    """Raised by a list field's rule: (index, message) for each bad item."""

    def __init__(self, items: list[tuple[int, str]]) -> None:
        self.items = items
        super().__init__(items[0][1])


# --- the rules: each takes the field's Python or JSON form, returns the value to keep, and
# raises ValueError with a message that says how to fix it --------------------------------------


def check_schedule(value: object) -> schedule_engine.Schedule | None:
    if value is None or isinstance(value, schedule_engine.Schedule):
        return value
    if not isinstance(value, str):
        raise ValueError(
            'must be a crontab such as "0 * * * *", a shorthand such as "10m", or null for a '
            "function that runs only on demand"
        )
    return schedule_engine.parse(value)


_ZONE_WITHOUT_SCHEDULE = (
    "is the zone a schedule is read in, but there is no schedule; add schedule=... or remove "
    "timezone"
)


def check_timezone(value: object) -> str | None:
    """An IANA time zone name the schedule is read in; None (and "UTC") mean UTC."""
    if value is None:
        return None
    zone = schedule_engine.check_timezone(value)
    return None if zone == "UTC" else zone


def check_image(value: object) -> Image:
    return value if isinstance(value, Image) else Image.from_spec(value)


def check_secrets(value: object) -> tuple[str, ...]:
    """Secret names, each once; kept sorted, as the order a function lists them in means
    nothing (each becomes an environment variable)."""
    if isinstance(value, (str, bytes, Mapping)) or not isinstance(value, Iterable):
        raise ValueError(f'must be a list of secret names, e.g. ["API_KEY"], not {value!r:.100}')
    names = tuple(value)
    bad = []
    for index, name in enumerate(names):
        try:
            check_secret_name(name)
        except ValueError as exc:
            bad.append((index, str(exc)))
    if bad:
        raise _ItemProblems(bad)
    if len(names) > MAX_SECRETS:
        raise ValueError(f"lists {len(names)} secrets; a function reads at most {MAX_SECRETS}")
    repeated = sorted({name for name in names if names.count(name) > 1})
    if repeated:
        raise ValueError(f"{', '.join(repeated)} is listed twice")
    return tuple(sorted(names))


def check_env(value: object) -> dict[str, str | dict[str, str]]:
    """Environment variables of every run: a name to a string, or to {"secret": NAME} for the
    value of a stored secret (the secret's name need not be the variable's)."""
    if not isinstance(value, Mapping):
        raise ValueError(
            'must be an object of variable names to strings or {"secret": NAME}, e.g. '
            f'{{"MODE": "prod"}}, not {value!r:.100}'
        )
    if len(value) > MAX_ENV:
        raise ValueError(f"sets {len(value)} variables; a function sets at most {MAX_ENV}")
    env: dict[str, str | dict[str, str]] = {}
    for name, item in value.items():
        try:
            check_secret_name(name)
        except InvalidNameError:
            raise ValueError(
                f"variable name {name!r:.100} is not an environment variable name (letters, "
                "digits and '_', not starting with a digit)"
            ) from None
        if isinstance(item, Mapping) and set(item) == {"secret"}:
            try:
                env[name] = {"secret": check_secret_name(item["secret"])}
            except InvalidNameError as exc:
                raise ValueError(f"variable {name}: {exc}") from None
        elif isinstance(item, str) and "\x00" not in item and len(item) <= MAX_ENV_VALUE_CHARS:
            env[name] = item
        else:
            raise ValueError(
                f"variable {name} must be a string of at most {MAX_ENV_VALUE_CHARS} characters "
                f'without NUL, or {{"secret": NAME}} (chalkcompute.Secret), not {item!r:.100}'
            )
    return dict(sorted(env.items()))


def check_tags(value: object) -> dict[str, str]:
    """Labels of the function, for finding it (GET /api/v1/functions?tag=KEY:VALUE)."""
    if not isinstance(value, Mapping):
        raise ValueError(
            f'must be an object of names to strings, e.g. {{"team": "data"}}, not {value!r:.100}'
        )
    if len(value) > MAX_TAGS:
        raise ValueError(f"has {len(value)} tags; a function has at most {MAX_TAGS}")
    for key, item in value.items():
        if not isinstance(key, str) or not TAG_KEY.fullmatch(key):
            raise ValueError(
                f"tag name {key!r:.100} must be 1 to 63 letters, digits, '-', '_', '.' or '/', "
                'starting and ending with a letter or digit, e.g. "team"'
            )
        if not isinstance(item, str) or len(item) > MAX_TAG_VALUE_CHARS or "\x00" in item:
            raise ValueError(
                f"tag {key} must be a string of at most {MAX_TAG_VALUE_CHARS} characters, not "
                f"{item!r:.100}"
            )
    return dict(sorted(value.items()))


def check_cpu(value: object) -> str | None:
    return None if value is None else parse_cpu(value)


def check_memory(value: object) -> str | None:
    return None if value is None else parse_memory(value)


def check_gpu(value: object) -> str | None:
    if value is None:
        return None
    kind, count = parse_gpu(value)
    text = value.strip()
    # Chalk's count-first "2:nvidia-a100" is kept as "nvidia-a100:2": one spelling per GPU.
    return f"{kind}:{count}" if text[:1].isdigit() else text


def check_retries(value: object) -> Retries:
    return Retries.coerce(value)


def check_timeout(timeout: object) -> float | None:
    """A timeout in seconds, or None for none."""
    if timeout is None:
        return None
    if isinstance(timeout, bool) or not isinstance(timeout, (int, float)):
        raise ValueError(f"must be a number of seconds, e.g. 600, not {timeout!r}")
    if not math.isfinite(timeout) or not 0 < timeout <= MAX_TIMEOUT_SECONDS:
        raise ValueError(
            f"must be more than 0 and at most {MAX_TIMEOUT_SECONDS} seconds (7 days), "
            f"not {timeout!r}"
        )
    return float(timeout)


def check_alerts(value: object) -> Alerts:
    return Alerts.coerce(value)


def check_overlap(overlap: object) -> str:
    if overlap not in OVERLAP_POLICIES:
        raise ValueError(
            'must be "skip" (the default: a slot is skipped while the previous run is '
            f'still running) or "allow", not {overlap!r}'
        )
    return overlap


# --- the schemas of the API document (OpenAPI 3.0's spelling; common/api.py publishes 3.1) ------
# They declare what the rules accept; where a rule cannot be said in a schema (a crontab that
# can never fire, a quantity's bounds after its suffix), the schema admits a part of what the
# rule accepts, so a request the schema allows is never refused. The description says the rest.

_QUANTITY = "a Kubernetes quantity, as a string"
# The values of each crontab field; days stop at 28, which every month has, so that every
# crontab the pattern admits can fire.
_SCHEDULE_ITEM = {
    "minute": r"[1-5]?[0-9]",
    "hour": r"1?[0-9]|2[0-3]",
    "day": r"[1-9]|1[0-9]|2[0-8]",
    "month": r"[1-9]|1[0-2]",
    "weekday": r"[0-7]",
}
_CRON = " ".join(
    rf"(?:\*(?:/[1-9][0-9]?)?|(?:{values})(?:,(?:{values}))*)" for values in _SCHEDULE_ITEM.values()
)
_SHORTHAND = r"(?:[1-9]|[1-5][0-9]|60)m|(?:[1-9]|1[0-9]|2[0-4])h|1d"
_NO_NUL = r"^[^\u0000]*$"

SCHEDULE_SCHEMA = {
    "type": "string",
    "nullable": True,
    "maxLength": schedule_engine.MAX_LENGTH,
    "pattern": rf"^(?:{_SHORTHAND}|{_CRON})$",
    "description": 'A 5-field crontab, read in `timezone` ("0 * * * *") or a shorthand: "Nm" (1-60 '
    'minutes), "Nh" (1-24 hours) or "1d"; null runs only on demand. The server also accepts '
    "ranges, month and weekday names and any crontab that can fire.",
}
TIMEZONE_SCHEMA = {
    "type": "string",
    "nullable": True,
    "maxLength": 64,
    "pattern": r"^[A-Za-z][A-Za-z0-9_+-]*(?:/[A-Za-z0-9_+-]+)*$",
    "description": 'The IANA time zone the schedule is read in, e.g. "Europe/Berlin", with '
    "Debian cron's rules when clocks change; null means UTC.",
}
SECRETS_SCHEMA = {
    "type": "array",
    "maxItems": MAX_SECRETS,
    "uniqueItems": True,
    "items": ENV_NAME_SCHEMA,
    "description": "Names of secrets stored on the server; each reaches the run as the "
    "environment variable of its name.",
}
CPU_SCHEMA = {
    "type": "string",
    "nullable": True,
    "pattern": r"^(?:[1-9][0-9]{0,2}|[0-9]{1,3}\.[0-9]{0,2}[1-9]|[1-9][0-9]{0,5}m)$",
    "description": f'Cores, {_QUANTITY}: "1", "0.5", "500m" (from 1m to 1024).',
}
MEMORY_SCHEMA = {
    "type": "string",
    "nullable": True,
    "pattern": r"^[1-9][0-9]{0,5}(?:\.[0-9]{1,3})?(?:Mi|Gi|G)$",
    "description": f'Bytes, {_QUANTITY}: "512Mi", "1Gi" (from 1Mi to 1Pi).',
}
_GPU_TYPE = "|".join(GPU_TYPES)
_GPU_COUNT = f"[1-{MAX_GPU_COUNT}]"
GPU_SCHEMA = {
    "type": "string",
    "nullable": True,
    "pattern": rf"^(?:(?:{_GPU_TYPE})(?::{_GPU_COUNT})?|{_GPU_COUNT}:(?:{_GPU_TYPE}))$",
    "description": 'A GPU type, with a count after a colon: "nvidia-l4", "nvidia-l4:2", or '
    'count first as Chalk writes it, "2:nvidia-l4" (kept as "nvidia-l4:2").',
}
_DELAY = {"type": "number", "minimum": 0, "maximum": MAX_DELAY_SECONDS}
RETRIES_SCHEMA = {
    "oneOf": [
        {"type": "integer", "minimum": 0, "maximum": MAX_RETRIES},
        {
            "type": "object",
            "additionalProperties": False,
            "required": ["max_retries"],
            "properties": {
                "max_retries": {"type": "integer", "minimum": 0, "maximum": MAX_RETRIES},
                "backoff_coefficient": {"type": "number", "minimum": 1, "maximum": 10},
                # max_delay must not be shorter than initial_delay: a rule between two
                # fields, which the description states (OpenAPI 3.0 cannot).
                "initial_delay": _DELAY,
                "max_delay": _DELAY,
            },
        },
    ],
    "description": "More attempts after a failed one: a count, or a policy whose max_delay is "
    "not shorter than its initial_delay (both at most a day).",
}
ENV_SCHEMA = {
    "type": "object",
    "maxProperties": MAX_ENV,
    "propertyNames": ENV_NAME_SCHEMA,
    "additionalProperties": {
        "oneOf": [
            {"type": "string", "maxLength": MAX_ENV_VALUE_CHARS, "pattern": _NO_NUL},
            {
                "type": "object",
                "additionalProperties": False,
                "required": ["secret"],
                "properties": {"secret": SECRETS_SCHEMA["items"]},
            },
        ]
    },
    "description": "Environment variables of every run, named with letters, digits and '_' "
    '(not starting with a digit): a string, or {"secret": NAME} for a stored secret\'s value. '
    "A name is set here or in secrets, not both.",
}
TAGS_SCHEMA = {
    "type": "object",
    "maxProperties": MAX_TAGS,
    "propertyNames": {"type": "string", "pattern": TAG_KEY.pattern},
    "additionalProperties": {
        "type": "string",
        "maxLength": MAX_TAG_VALUE_CHARS,
        "pattern": _NO_NUL,
    },
    "description": "Labels for finding the function: names of 1 to 63 letters, digits, '-', "
    "'_', '.' or '/' to strings.",
}
TIMEOUT_SCHEMA = {
    "type": "number",
    "nullable": True,
    "minimum": 0,
    "exclusiveMinimum": True,
    "maximum": MAX_TIMEOUT_SECONDS,
    "description": "Seconds an attempt may run (at most 7 days); null for no limit.",
}
OVERLAP_SCHEMA = {
    "type": "string",
    "enum": list(OVERLAP_POLICIES),
    "description": "skip: a slot is skipped while the previous run still runs; allow: it runs.",
}


def _seconds_schema(name: str) -> dict[str, Any]:
    """Seconds within the field's bounds, null for the server's default, and 0 for never
    where the rule can be turned off."""
    low, high = DURATION_BOUNDS[name]
    within = {"type": "number", "minimum": low, "maximum": high}
    if name not in CAN_BE_OFF:
        return {**within, "nullable": True}
    return {"nullable": True, "anyOf": [within, {"type": "number", "enum": [0]}]}


ALERTS_SCHEMA = {
    "type": "object",
    "additionalProperties": False,
    "properties": {
        "on_failure": {
            "type": "array",
            "maxItems": MAX_CHANNELS,
            "uniqueItems": True,
            "items": {"type": "string", "minLength": 1, "maxLength": 100},
        },
        "after_failures": {
            "type": "integer",
            "nullable": True,
            "minimum": 1,
            "maximum": MAX_AFTER_FAILURES,
        },
        "on_recovery": {"type": "boolean", "nullable": True},
        "on_skip": {"type": "boolean", "nullable": True},
        **{name: _seconds_schema(name) for name in DURATION_BOUNDS},
    },
    "description": "Who hears when the function goes wrong: channel names (beside those chosen "
    "on the Channels page), failures in a row before alerting, whether to say recovered, "
    "seconds after a slot before a run that has not started is late, seconds a run may run "
    "before a still-running alert, whether skipped slots alert, and seconds between reminders. "
    "A null takes the server's default.",
}


def _option(
    default: Any,
    check: Callable[[object], Any],
    schema: dict[str, Any],
    *,
    to_json: Callable[[Any], Any] = lambda value: value,
    document: dict[str, Any] | None = None,
) -> Any:
    """A field of FunctionSpec: its default, its rule, its JSON form (to_json, the value
    itself unless given), its schema as the deploy body takes it, and its schema in the
    function document (its JSON form's type, unless given)."""
    if document is None:
        document = {key: schema[key] for key in ("type", "nullable", "enum") if key in schema}
        if "items" in schema:
            document["items"] = {"type": schema["items"]["type"]}
    metadata = {"check": check, "schema": schema, "to_json": to_json, "document": document}
    if isinstance(default, dict):  # a field holds its own dict: dataclasses share no default
        return field(default_factory=dict, metadata=metadata)
    return field(default=default, metadata=metadata)


_RETRIES_DOCUMENT = {
    "type": "object",
    "properties": {
        name: {"type": "integer" if name == "max_retries" else "number"}
        for name in ("max_retries", "backoff_coefficient", "initial_delay", "max_delay")
    },
    "required": ["max_retries", "backoff_coefficient", "initial_delay", "max_delay"],
}


@dataclass(frozen=True, eq=False)
class FunctionSpec:
    """How a function runs. Each field takes its Python value or its JSON form (a schedule
    as text, an image spec, retries as a count or a dict) and keeps it checked and normalised;
    `InvalidSpecError` lists every field that breaks its rule.

    Equal specs have equal `as_dict()`: that JSON is the spec's identity (a schedule as
    written, so "10m" and "*/10 * * * *" are different specs that fire alike)."""

    schedule: schedule_engine.Schedule | None = _option(
        None, check_schedule, SCHEDULE_SCHEMA, to_json=lambda s: None if s is None else s.expr
    )
    timezone: str | None = _option(None, check_timezone, TIMEZONE_SCHEMA)
    image: Image = _option(
        Image.debian_slim(), check_image, IMAGE_SCHEMA, to_json=lambda image: image.spec
    )
    secrets: tuple[str, ...] = _option((), check_secrets, SECRETS_SCHEMA, to_json=list)
    cpu: str | None = _option(None, check_cpu, CPU_SCHEMA)
    memory: str | None = _option(None, check_memory, MEMORY_SCHEMA)
    gpu: str | None = _option(None, check_gpu, GPU_SCHEMA)
    retries: Retries = _option(
        Retries(max_retries=0),
        check_retries,
        RETRIES_SCHEMA,
        to_json=lambda retries: retries.as_dict(),
        document=_RETRIES_DOCUMENT,
    )
    timeout: float | None = _option(None, check_timeout, TIMEOUT_SCHEMA)
    overlap: str = _option("skip", check_overlap, OVERLAP_SCHEMA)
    env: dict = _option(
        {}, check_env, ENV_SCHEMA, to_json=dict, document={"type": "object"}
    )  # fmt: skip
    tags: dict = _option({}, check_tags, TAGS_SCHEMA, to_json=dict, document={"type": "object"})
    alerts: Alerts = _option(
        Alerts(),
        check_alerts,
        ALERTS_SCHEMA,
        to_json=lambda alerts: alerts.as_dict(),
        document={"type": "object", "properties": ALERTS_SCHEMA["properties"]},
    )

    def __post_init__(self) -> None:
        problems: list[Problem] = []
        for spec_field in fields(self):
            try:
                value = self.check_field(spec_field.name, getattr(self, spec_field.name))
            except InvalidSpecError as exc:
                problems += exc.problems
            else:
                object.__setattr__(self, spec_field.name, value)
        both = sorted(set(self.secrets).intersection(self.env)) if not problems else []
        if both:
            problems.append(Problem("env", f"{', '.join(both)} is set in env and in secrets"))
        if not problems:
            problems += self._zone_the_schedule()
        if problems:
            raise InvalidSpecError(problems)

    def _zone_the_schedule(self) -> list[Problem]:
        """Reads the schedule in `timezone`. A Schedule object parsed with a zone brings its
        zone along when `timezone` is not given."""
        schedule, zone = self.schedule, self.timezone
        if schedule is None:
            return [] if zone is None else [Problem("timezone", _ZONE_WITHOUT_SCHEDULE)]
        if zone is None and schedule.timezone != "UTC":
            object.__setattr__(self, "timezone", zone := schedule.timezone)
        if schedule.timezone != (zone or "UTC"):
            object.__setattr__(self, "schedule", schedule_engine.parse(schedule.expr, zone))
        return []

    @property
    def secrets_read(self) -> tuple[str, ...]:
        """Every stored secret a run gets: by its name, and under an env variable."""
        refs = (item["secret"] for item in self.env.values() if isinstance(item, dict))
        return tuple(sorted({*self.secrets, *refs}))

    @classmethod
    def field_names(cls) -> tuple[str, ...]:
        return tuple(_FIELDS)

    @classmethod
    def check_field(cls, name: str, value: object) -> Any:
        """Checks one field (its Python value or its JSON form) with its rule and returns the
        value a spec keeps; raises InvalidSpecError naming the field."""
        try:
            return _FIELDS[name].metadata["check"](value)
        except _ItemProblems as exc:
            problems = (Problem(name, message, index) for index, message in exc.items)
            raise InvalidSpecError(problems) from None
        except OverflowError:
            raise InvalidSpecError([Problem(name, TOO_LARGE)]) from None
        except ValueError as exc:
            raise InvalidSpecError([Problem(name, str(exc))]) from None

    @classmethod
    def from_dict(cls, data: object) -> FunctionSpec:
        """A spec from its JSON (as_dict()'s shape; a missing field takes its default),
        checking every field; raises InvalidSpecError listing each problem."""
        if not isinstance(data, Mapping):
            raise InvalidSpecError(
                [Problem("", f"a function spec is an object, not {data!r:.100}")]
            )
        unknown = sorted(set(data) - set(_FIELDS), key=str)
        if unknown:
            raise InvalidSpecError(
                Problem(
                    str(name),
                    f"is not a field of a function spec; the fields are {', '.join(_FIELDS)}",
                )
                for name in unknown
            )
        return cls(**data)

    def as_dict(self) -> dict[str, Any]:
        """The canonical JSON: the fields of the deploy body besides source, source_filename
        and entrypoint, in field order."""
        return {
            spec_field.name: spec_field.metadata["to_json"](getattr(self, spec_field.name))
            for spec_field in fields(self)
        }

    @property
    def canonical_json(self) -> str:
        return json.dumps(self.as_dict(), sort_keys=True, separators=(",", ":"), ensure_ascii=True)

    @classmethod
    def schema(cls, name: str) -> dict[str, Any]:
        """The field's schema as the deploy body takes it (with its default)."""
        spec_field = _FIELDS[name]
        default = spec_field.metadata["to_json"](_default(spec_field))
        return {**spec_field.metadata["schema"], "default": default}

    @classmethod
    def document_schema(cls, name: str) -> dict[str, Any]:
        """The field's schema in the function document: its JSON form, always present."""
        return dict(_FIELDS[name].metadata["document"])

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, FunctionSpec):
            return NotImplemented
        return self.canonical_json == other.canonical_json

    def __hash__(self) -> int:
        return hash(self.canonical_json)


def _default(spec_field: Field) -> Any:
    if spec_field.default_factory is not MISSING:
        return spec_field.default_factory()
    return spec_field.default


_FIELDS = {spec_field.name: spec_field for spec_field in fields(FunctionSpec)}

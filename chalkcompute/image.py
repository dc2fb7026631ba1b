"""`chalkcompute.Image`: an immutable description of the environment a function runs in.

The spec is canonical JSON (keys sorted, steps in the order written) and its SHA-256 is the
image's identity: equal specs are one image, built once by every executor.
"""

import hashlib
import json
import re
from collections.abc import Iterable, Mapping
from typing import Any, NamedTuple

from chalkcompute.names import InvalidNameError, check_secret_name

PYTHON_VERSIONS = ("3.10", "3.11", "3.12", "3.13")
DEFAULT_PYTHON_VERSION = "3.11"
STEP_KINDS = ("run_commands", "pip_install", "apt_install", "env")
MAX_STEPS = 100
MAX_ITEM_CHARS = 4096
# Debian package names, optionally pinned: "curl", "libpq-dev=15.*".
_APT_PACKAGE = re.compile(r"^[a-z0-9][a-z0-9+.-]+(=[A-Za-z0-9.+~:*-]+)?$")


class InvalidImageError(ValueError):
    pass


# The image spec's schema in the API document (OpenAPI 3.0), with the rules below: strings
# hold no NUL character, and list items are not blank.
# What str.strip() strips, as a regex class body: \s differs between regex engines.
BLANK_CHARS = r"\t-\r\u001c-\u0020\u0085\u00a0\u1680\u2000-\u200a\u2028\u2029\u202f\u205f\u3000"
_NOT_BLANK = rf"^[^\u0000]*[^\u0000{BLANK_CHARS}][^\u0000]*$"
_NOT_OPTION = rf"^[{BLANK_CHARS}]*[^\u0000{BLANK_CHARS}-][^\u0000]*$"
_ITEM = {"type": "string", "maxLength": MAX_ITEM_CHARS}
_ITEMS = {"type": "array", "minItems": 1}
_STEP_SCHEMAS = {
    "apt_install": {**_ITEMS, "items": {**_ITEM, "pattern": _APT_PACKAGE.pattern}},
    "pip_install": {**_ITEMS, "items": {**_ITEM, "pattern": _NOT_OPTION}},
    "run_commands": {**_ITEMS, "items": {**_ITEM, "pattern": _NOT_BLANK}},
    "env": {
        "type": "object",
        "minProperties": 1,
        # OpenAPI 3.0 has no propertyNames: the names' rule is only written here.
        "description": "Environment variables: names of letters, digits and '_', not "
        "starting with a digit (at most 128 characters), to strings.",
        "additionalProperties": {**_ITEM, "pattern": r"^[^\u0000]*$"},
    },
}
SPEC_SCHEMA = {
    "type": "object",
    "additionalProperties": False,
    "properties": {
        "base": {"type": "string", "enum": ["debian_slim"], "default": "debian_slim"},
        "python_version": {
            "type": "string",
            "enum": list(PYTHON_VERSIONS),
            "default": DEFAULT_PYTHON_VERSION,
        },
        "steps": {
            "type": "array",
            "maxItems": MAX_STEPS,
            "items": {
                "oneOf": [
                    {
                        "type": "object",
                        "properties": {kind: schema},
                        "required": [kind],
                        "additionalProperties": False,
                    }
                    for kind, schema in _STEP_SCHEMAS.items()
                ]
            },
        },
    },
    "description": "chalkcompute.Image as JSON: the base, the Python version and the steps in "
    "the order written, each {kind: items}.",
}


class ImageStep(NamedTuple):
    """One step of an image, in the order written. `kind` is one of STEP_KINDS:

    - "apt_install": `content` is the Debian packages to install, e.g. ("curl",)
    - "pip_install": the requirements to pip install, e.g. ("requests==2.32.3",)
    - "run_commands": shell commands, each run on its own with /bin/sh -c
    - "env": (name, value) pairs sorted by name, set in the image and in every run

    A tuple, so executors can `match step: case ImageStep("pip_install", packages): ...`
    and a new kind is one case each."""

    kind: str
    content: tuple


def _strings(kind: str, items: Iterable[object]) -> tuple[str, ...]:
    result = []
    for item in items:
        if not isinstance(item, str) or not item.strip():
            raise InvalidImageError(f"Image.{kind}() takes non-empty strings, not {item!r}")
        if len(item) > MAX_ITEM_CHARS or "\x00" in item:
            raise InvalidImageError(
                f"Image.{kind}() item {item[:40]!r}… is longer than {MAX_ITEM_CHARS} characters "
                "or holds a NUL byte"
            )
        if kind == "apt_install" and not _APT_PACKAGE.fullmatch(item):  # not "curl\n"
            raise InvalidImageError(
                f'Image.apt_install() package {item!r} is not a Debian package name, e.g. "curl"'
            )
        if kind == "pip_install" and item.strip().startswith("-"):
            raise InvalidImageError(
                f"Image.pip_install() takes package names, not options like {item!r}; "
                'use run_commands("pip install ...") for options'
            )
        result.append(item)
    if not result:
        raise InvalidImageError(f"Image.{kind}() needs at least one item")
    return tuple(result)


def _env(values: object) -> tuple[tuple[str, str], ...]:
    if not isinstance(values, Mapping) or not values:
        raise InvalidImageError(
            f"Image.env() takes a non-empty dict of names to strings, not {values!r}"
        )
    pairs = []
    for key, value in values.items():
        try:
            check_secret_name(key)
        except InvalidNameError:
            raise InvalidImageError(
                f"Image.env() name {key!r} is not an environment variable name "
                "(letters, digits and '_', not starting with a digit)"
            ) from None
        if not isinstance(value, str) or "\x00" in value or len(value) > MAX_ITEM_CHARS:
            raise InvalidImageError(f"Image.env() value of {key} must be a string, not {value!r}")
        pairs.append((key, value))
    return tuple(sorted(pairs))


class Image:
    """Build with `Image.debian_slim()` and chain `.pip_install()`, `.apt_install()`,
    `.run_commands()` and `.env()`; each returns a new image and leaves this one as it was."""

    __slots__ = ("_python_version", "_steps")

    def __init__(self, python_version: str, steps: tuple = ()) -> None:
        if python_version not in PYTHON_VERSIONS:
            raise InvalidImageError(
                f"python_version {python_version!r} is not supported; use one of "
                f"{', '.join(PYTHON_VERSIONS)}"
            )
        if len(steps) > MAX_STEPS:
            raise InvalidImageError(f"an image has at most {MAX_STEPS} steps")
        object.__setattr__(self, "_python_version", python_version)
        object.__setattr__(self, "_steps", tuple(ImageStep(*step) for step in steps))

    def __setattr__(self, name: str, value: object) -> None:
        raise AttributeError("Image is immutable: each method returns a new Image")

    @classmethod
    def debian_slim(cls, python_version: str | None = None) -> "Image":
        return cls(python_version or DEFAULT_PYTHON_VERSION)

    def _with(self, kind: str, content: tuple) -> "Image":
        return Image(self._python_version, self._steps + (ImageStep(kind, content),))

    def run_commands(self, *commands: str) -> "Image":
        return self._with("run_commands", _strings("run_commands", commands))

    def pip_install(self, *packages: str) -> "Image":
        return self._with("pip_install", _strings("pip_install", packages))

    def apt_install(self, *packages: str) -> "Image":
        return self._with("apt_install", _strings("apt_install", packages))

    def env(self, values: Mapping[str, str]) -> "Image":
        return self._with("env", _env(values))

    @property
    def python_version(self) -> str:
        return self._python_version

    @property
    def steps(self) -> tuple[ImageStep, ...]:
        return self._steps

    @property
    def environment(self) -> dict[str, str]:
        """The variables of every `env` step, a later step's value winning: what a run gets
        besides its secrets."""
        return {
            name: value
            for step in self._steps
            if step.kind == "env"
            for name, value in step.content
        }

    @property
    def spec(self) -> dict[str, Any]:
        steps = []
        for kind, content in self._steps:
            steps.append({kind: dict(content) if kind == "env" else list(content)})
        return {"base": "debian_slim", "python_version": self._python_version, "steps": steps}

    @property
    def canonical_json(self) -> str:
        return json.dumps(self.spec, sort_keys=True, separators=(",", ":"), ensure_ascii=True)

    @property
    def spec_hash(self) -> str:
        return hashlib.sha256(self.canonical_json.encode()).hexdigest()

    @classmethod
    def from_spec(cls, spec: object) -> "Image":
        """Rebuilds an image from its spec (as sent to the server), validating every part."""
        if not isinstance(spec, Mapping):
            raise InvalidImageError(f"an image spec must be an object, not {spec!r}")
        unknown = set(spec) - {"base", "python_version", "steps"}
        if unknown:
            raise InvalidImageError(f"image spec has unknown fields: {', '.join(sorted(unknown))}")
        if spec.get("base", "debian_slim") != "debian_slim":
            raise InvalidImageError(
                f"image base {spec.get('base')!r} is not supported; use debian_slim"
            )
        image = cls(spec.get("python_version", DEFAULT_PYTHON_VERSION))
        steps = spec.get("steps", [])
        if not isinstance(steps, list):
            raise InvalidImageError("image spec steps must be a list")
        for step in steps:
            if not isinstance(step, Mapping) or len(step) != 1:
                raise InvalidImageError(
                    f"each image step is one {{kind: items}} object, not {step!r}"
                )
            ((kind, content),) = step.items()
            if kind not in STEP_KINDS:
                raise InvalidImageError(
                    f"image step {kind!r} is unknown; use one of {', '.join(STEP_KINDS)}"
                )
            if kind == "env":
                image = image.env(content)
            elif isinstance(content, list):
                image = getattr(image, kind)(*content)
            else:
                raise InvalidImageError(f"image step {kind} takes a list, not {content!r}")
        return image

    def __eq__(self, other: object) -> bool:
        return isinstance(other, Image) and self.canonical_json == other.canonical_json

    def __hash__(self) -> int:
        return hash(self.canonical_json)

    def __repr__(self) -> str:
        return f"Image({self.canonical_json})"

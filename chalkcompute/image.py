"""`chalkcompute.Image`: an immutable description of the environment a function runs in.

The spec is canonical JSON (keys sorted, steps in the order written) and its SHA-256 is the
image's identity: equal specs are one image, built once by every executor.

Local sources (`add_local_python_source`, `add_local_file`, `add_local_dir`) are not part of
the spec: they are the function's code, read at deploy and shipped with its version, so an
image stays one build whatever files the functions that use it carry.
"""

import fnmatch
import hashlib
import importlib.util
import json
import os
import re
from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path, PurePosixPath
from typing import Any, NamedTuple

from chalkcompute.errors import FunctionError
from chalkcompute.names import ENV_NAME_SCHEMA, InvalidNameError, check_secret_name

PYTHON_VERSIONS = ("3.10", "3.11", "3.12", "3.13", "3.14")
DEFAULT_PYTHON_VERSION = "3.11"
STEP_KINDS = ("run_commands", "pip_install", "apt_install", "env")
MAX_STEPS = 100
MAX_ITEM_CHARS = 4096
# Debian package names, optionally pinned: "curl", "libpq-dev=15.*".
# A Debian package name, and optionally "=version". Never ending in "-", nor its version: apt
# reads a trailing "-" as "remove" ("bubblewrap-" would remove the sandbox). A trailing "+" is
# allowed in names only, where it is real (g++); no option ("-y") can match.
_APT_PACKAGE = re.compile(r"^[a-z0-9][a-z0-9+.-]*[a-z0-9+.](=[A-Za-z0-9.+~:*-]*[A-Za-z0-9.~:*])?$")


class InvalidImageError(FunctionError, ValueError):
    pass


# Chalk's Image.base() references that are a debian_slim image: python:3.12-slim, …-trixie.
_OFFICIAL_PYTHON = re.compile(
    r"^(?:docker\.io/)?(?:library/)?python:(3\.\d+)(?:\.\d+)?-slim(?:-trixie|-bookworm)?$"
)
# Chalk's apps live in /app; on Chalkweb that is the run's working directory.
APP_DIR = PurePosixPath("/app")
# Never shipped from a local folder: version control and Python's caches.
SKIPPED_PARTS = {".git", "__pycache__", ".mypy_cache", ".pytest_cache", ".venv"}


def _in_run() -> bool:
    """Inside a run the module is imported again: the deployer's local files are not there,
    and the image is not used, so local paths are not read."""
    return bool(os.environ.get("CHALK_IN_RUN"))


class LocalSource(NamedTuple):
    """A local file or folder shipped with the function: `path` on the deployer's machine,
    `dest` relative to the run's working directory, `exclude` glob patterns for a folder."""

    path: Path
    dest: str
    exclude: tuple[str, ...] = ()


def _run_path(method: str, dest: object) -> str:
    """Where a file goes in the run, relative to its working directory (which is on sys.path):
    a relative path, or one under /app as Chalk writes it."""
    if not isinstance(dest, str) or not dest.strip() or "\x00" in dest:
        raise InvalidImageError(f"Image.{method}() dest must be a path, not {dest!r}")
    path = PurePosixPath(dest)
    if path.is_absolute():
        if path != APP_DIR and APP_DIR not in path.parents:
            raise InvalidImageError(
                f"Image.{method}() dest {dest!r}: files go in the run's working directory; "
                f'give a relative path ("config.yaml") or one under /app ("/app/config.yaml")'
            )
        path = path.relative_to(APP_DIR)
    if ".." in path.parts:
        raise InvalidImageError(f"Image.{method}() dest {dest!r} must not hold '..'")
    return path.as_posix()


def _requirements(method: str, path: object) -> tuple[str, ...]:
    """The requirements of a requirements file, one a line, without comments and blank lines;
    pip options (-r, --index-url, …) are refused as in pip_install."""
    try:
        text = Path(path).read_text(encoding="utf-8")  # type: ignore[arg-type]
    except (OSError, TypeError, UnicodeDecodeError) as exc:
        raise InvalidImageError(f"Image.{method}({path!r}): cannot read it: {exc}") from None
    lines = [line.split(" #")[0].strip() for line in text.splitlines()]
    requirements = tuple(line for line in lines if line and not line.startswith("#"))
    if not requirements:
        raise InvalidImageError(f"Image.{method}({path!r}): the file lists no requirement")
    return requirements


def _items(values: tuple) -> tuple:
    """`pip_install("a", "b")` and Chalk's `pip_install(["a", "b"])` alike."""
    if len(values) == 1 and isinstance(values[0], (list, tuple)):
        return tuple(values[0])
    return values


# The image spec's schema in the API document, with the rules below: strings
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
        "propertyNames": ENV_NAME_SCHEMA,
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
            why = ' (a trailing "-" tells apt to remove it)' if item.endswith("-") else ""
            raise InvalidImageError(
                f"Image.apt_install() package {item!r} is not a Debian package name{why}, "
                'e.g. "curl" or "libpq-dev=15.*"'
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

    __slots__ = ("_python_version", "_steps", "_local_sources")

    def __init__(self, python_version: str, steps: tuple = (), local_sources: tuple = ()) -> None:
        if python_version not in PYTHON_VERSIONS:
            raise InvalidImageError(
                f"python_version {python_version!r} is not supported; use one of "
                f"{', '.join(PYTHON_VERSIONS)}"
            )
        if len(steps) > MAX_STEPS:
            raise InvalidImageError(f"an image has at most {MAX_STEPS} steps")
        object.__setattr__(self, "_python_version", python_version)
        object.__setattr__(self, "_steps", tuple(ImageStep(*step) for step in steps))
        object.__setattr__(self, "_local_sources", tuple(local_sources))

    def __setattr__(self, name: str, value: object) -> None:
        raise AttributeError("Image is immutable: each method returns a new Image")

    @classmethod
    def debian_slim(cls, python_version: str | None = None) -> "Image":
        return cls(python_version or DEFAULT_PYTHON_VERSION)

    @classmethod
    def base(cls, image: str) -> "Image":
        """Chalk's `Image.base(ref)` for the official Python images: "python:3.12-slim" (also
        -slim-trixie, -slim-bookworm) is `debian_slim("3.12")`."""
        match = _OFFICIAL_PYTHON.fullmatch(image.strip()) if isinstance(image, str) else None
        if match is None:
            raise InvalidImageError(
                f"Image.base({image!r}): Chalkweb builds images from the official Python slim "
                'images only, e.g. Image.base("python:3.12-slim") or Image.debian_slim("3.12"); '
                "add what your image holds with apt_install, pip_install and run_commands"
            )
        return cls(match[1])

    def _with(self, kind: str, content: tuple) -> "Image":
        steps = self._steps + (ImageStep(kind, content),)
        return Image(self._python_version, steps, self._local_sources)

    def run_commands(self, *commands: str) -> "Image":
        return self._with("run_commands", _strings("run_commands", commands))

    def pip_install(self, *packages: str | Sequence[str]) -> "Image":
        return self._with("pip_install", _strings("pip_install", _items(packages)))

    def apt_install(self, *packages: str | Sequence[str]) -> "Image":
        return self._with("apt_install", _strings("apt_install", _items(packages)))

    def uv_pip_install(self, *packages: str | Sequence[str]) -> "Image":
        """Chalk's uv install: the same as pip_install on Chalkweb (installed with pip)."""
        return self.pip_install(*packages)

    def pip_install_from_requirements(self, path: str) -> "Image":
        """pip installs what the requirements file lists, read now (as Chalk does)."""
        if _in_run():
            return self
        return self.pip_install(_requirements("pip_install_from_requirements", path))

    def uv_pip_install_from_requirements(self, path: str) -> "Image":
        if _in_run():
            return self
        return self.pip_install(_requirements("uv_pip_install_from_requirements", path))

    def _with_source(self, method: str, source: LocalSource, is_dir: bool) -> "Image":
        if not _in_run() and not (source.path.is_dir() if is_dir else source.path.is_file()):
            kind = "folder" if is_dir else "file"
            raise InvalidImageError(f"Image.{method}(): {source.path} is not a {kind} here")
        sources = self._local_sources + (source,)
        return Image(self._python_version, self._steps, sources)

    def add_local_python_source(self, *modules: str, copy: bool = False) -> "Image":
        """Ships local modules or packages (found as `import` finds them now) with the
        function, importable in the run under their names. A dotted name ships its top-level
        package. `copy` is Chalk's and changes nothing here: files always ship with the deploy."""
        image = self
        for module in modules:
            if not isinstance(module, str) or not all(
                part.isidentifier() for part in module.split(".")
            ):
                raise InvalidImageError(
                    f"Image.add_local_python_source() takes module names, not {module!r}"
                )
            top = module.split(".")[0]
            path = Path(top) if _in_run() else _module_path(top)
            dest = top if path.is_dir() or _in_run() else f"{top}.py"
            image = image._with_source(
                "add_local_python_source", LocalSource(path, dest), path.is_dir()
            )
        return image

    def add_local_file(
        self, src: str, dest: str, *, mode: int | None = None, strategy: str = "volume"
    ) -> "Image":
        """Ships the file `src` to `dest` in the run: a path relative to its working directory,
        or under /app as Chalk's docs write it ("/app/config.yaml" is ./config.yaml). `mode`
        and `strategy` are Chalk's and change nothing here."""
        target = _run_path("add_local_file", dest)
        if dest.endswith("/") or target == ".":
            target = PurePosixPath(target, Path(src).name).as_posix()
        return self._with_source("add_local_file", LocalSource(Path(src), target), False)

    def add_local_dir(
        self,
        src: str,
        dest: str,
        *,
        strategy: str = "volume",
        exclude: Sequence[str] | None = None,
        archive: bool = False,
    ) -> "Image":
        """Ships the folder `src` to `dest` in the run (see add_local_file), but for .git,
        __pycache__ and the glob patterns in `exclude` (matched against paths inside it)."""
        target = _run_path("add_local_dir", dest)
        patterns = tuple(exclude or ())
        if not all(isinstance(p, str) for p in patterns):
            raise InvalidImageError("Image.add_local_dir() exclude takes glob patterns")
        return self._with_source("add_local_dir", LocalSource(Path(src), target, patterns), True)

    @property
    def local_sources(self) -> tuple[LocalSource, ...]:
        return self._local_sources

    def local_files(self) -> dict[str, bytes]:
        """Every shipped file, read now: its path in the run, and its content. A later source
        of the same path wins."""
        return read_sources(self._local_sources)

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


def read_sources(sources: Iterable[LocalSource]) -> dict[str, bytes]:
    """The files of `sources`, read now: {path in the run: content}. A later source of the
    same path wins."""
    files: dict[str, bytes] = {}
    for source in sources:
        try:
            if source.path.is_dir():
                for path in sorted(source.path.rglob("*")):
                    relative = path.relative_to(source.path).as_posix()
                    if path.is_file() and not skipped(relative, source.exclude):
                        dest = PurePosixPath(source.dest, relative).as_posix()
                        files[dest.removeprefix("./")] = path.read_bytes()
            else:
                files[source.dest] = source.path.read_bytes()
        except OSError as exc:
            raise InvalidImageError(f"cannot read {source.path}: {exc}") from None
    return files


def _module_path(name: str) -> Path:
    try:
        spec = importlib.util.find_spec(name)
    except (ImportError, ValueError):
        spec = None
    if spec is None:
        raise InvalidImageError(
            f"Image.add_local_python_source({name!r}): no module {name!r} can be imported "
            "here; run the script from the folder that holds it"
        )
    if spec.submodule_search_locations:
        return Path(list(spec.submodule_search_locations)[0])
    if not spec.origin or not spec.origin.endswith(".py"):
        raise InvalidImageError(
            f"Image.add_local_python_source({name!r}): {name} is not a module of .py files "
            "(built in, or compiled); install it with pip_install instead"
        )
    return Path(spec.origin)


def skipped(relative: str, exclude: tuple[str, ...] = ()) -> bool:
    parts = PurePosixPath(relative).parts
    if SKIPPED_PARTS.intersection(parts) or relative.endswith(".pyc"):
        return True
    return any(fnmatch.fnmatch(relative, pattern) for pattern in exclude)

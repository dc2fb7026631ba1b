"""`@chalkcompute.function(...)`: declares a function Chalkweb runs, checked when it is defined."""

import functools
import inspect
import math
from collections.abc import Callable, Iterable
from typing import Any

from chalkcompute import schedule as schedule_engine
from chalkcompute.image import Image
from chalkcompute.names import InvalidNameError, check_function_name
from chalkcompute.quantities import InvalidQuantityError, parse_cpu, parse_gpu, parse_memory
from chalkcompute.retries import InvalidRetriesError, Retries
from chalkcompute.secret import Secret

OVERLAP_POLICIES = ("skip", "allow")
MAX_TIMEOUT_SECONDS = 7 * 24 * 3600


class InvalidFunctionError(ValueError):
    pass


class ChalkFunction:
    """A declared function. Calling it runs the original function locally."""

    def __init__(
        self,
        fn: Callable[..., Any],
        *,
        name: str,
        schedule: schedule_engine.Schedule | None,
        image: Image,
        secrets: tuple[Secret, ...],
        cpu: str | None,
        memory: str | None,
        gpu: str | None,
        retries: Retries,
        timeout: float | None,
        overlap: str,
    ) -> None:
        self.fn = fn
        self.name = name
        self.schedule = schedule
        self.image = image
        self.secrets = secrets
        self.cpu = cpu
        self.memory = memory
        self.gpu = gpu
        self.retries = retries
        self.timeout = timeout
        self.overlap = overlap
        functools.update_wrapper(self, fn)

    def __call__(self, *args: Any, **kwargs: Any) -> Any:
        return self.fn(*args, **kwargs)

    def __repr__(self) -> str:
        return f"<chalkcompute.function {self.name}>"


def check_timeout(timeout: object) -> float | None:
    """A timeout in seconds, or None for none. The decorator and the server share this rule
    (and check_overlap's); each names the field in front of the message."""
    if timeout is None:
        return None
    if isinstance(timeout, bool) or not isinstance(timeout, (int, float)):
        raise ValueError(f"must be a number of seconds, e.g. 600, not {timeout!r}")
    if not math.isfinite(timeout) or not 0 < timeout <= MAX_TIMEOUT_SECONDS:
        raise ValueError(
            f"must be more than 0 and at most {MAX_TIMEOUT_SECONDS} seconds (7 days), "
            f"not {timeout!r}"
        )
    return timeout


def check_overlap(overlap: object) -> str:
    if overlap not in OVERLAP_POLICIES:
        raise ValueError(
            'must be "skip" (the default: a slot is skipped while the previous run is '
            f'still running) or "allow", not {overlap!r}'
        )
    return overlap


def _fail(fn: Callable[..., Any], problem: str) -> InvalidFunctionError:
    return InvalidFunctionError(f"@chalkcompute.function on {fn.__qualname__}: {problem}")


def _check_callable_shape(fn: Callable[..., Any], scheduled: bool) -> None:
    caller = "the platform calls it on a schedule" if scheduled else "the platform calls it"
    if inspect.isgeneratorfunction(fn) or inspect.isasyncgenfunction(fn):
        raise _fail(
            fn,
            f"a function Chalkweb runs cannot be a generator ({caller}, and nothing consumes "
            "what it yields); return a value instead of using yield",
        )
    parameters = list(inspect.signature(fn).parameters.values())
    if scheduled and parameters:
        names = ", ".join(str(p) for p in parameters)
        raise _fail(
            fn,
            f"a scheduled function takes no parameters, but it has ({names}); {caller} with "
            "no inputs, so read them inside the function (from your store, or a Secret)",
        )
    required = [
        p.name
        for p in parameters
        if p.default is p.empty and p.kind not in (p.VAR_POSITIONAL, p.VAR_KEYWORD)
    ]
    if required:
        raise _fail(
            fn,
            f"parameters without a default ({', '.join(required)}): {caller} with no inputs; "
            "give them defaults or read them inside the function",
        )


def _declare(fn: Callable[..., Any], options: dict[str, Any]) -> ChalkFunction:
    if not callable(fn) or not hasattr(fn, "__code__"):
        raise InvalidFunctionError(
            f"@chalkcompute.function decorates a plain Python function, not {fn!r}"
        )
    raw_schedule = options["schedule"]
    parsed_schedule = None
    if raw_schedule is not None:
        try:
            parsed_schedule = schedule_engine.parse(raw_schedule)
        except schedule_engine.InvalidScheduleError as exc:
            raise _fail(fn, str(exc)) from None
    _check_callable_shape(fn, scheduled=parsed_schedule is not None)

    name = options["name"] if options["name"] is not None else fn.__name__.replace("_", "-")
    try:
        check_function_name(name)
    except InvalidNameError as exc:
        hint = "" if options["name"] is not None else '; pass name="..." to choose one'
        raise _fail(fn, f"{exc}{hint}") from None

    image = options["image"]
    if image is None:
        image = Image.debian_slim()
    elif not isinstance(image, Image):
        raise _fail(fn, f"image must be a chalkcompute.Image, not {image!r}")

    secrets = options["secrets"]
    if isinstance(secrets, (Secret, str)) or not isinstance(secrets, Iterable):
        raise _fail(
            fn, 'secrets must be a list of chalkcompute.Secret, e.g. [Secret.from_env("KEY")]'
        )
    secrets = tuple(secrets)
    for secret in secrets:
        if not isinstance(secret, Secret):
            raise _fail(
                fn, f"secrets holds {secret!r}; use chalkcompute.Secret.from_env or from_name"
            )
    names = [s.name for s in secrets]
    duplicated = sorted({n for n in names if names.count(n) > 1})
    if duplicated:
        raise _fail(fn, f"secret {', '.join(duplicated)} is listed twice")

    try:
        cpu = None if options["cpu"] is None else parse_cpu(options["cpu"])
        memory = None if options["memory"] is None else parse_memory(options["memory"])
        gpu = None if options["gpu"] is None else options["gpu"].strip()
        if gpu is not None:
            parse_gpu(gpu)
        retries = Retries.coerce(options["retries"])
    except (InvalidQuantityError, InvalidRetriesError) as exc:
        raise _fail(fn, str(exc)) from None
    except AttributeError:
        raise _fail(
            fn, f'gpu must be a string such as "nvidia-l4", not {options["gpu"]!r}'
        ) from None

    try:
        timeout = check_timeout(options["timeout"])
    except ValueError as exc:
        raise _fail(fn, f"timeout {exc}") from None
    try:
        overlap = check_overlap(options["overlap"])
    except ValueError as exc:
        raise _fail(fn, f"overlap {exc}") from None

    return ChalkFunction(
        fn,
        name=name,
        schedule=parsed_schedule,
        image=image,
        secrets=secrets,
        cpu=cpu,
        memory=memory,
        gpu=gpu,
        retries=retries,
        timeout=timeout,
        overlap=overlap,
    )


def function(
    fn: Callable[..., Any] | None = None,
    *,
    name: str | None = None,
    schedule: str | None = None,
    image: Image | None = None,
    secrets: Iterable[Secret] = (),
    cpu: str | None = None,
    memory: str | None = None,
    gpu: str | None = None,
    retries: int | Retries = 0,
    timeout: float | None = None,
    overlap: str = "skip",
) -> Any:
    """Declares a function Chalkweb runs: on `schedule` (crontab or "10m"/"6h"/"1d", UTC),
    or on demand when no schedule is given. Raises InvalidFunctionError at definition time.

    Running the defining script as `__main__` deploys the function to CHALK_COMPUTE_URL.
    """
    options = dict(
        name=name, schedule=schedule, image=image, secrets=secrets, cpu=cpu, memory=memory,
        gpu=gpu, retries=retries, timeout=timeout, overlap=overlap,
    )  # fmt: skip

    def decorate(target: Callable[..., Any]) -> ChalkFunction:
        declared = _declare(target, options)
        from chalkcompute.deploy import deploy_if_main

        deploy_if_main(declared)
        return declared

    return decorate(fn) if fn is not None else decorate

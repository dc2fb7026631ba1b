"""`@chalkcompute.function(...)`: declares a function Chalkweb runs, checked when it is defined."""

import inspect
from collections.abc import Callable, Iterable
from typing import Any

from chalkcompute.alerts import Alerts
from chalkcompute.declaration import ChalkFunction
from chalkcompute.deploy import deploy_if_main
from chalkcompute.image import Image
from chalkcompute.names import InvalidNameError, check_function_name
from chalkcompute.retries import Retries
from chalkcompute.secret import Secret
from chalkcompute.spec import FunctionSpec, InvalidSpecError


class InvalidFunctionError(ValueError):
    pass


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


def _declared_secrets(fn: Callable[..., Any], secrets: object) -> tuple[Secret, ...]:
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
    return secrets


def _declare(fn: Callable[..., Any], name: str | None, options: dict[str, Any]) -> ChalkFunction:
    """1. What the decorator takes as Python objects: a function, an Image, Secrets.
    2. The spec, with the rules the server applies too (the first problem is raised).
    3. What the spec decides about the function: a scheduled one takes no parameters.
    4. Its name."""
    if not callable(fn) or not hasattr(fn, "__code__"):
        raise InvalidFunctionError(
            f"@chalkcompute.function decorates a plain Python function, not {fn!r}"
        )
    image = options["image"]
    if image is None:
        options["image"] = Image.debian_slim()
    elif not isinstance(image, Image):
        raise _fail(fn, f"image must be a chalkcompute.Image, not {image!r}")
    secrets = _declared_secrets(fn, options["secrets"])
    options["secrets"] = [secret.name for secret in secrets]
    try:
        spec = FunctionSpec(**options)
    except InvalidSpecError as exc:
        raise _fail(fn, exc.problems[0].sentence) from None

    _check_callable_shape(fn, scheduled=spec.schedule is not None)
    derived = name is None
    name = fn.__name__.replace("_", "-") if derived else name
    try:
        check_function_name(name)
    except InvalidNameError as exc:
        hint = '; pass name="..." to choose one' if derived else ""
        raise _fail(fn, f"{exc}{hint}") from None
    return ChalkFunction(fn, name=name, spec=spec, secrets=secrets)


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
    alerts: Alerts | None = None,
) -> Any:
    """Declares a function Chalkweb runs: on `schedule` (crontab or "10m"/"6h"/"1d", UTC),
    or on demand when no schedule is given. Raises InvalidFunctionError at definition time.

    Running the defining script as `__main__` deploys the function to CHALK_COMPUTE_URL.
    """
    # The FunctionSpec fields, as given.
    options = dict(
        schedule=schedule, image=image, secrets=secrets, cpu=cpu, memory=memory, gpu=gpu,
        retries=retries, timeout=timeout, overlap=overlap, alerts=alerts,
    )  # fmt: skip

    def decorate(target: Callable[..., Any]) -> ChalkFunction:
        declared = _declare(target, name, dict(options))
        deploy_if_main(declared)
        return declared

    return decorate(fn) if fn is not None else decorate

"""`@chalkcompute.function(...)`: declares a function Chalkweb runs, checked when it is defined."""

import inspect
import math
import os
import sys
from collections.abc import Callable, Iterable, Mapping
from dataclasses import replace
from typing import Any

from chalkcompute.alerts import Alerts
from chalkcompute.declaration import ChalkFunction
from chalkcompute.deploy import deploy_if_main, note_declared
from chalkcompute.errors import FunctionError
from chalkcompute.image import Image
from chalkcompute.names import InvalidNameError, check_function_name, function_name_from
from chalkcompute.retries import Retries, RetryPolicy
from chalkcompute.secret import MissingSecretError, Secret
from chalkcompute.spec import FunctionSpec, InvalidSpecError

# Chalk's decorator arguments that configure Chalk's own infrastructure (scaling groups,
# batching, identity, tracing …), with Chalk's defaults. Chalkweb starts one process or Job per
# run, so none changes what a run does: each is accepted, and one set to something else than
# its default says so in one warning line.
CHALK_ONLY_ARGUMENTS: dict[str, object] = {
    "compute_class": None,
    "network_policy": None,
    "execution_target": None,
    "chalk_identity": False,
    "authenticated": False,
    "readiness_probe": None,
    "min_replicas": 1,
    "max_replicas": 1,
    "shutdown_delay_seconds": None,
    "scaling_interval_seconds": None,
    "target_cpu_utilization_percentage": None,
    "target_gpu_utilization_percentage": None,
    "target_queue_depth": None,
    "cron_scaling_trigger": None,
    "scale_from_zero_request_policy": None,
    "serialization_format": "pyarrow",
    "options": None,
    "max_buffer_duration": None,
    "max_batching_size": None,
    "rate_limit": None,
    "queue_policy": None,
    "models": None,
    "tracing": None,
}


class InvalidFunctionError(FunctionError, ValueError):
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


def _declared_secrets(fn: Callable[..., Any], secrets: object, env: object) -> tuple[Secret, ...]:
    """Every Secret the function reads, each with the variable the run gets it as: those of
    `secrets` (a .env file's, one each), then the Secret values of `env` under their keys."""
    if secrets is None:
        secrets = ()
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
    try:
        declared = [one for secret in secrets for one in secret.expand()]
    except MissingSecretError as exc:
        raise _fail(fn, str(exc)) from None
    names = [s.name for s in declared]
    duplicated = sorted({n for n in names if names.count(n) > 1})
    if duplicated:
        raise _fail(fn, f"secret {', '.join(duplicated)} is listed twice")
    if isinstance(env, Mapping):
        declared += [
            replace(value, env_var=key) for key, value in env.items() if isinstance(value, Secret)
        ]
    variables = [s.env_var for s in declared]
    twice = sorted({n for n in variables if variables.count(n) > 1})
    if twice:
        raise _fail(fn, f"the run would get ${twice[0]} from two secrets; keep one")
    return tuple(declared)


def _spec_env(env: object, secrets: tuple[Secret, ...]) -> object:
    """The spec's env: plain values as given, and each secret read under another variable
    than its name as {"secret": name}."""
    if env is None:
        env = {}
    if not isinstance(env, Mapping):
        return env  # the spec's rule says what is wrong
    plain = {key: value for key, value in env.items() if not isinstance(value, Secret)}
    refs = {s.env_var: {"secret": s.name} for s in secrets if s.env_var != s.name}
    return {**plain, **refs}


def _chalk_options(
    fn: Callable[..., Any], chalk_options: dict[str, Any], options: dict[str, Any]
) -> list[str]:
    """Checks Chalk's arguments that are not Chalkweb's own and maps those that have a
    meaning here; returns the warnings for those that have none."""
    unknown = sorted(set(chalk_options) - set(CHALK_ONLY_ARGUMENTS) - {"volumes", "concurrency"})
    if unknown:
        raise TypeError(f"function() got an unexpected keyword argument {unknown[0]!r}")
    if chalk_options.get("volumes"):
        raise _fail(
            fn,
            "volumes are not supported on Chalkweb yet: keep state in your own store (a "
            "database, object storage) and read it with a Secret's credentials",
        )
    ignored = [
        f"{name}={value!r:.40}"
        for name, value in chalk_options.items()
        if name in CHALK_ONLY_ARGUMENTS and value != CHALK_ONLY_ARGUMENTS[name]
    ]
    concurrency = chalk_options.get("concurrency")
    if concurrency == 1 and options["overlap"] != "skip":
        raise _fail(
            fn, 'concurrency=1 means never two runs at once: it cannot go with overlap="allow"'
        )
    if concurrency is not None and concurrency != 1:
        ignored.append(f"concurrency={concurrency!r:.40}")
    if isinstance(options["retries"], RetryPolicy):
        ignored += [f"RetryPolicy {name}" for name in options["retries"].ignored_fields()]
    return ignored


def _check_call_timeout(fn: Callable[..., Any], call_timeout: object) -> float | None:
    if call_timeout is None:
        return None
    if (
        isinstance(call_timeout, bool)
        or not isinstance(call_timeout, (int, float))
        or not math.isfinite(call_timeout)
        or call_timeout <= 0
    ):
        raise _fail(
            fn,
            f"call_timeout must be a number of seconds more than 0 (how long .remote() waits "
            f"for the run), not {call_timeout!r}",
        )
    return float(call_timeout)


def _declare(
    fn: Callable[..., Any],
    name: str | None,
    options: dict[str, Any],
    *,
    call_timeout: object,
    chalk_options: dict[str, Any],
) -> ChalkFunction:
    """1. What the decorator takes as Python objects: a function, an Image, Secrets, and
       Chalk's arguments (mapped, refused, or accepted with a warning).
    2. The spec, with the rules the server applies too (the first problem is raised).
    3. What the spec decides about the function: a scheduled one takes no parameters.
    4. Its name: as given, or made from the Python name as Chalk makes it."""
    if not callable(fn) or not hasattr(fn, "__code__"):
        raise InvalidFunctionError(
            f"@chalkcompute.function decorates a plain Python function, not {fn!r}"
        )
    ignored = _chalk_options(fn, chalk_options, options)
    timeout_of_calls = _check_call_timeout(fn, call_timeout)
    image = options["image"]
    if image is None:
        options["image"] = Image.debian_slim()
    elif not isinstance(image, Image):
        raise _fail(fn, f"image must be a chalkcompute.Image, not {image!r}")
    secrets = _declared_secrets(fn, options["secrets"], options["env"])
    options["secrets"] = [s.name for s in secrets if s.env_var == s.name]
    options["env"] = _spec_env(options["env"], secrets)
    options["tags"] = {} if options["tags"] is None else options["tags"]
    try:
        spec = FunctionSpec(**options)
    except InvalidSpecError as exc:
        raise _fail(fn, exc.problems[0].sentence) from None

    _check_callable_shape(fn, scheduled=spec.schedule is not None)
    derived = name is None
    name = function_name_from(fn.__name__) if derived else name
    try:
        check_function_name(name)
    except InvalidNameError as exc:
        hint = '; pass name="..." to choose one' if derived else ""
        raise _fail(fn, f"{exc}{hint}") from None
    if ignored and not os.environ.get("CHALK_IN_RUN"):
        print(
            f"chalkcompute: warning: {name}: {', '.join(ignored)} "
            f"{'has' if len(ignored) == 1 else 'have'} no effect on Chalkweb; see "
            '"Coming from Chalk" in its README',
            file=sys.stderr,
        )
    return ChalkFunction(fn, name=name, spec=spec, secrets=secrets, call_timeout=timeout_of_calls)


def function(
    fn: Callable[..., Any] | None = None,
    *,
    name: str | None = None,
    schedule: str | None = None,
    timezone: str | None = None,
    image: Image | None = None,
    secrets: Iterable[Secret] | None = (),
    cpu: str | None = None,
    memory: str | None = None,
    gpu: str | None = None,
    retries: int | Retries | RetryPolicy | None = 0,
    timeout: float | None = None,
    overlap: str = "skip",
    env: Mapping[str, str | Secret] | None = None,
    tags: Mapping[str, str] | None = None,
    alerts: Alerts | None = None,
    call_timeout: float | None = None,
    **chalk_options: Any,
) -> Any:
    """Declares a function Chalkweb runs: on `schedule` (crontab or "10m"/"6h"/"1d", read in
    `timezone`, an IANA name, UTC unless given), or on demand when no schedule is given.
    Raises InvalidFunctionError at definition time.

    `env` sets variables of every run (a Secret value: that secret under that name), `tags`
    labels the function, `call_timeout` bounds how long `.remote()` waits. Chalk's other
    arguments are accepted (CHALK_ONLY_ARGUMENTS, warned about when set), `concurrency=1`
    is overlap="skip", and `volumes` is refused.

    Running the defining script as `__main__` deploys the function to CHALK_COMPUTE_URL.
    """
    # The FunctionSpec fields, as given.
    options = dict(
        schedule=schedule, timezone=timezone, image=image, secrets=secrets, cpu=cpu,
        memory=memory, gpu=gpu, retries=retries, timeout=timeout, overlap=overlap, env=env,
        tags=tags, alerts=alerts,
    )  # fmt: skip

    def decorate(target: Callable[..., Any]) -> ChalkFunction:
        declared = _declare(
            target,
            name,
            dict(options),
            call_timeout=call_timeout,
            chalk_options=chalk_options,
        )
        note_declared(declared)
        deploy_if_main(declared)
        return declared

    return decorate(fn) if fn is not None else decorate

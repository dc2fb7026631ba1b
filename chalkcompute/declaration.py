"""`ChalkFunction`: what `@chalkcompute.function` returns. Its own module, so that deploying
one (chalkcompute.deploy) does not import the decorator that deploys it."""

import functools
from collections.abc import Callable
from typing import Any

from chalkcompute.secret import Secret
from chalkcompute.spec import FunctionSpec


class ChalkFunction:
    """A declared function. Calling it runs the original function locally.

    `spec` is how it runs, and its fields read through: `declared.cpu` is `declared.spec.cpu`.
    `secrets` are the Secret declarations (where each value comes from), in the order given."""

    def __init__(
        self, fn: Callable[..., Any], *, name: str, spec: FunctionSpec, secrets: tuple[Secret, ...]
    ) -> None:
        self.fn = fn
        self.name = name
        self.spec = spec
        self.secrets = secrets
        functools.update_wrapper(self, fn)

    def __getattr__(self, attr: str) -> Any:
        # Only reached for what the instance does not have itself.
        if attr in FunctionSpec.field_names():
            return getattr(self.spec, attr)
        raise AttributeError(f"{type(self).__name__!r} object has no attribute {attr!r}")

    def __call__(self, *args: Any, **kwargs: Any) -> Any:
        return self.fn(*args, **kwargs)

    def __repr__(self) -> str:
        return f"<chalkcompute.function {self.name}>"

"""`ChalkFunction`: what `@chalkcompute.function` returns. Its own module, so that deploying
one (chalkcompute.deploy) does not import the decorator that deploys it."""

import functools
from collections.abc import Callable
from typing import Any

from chalkcompute.calls import RunHandle, start_run
from chalkcompute.deploy import deploy_declared
from chalkcompute.secret import Secret
from chalkcompute.spec import FunctionSpec


class ChalkFunction:
    """A declared function. Calling it runs the original function locally; `remote()` runs
    it on the platform now and waits, `spawn()` (Chalk's `defer()`) starts a run, `deploy()`
    deploys it.

    `spec` is how it runs, and its fields read through: `declared.cpu` is `declared.spec.cpu`.
    `secrets` are the Secret declarations (where each value comes from), in the order given,
    those of `env=` last. `call_timeout` is how long `remote()` waits (None: until the end)."""

    def __init__(
        self,
        fn: Callable[..., Any],
        *,
        name: str,
        spec: FunctionSpec,
        secrets: tuple[Secret, ...],
        call_timeout: float | None = None,
    ) -> None:
        self.fn = fn
        self.name = name
        self.spec = spec
        self.secrets = secrets
        self.call_timeout = call_timeout
        functools.update_wrapper(self, fn)

    def __getattr__(self, attr: str) -> Any:
        # Only reached for what the instance does not have itself.
        if attr in FunctionSpec.field_names():
            return getattr(self.spec, attr)
        raise AttributeError(f"{type(self).__name__!r} object has no attribute {attr!r}")

    def __call__(self, *args: Any, **kwargs: Any) -> Any:
        return self.fn(*args, **kwargs)

    def deploy(self, **_: Any) -> "ChalkFunction":
        """Deploys it now, from its module's file (also a module the script imported)."""
        deploy_declared(self)
        return self

    def wait_ready(self, **_: Any) -> "ChalkFunction":
        """Chalk's: a Chalkweb deploy is ready when it returns."""
        return self

    def remote(self, *args: Any, **kwargs: Any) -> Any:
        """Runs the deployed function now and waits for it (at most `call_timeout`): what it
        returned when it succeeds (RunHandle.get), else RemoteExecutionError saying how it
        ended and where its log is."""
        return start_run(self.name, args, kwargs).get(timeout=self.call_timeout)

    def spawn(self, *args: Any, **kwargs: Any) -> RunHandle:
        """Starts a run of the deployed function now; the handle's get() waits for it."""
        return start_run(self.name, args, kwargs)

    defer = spawn

    def __repr__(self) -> str:
        return f"<chalkcompute.function {self.name}>"

"""Runs started from Python, as Chalk's SDK starts them: `fn.remote()` runs a deployed function
now and waits for it, `fn.spawn()` / `fn.defer()` start one and return a RunHandle.

A Chalkweb run takes no arguments. `remote()` returns what the function returned when the run
succeeds (a JSON value as Python values, any other value as its repr(), a string; see
chalkcompute/runtime/returns.py) and raises RemoteExecutionError (a FunctionError) with its
error and log's URL when it does not. Standard library only.
"""

import time
from typing import Any

from chalkcompute.client import ChalkClientError, Client
from chalkcompute.errors import FunctionError, RemoteExecutionError

POLL_SECONDS = 0.5
FINISHED = ("succeeded", "failed", "timed_out", "cancelled", "lost", "skipped")


class RunHandle:
    """A started run: `run_id`, `logs_url`, and `get()` to wait for its end."""

    def __init__(self, client: Client, run: dict, console_url: str) -> None:
        self.client = client
        self.run_id = int(run["id"])
        self.function = run["function"]
        self.logs_url = f"{console_url}/runs/{self.run_id}"

    @property
    def call_id(self) -> str:  # Chalk's name for it
        return str(self.run_id)

    def status(self) -> str:
        return self._run()["status"]

    def get(self, timeout: float | None = None) -> Any:
        """Waits for the run to end: returns what the function returned when it succeeded,
        raises RemoteExecutionError when it did not, TimeoutError after `timeout` seconds."""
        deadline = None if timeout is None else time.monotonic() + timeout
        while True:
            run = self._run()
            if run["status"] in FINISHED:
                break
            if deadline is not None and time.monotonic() > deadline:
                raise TimeoutError(
                    f"run {self.run_id} of {self.function} did not end within {timeout:g} s; "
                    f"it goes on: {self.logs_url}"
                )
            time.sleep(POLL_SECONDS)
        if run["status"] != "succeeded":
            attempts = run.get("attempts") or []
            last = attempts[-1] if attempts else {}
            why = run.get("status_reason") or last.get("error_message") or last.get("reason")
            raise RemoteExecutionError(
                f"run {self.run_id} of {self.function} {run['status']}"
                + (f": {why}" if why else "")
                + f" (log: {self.logs_url})",
                run_id=self.run_id,
                status=run["status"],
                error_type=last.get("error_type") or "",
                logs_url=self.logs_url,
            )
        return run.get("return_value")

    def _run(self) -> dict:
        try:
            return self.client.get_run(self.run_id)
        except ChalkClientError as exc:
            raise FunctionError(f"cannot read run {self.run_id}: {exc}") from None


def start_run(name: str, args: tuple, kwargs: dict) -> RunHandle:
    """Triggers a run of the deployed function `name` (POST …/trigger)."""
    if args or kwargs:
        raise FunctionError(
            f"{name}: a Chalkweb run takes no arguments; read inputs inside the function"
        )
    client = Client.from_env()
    try:
        run = client.trigger(name)
    except ChalkClientError as exc:
        raise FunctionError(
            f"cannot start a run of {name}: {exc} (is it deployed? `fn.deploy()` or run its "
            "script deploys it)"
        ) from None
    return RunHandle(client, run, client.url)

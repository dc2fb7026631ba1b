"""`chalkcompute.Secret`: a value a run gets as an environment variable, never in code or logs.

Where the value comes from, with Chalk's SDK's names:

- `from_name(NAME)` / `from_chalk_env(NAME, alias=, prefix=)`: the secret stored on the server.
- `from_env(NAME, alias=, prefix=)`: the deployer's local $NAME when it is set (uploaded at
  deploy, and the deploy says so), else the secret already stored on the server.
- `from_local_env(LOCAL, env_var_name=)`: always the deployer's local $LOCAL, uploaded.
- `from_local_env_file(PATH)`: every KEY=VALUE of a local .env file, uploaded.
"""

import os
from dataclasses import dataclass, replace
from pathlib import Path

from chalkcompute.errors import FunctionError
from chalkcompute.names import check_secret_name

STORED = "stored"
LOCAL_OR_STORED = "local_or_stored"
LOCAL = "local"


class MissingSecretError(FunctionError, ValueError):
    pass


@dataclass(frozen=True)
class Secret:
    """`name` is the secret's name on the server; the run gets it as `env_var` (`name` unless
    an alias or prefix says otherwise). `source` is STORED, LOCAL_OR_STORED or LOCAL: read
    from `local_name` in the deployer's environment, or from `env_file` when it is set."""

    name: str
    source: str = STORED
    env_var: str = ""
    local_name: str = ""
    env_file: str = ""

    def __post_init__(self) -> None:
        if self.env_file and not self.name:
            return  # from_local_env_file: its names are the file's, read when declared
        check_secret_name(self.name)
        object.__setattr__(self, "env_var", check_secret_name(self.env_var or self.name))
        object.__setattr__(self, "local_name", self.local_name or self.name)

    @classmethod
    def from_name(cls, name: str) -> "Secret":
        """A secret already stored on the server; it reaches the run as `$name`."""
        return cls(name=name)

    @classmethod
    def from_chalk_env(
        cls, name: str, *, alias: str | None = None, prefix: str | None = None
    ) -> "Secret":
        """A secret already stored on the server, reaching the run as `$<prefix><alias>`
        (`$name` by default)."""
        return cls(name=name, env_var=f"{prefix or ''}{alias or name}")

    @classmethod
    def from_env(
        cls, name: str, *, alias: str | None = None, prefix: str | None = None
    ) -> "Secret":
        """The deployer's local `$name` when it is set, uploaded at deploy; else the secret
        already stored under `name`. Chalk's SDK deprecates this spelling; here it stays."""
        return cls(name=name, source=LOCAL_OR_STORED, env_var=f"{prefix or ''}{alias or name}")

    @classmethod
    def from_local_env(cls, local_env_var: str, *, env_var_name: str | None = None) -> "Secret":
        """The deployer's local `$local_env_var`, always uploaded, stored and given to the run
        as `env_var_name` (`local_env_var` by default)."""
        check_secret_name(local_env_var)
        return cls(name=env_var_name or local_env_var, source=LOCAL, local_name=local_env_var)

    @classmethod
    def from_local_env_file(cls, path: str) -> "Secret":
        """Every KEY=VALUE line of the local .env file at `path` (blank lines, `#` comments and
        `export ` allowed; quotes around a value are removed), each uploaded as secret KEY."""
        if not isinstance(path, (str, os.PathLike)) or not str(path).strip():
            raise MissingSecretError(f"Secret.from_local_env_file() takes a path, not {path!r}")
        return cls(name="", source=LOCAL, env_file=str(path))

    @classmethod
    def from_chalk_integration(cls, name: str, **_: object) -> "Secret":
        raise MissingSecretError(
            f"Secret.from_chalk_integration({name!r}): Chalkweb has no integrations; store "
            "each of its values as a secret and use Secret.from_chalk_env(NAME)"
        )

    from_integration = from_chalk_integration

    def expand(self) -> tuple["Secret", ...]:
        """This secret, or for a .env file one secret per key in it (none inside a run, where
        the deployer's file is not)."""
        if not self.env_file or self.name:
            return (self,)
        if os.environ.get("CHALK_IN_RUN"):
            return ()
        return tuple(
            replace(self, name=key, env_var="", local_name="") for key in _env_file(self.env_file)
        )

    def local_value(self) -> str | None:
        """The deployer's value: None for a stored secret, or from_env with nothing set here."""
        if self.source == STORED:
            return None
        if self.env_file:
            return _env_file(self.env_file)[self.name]
        value = os.environ.get(self.local_name)
        if value is None and self.source == LOCAL:
            raise MissingSecretError(
                f"Secret.from_local_env({self.local_name!r}): ${self.local_name} is not set "
                f"here; export {self.local_name}=... before deploying"
            )
        return value

    def __repr__(self) -> str:  # never includes a value
        if self.env_file:
            return f"Secret.from_local_env_file({self.env_file!r})"
        kind = {STORED: "from_name", LOCAL_OR_STORED: "from_env", LOCAL: "from_local_env"}
        name = self.local_name if self.source == LOCAL else self.name
        alias = f", env_var={self.env_var!r}" if self.env_var != self.name else ""
        return f"Secret.{kind[self.source]}({name!r}{alias})"


def _env_file(path: str) -> dict[str, str]:
    try:
        text = Path(path).read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        raise MissingSecretError(f"Secret.from_local_env_file({path!r}): {exc}") from None
    values = {}
    for number, raw in enumerate(text.splitlines(), 1):
        line = raw.strip()
        if not line or line.startswith("#"):
            continue
        key, sep, value = line.removeprefix("export ").partition("=")
        key, value = key.strip(), value.strip()
        if not sep:
            raise MissingSecretError(
                f"Secret.from_local_env_file({path!r}): line {number} is not KEY=VALUE"
            )
        try:
            check_secret_name(key)
        except ValueError as exc:
            raise MissingSecretError(
                f"Secret.from_local_env_file({path!r}) line {number}: {exc}"
            ) from None
        if len(value) >= 2 and value[0] == value[-1] and value[0] in "'\"":
            value = value[1:-1]
        values[key] = value
    if not values:
        raise MissingSecretError(f"Secret.from_local_env_file({path!r}): the file sets nothing")
    return values

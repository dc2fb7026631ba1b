"""`chalkcompute.Secret`: a value a run gets as an environment variable, never in code or logs."""

import os
from dataclasses import dataclass

from chalkcompute.names import check_secret_name


class MissingSecretError(ValueError):
    pass


@dataclass(frozen=True)
class Secret:
    name: str
    from_local_env: bool = False

    def __post_init__(self) -> None:
        check_secret_name(self.name)

    @classmethod
    def from_env(cls, name: str) -> "Secret":
        """The deployer's local `$name` is uploaded at deploy and reaches the run as `$name`."""
        return cls(name=name, from_local_env=True)

    @classmethod
    def from_name(cls, name: str) -> "Secret":
        """A secret already stored on the server; it reaches the run as `$name`."""
        return cls(name=name)

    def local_value(self) -> str:
        value = os.environ.get(self.name)
        if value is None:
            raise MissingSecretError(
                f"Secret.from_env({self.name!r}): ${self.name} is not set here; "
                f"export {self.name}=... before deploying"
            )
        return value

    def __repr__(self) -> str:  # never includes a value
        kind = "from_env" if self.from_local_env else "from_name"
        return f"Secret.{kind}({self.name!r})"

"""`chalkcompute.Retries`: how many more attempts a failed run gets, and how long to wait; and
Chalk's `RetryPolicy`, which maps onto it."""

import math
from dataclasses import dataclass
from typing import Any

from chalkcompute.errors import FunctionError

MAX_RETRIES = 100
MAX_DELAY_SECONDS = 24 * 3600


class InvalidRetriesError(FunctionError, ValueError):
    pass


def _number(name: str, value: object) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise InvalidRetriesError(f"Retries {name} must be a number, not {value!r}")
    try:
        number = float(value)
    except OverflowError:
        raise InvalidRetriesError(f"Retries {name} is too large") from None
    if not math.isfinite(number):
        raise InvalidRetriesError(f"Retries {name} must be a finite number, not {value!r}")
    return number


@dataclass(frozen=True)
class Retries:
    max_retries: int
    backoff_coefficient: float = 2.0
    initial_delay: float = 1.0
    max_delay: float = 60.0

    def __post_init__(self) -> None:
        if isinstance(self.max_retries, bool) or not isinstance(self.max_retries, int):
            raise InvalidRetriesError(
                f"max_retries must be a whole number from 0 to {MAX_RETRIES}, "
                f"not {self.max_retries!r}"
            )
        if not 0 <= self.max_retries <= MAX_RETRIES:
            raise InvalidRetriesError(
                f"max_retries must be from 0 to {MAX_RETRIES}, not {self.max_retries}"
            )
        coefficient = _number("backoff_coefficient", self.backoff_coefficient)
        if not 1.0 <= coefficient <= 10.0:
            raise InvalidRetriesError(
                f"backoff_coefficient must be from 1.0 to 10.0, not {coefficient}"
            )
        initial = _number("initial_delay", self.initial_delay)
        maximum = _number("max_delay", self.max_delay)
        if not 0 <= initial <= MAX_DELAY_SECONDS or not 0 <= maximum <= MAX_DELAY_SECONDS:
            raise InvalidRetriesError(f"delays must be from 0 to {MAX_DELAY_SECONDS} seconds")
        if maximum < initial:
            raise InvalidRetriesError(
                f"max_delay ({maximum}) must not be shorter than initial_delay ({initial})"
            )
        object.__setattr__(self, "backoff_coefficient", coefficient)
        object.__setattr__(self, "initial_delay", initial)
        object.__setattr__(self, "max_delay", maximum)

    def delay_before(self, retry_number: int) -> float:
        """Seconds to wait before retry `retry_number` (1 for the first retry)."""
        delay = self.initial_delay * self.backoff_coefficient ** (retry_number - 1)
        return min(delay, self.max_delay)

    def as_dict(self) -> dict[str, Any]:
        return {
            "max_retries": self.max_retries,
            "backoff_coefficient": self.backoff_coefficient,
            "initial_delay": self.initial_delay,
            "max_delay": self.max_delay,
        }

    @classmethod
    def coerce(cls, value: object) -> "Retries":
        """`retries=3` is shorthand for `Retries(max_retries=3)`, `None` (Chalk's default) for
        no retries; a RetryPolicy maps onto its Retries; a dict is a Retries as JSON."""
        if isinstance(value, Retries):
            return value
        if value is None:
            return cls(max_retries=0)
        if isinstance(value, RetryPolicy):
            return value.as_retries()
        if isinstance(value, dict):
            unknown = set(value) - {
                "max_retries",
                "backoff_coefficient",
                "initial_delay",
                "max_delay",
            }
            if unknown:
                raise InvalidRetriesError(
                    f"retries has unknown fields: {', '.join(sorted(unknown))}"
                )
            if "max_retries" not in value:
                raise InvalidRetriesError("retries needs max_retries")
            return cls(**value)
        if isinstance(value, bool) or not isinstance(value, int):
            raise InvalidRetriesError(
                f"retries must be a whole number >= 0 or chalkcompute.Retries(...), not {value!r}"
            )
        return cls(max_retries=value)


@dataclass(frozen=True)
class RetryPolicy:
    """Chalk's retry policy, with its fields and constructors, accepted wherever `retries=` is.

    On Chalkweb it is the Retries of the same numbers: wait `initial_wait_seconds`, times
    `backoff_multiplier` after each retry, at most `max_wait_seconds`, checked by the same
    rules. `jitter` has no effect (Chalkweb waits exactly the backoff), and neither have
    `retry_on` (every failure, time-out and lost attempt is retried) nor `key` (each function
    has its own retries): a function given a policy that sets either warns about it."""

    max_retries: int = 3
    initial_wait_seconds: float = 1.0
    backoff_multiplier: float = 2.0
    max_wait_seconds: float = 60.0
    jitter: bool = True
    retry_on: tuple[type[BaseException], ...] = (Exception,)
    key: str | None = None

    def __post_init__(self) -> None:
        self.as_retries()  # the numbers follow Retries' rules, checked where they are written

    @staticmethod
    def exponential(
        attempts: int = 3,
        *,
        initial: float = 1.0,
        multiplier: float = 2.0,
        max_wait: float = 60.0,
        jitter: bool = True,
        retry_on: tuple[type[BaseException], ...] = (Exception,),
        key: str | None = None,
    ) -> "RetryPolicy":
        return RetryPolicy(attempts, initial, multiplier, max_wait, jitter, retry_on, key)

    @staticmethod
    def linear(
        attempts: int = 3,
        *,
        delay: float = 1.0,
        jitter: bool = False,
        retry_on: tuple[type[BaseException], ...] = (Exception,),
        key: str | None = None,
    ) -> "RetryPolicy":
        return RetryPolicy(attempts, delay, 1.0, delay, jitter, retry_on, key)

    @staticmethod
    def from_int_or_policy(value: "int | RetryPolicy") -> "RetryPolicy":
        if isinstance(value, RetryPolicy):
            return value
        if isinstance(value, bool) or not isinstance(value, int):
            raise InvalidRetriesError(f"expected an int or a RetryPolicy, not {value!r}")
        return RetryPolicy.exponential(attempts=value)

    def as_retries(self) -> Retries:
        return Retries(
            max_retries=self.max_retries,
            backoff_coefficient=self.backoff_multiplier,
            initial_delay=self.initial_wait_seconds,
            max_delay=self.max_wait_seconds,
        )

    def ignored_fields(self) -> list[str]:
        """The fields set to something Chalkweb does not do, e.g. ["retry_on"]. Not jitter:
        it is on by default in Chalk, and leaving it out changes only when a retry starts."""
        ignored = ["retry_on"] if tuple(self.retry_on) != (Exception,) else []
        return ignored + (["key"] if self.key is not None else [])

    def to_dict(self) -> dict[str, object]:
        """Chalk's JSON of the policy."""
        document: dict[str, object] = {
            "max_retries": self.max_retries,
            "initial_wait_seconds": self.initial_wait_seconds,
            "backoff_multiplier": self.backoff_multiplier,
            "max_wait_seconds": self.max_wait_seconds,
            "jitter": self.jitter,
        }
        if tuple(self.retry_on) != (Exception,):
            document["retry_on"] = [exc.__name__ for exc in self.retry_on]
        if self.key is not None:
            document["key"] = self.key
        return document

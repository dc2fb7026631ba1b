"""Resource quantities in Kubernetes syntax, checked where the user writes them.

The same rules serve the decorator (definition time) and the server (deploy), so a quantity
the SDK accepts is one the server and the Kubernetes API accept too.
"""

import re
from decimal import Decimal, InvalidOperation

# Kubernetes resource.Quantity: <number><suffix>, suffix one of the binary SI (Ki…Ei),
# decimal SI (n u m "" k M G T P E) or a decimal exponent (e3, E-2).
_QUANTITY = re.compile(
    r"^(?P<number>\+?(?:[0-9]+(?:\.[0-9]*)?|\.[0-9]+))(?P<suffix>[a-zA-Z]*|[eE][-+]?[0-9]+)$"
)
_BINARY = {"Ki": 2**10, "Mi": 2**20, "Gi": 2**30, "Ti": 2**40, "Pi": 2**50, "Ei": 2**60}
_DECIMAL = {
    "n": Decimal("1e-9"), "u": Decimal("1e-6"), "m": Decimal("1e-3"), "": Decimal(1),
    "k": Decimal("1e3"), "M": Decimal("1e6"), "G": Decimal("1e9"), "T": Decimal("1e12"),
    "P": Decimal("1e15"), "E": Decimal("1e18"),
}  # fmt: skip
MAX_QUANTITY_CHARS = 32
MIN_MEMORY_BYTES = 2**20  # below 1Mi no Python process can start

# GPU types a run may ask for; executors map each to a node selector and a toleration.
GPU_TYPES = (
    "nvidia-t4",
    "nvidia-l4",
    "nvidia-a10g",
    "nvidia-l40s",
    "nvidia-a100",
    "nvidia-a100-80gb",
    "nvidia-h100",
)
MAX_GPU_COUNT = 8


class InvalidQuantityError(ValueError):
    pass


def _as_text(value: object, what: str) -> str:
    if isinstance(value, bool) or not isinstance(value, (str, int, float)):
        raise InvalidQuantityError(f'{what} must be a string such as "1" or "500m", not {value!r}')
    text = str(value).strip()
    if len(text) > MAX_QUANTITY_CHARS:
        raise InvalidQuantityError(f"{what} {text[:MAX_QUANTITY_CHARS]!r}… is too long")
    return text


def parse_quantity(text: str, what: str) -> Decimal:
    """Returns the value of a Kubernetes quantity in base units (cores, bytes)."""
    match = _QUANTITY.match(text)
    if not match:
        raise InvalidQuantityError(
            f"{what} {text!r} is not a Kubernetes quantity: write a number with an optional "
            f'suffix, e.g. "1", "0.5", "500m" for cpu or "512Mi", "1Gi" for memory'
        )
    number, suffix = match["number"], match["suffix"]
    try:
        value = Decimal(number)
    except InvalidOperation:  # pragma: no cover - the regex admits only decimals
        raise InvalidQuantityError(f"{what} {text!r} is not a number") from None
    if suffix in _BINARY:
        value *= _BINARY[suffix]
    elif suffix in _DECIMAL:
        value *= _DECIMAL[suffix]
    elif suffix[:1] in ("e", "E") and suffix[1:].lstrip("+-").isdigit():
        value = value.scaleb(int(suffix[1:]))
    else:
        raise InvalidQuantityError(
            f"{what} {text!r} has an unknown suffix {suffix!r}: use one of "
            "Ki Mi Gi Ti Pi Ei (binary), k M G T P E (decimal) or m (milli)"
        )
    if value <= 0:
        raise InvalidQuantityError(f"{what} {text!r} must be greater than zero")
    return value


def parse_cpu(value: object) -> str:
    """Validates a cpu request ("1", "0.5", "500m") and returns it as a string."""
    text = _as_text(value, "cpu")
    cores = parse_quantity(text, "cpu")
    if cores < Decimal("0.001"):
        raise InvalidQuantityError(f"cpu {text!r} is below 1m (one thousandth of a core)")
    if cores > 1024:
        raise InvalidQuantityError(f"cpu {text!r} is more than 1024 cores")
    return text


def parse_memory(value: object) -> str:
    """Validates a memory request ("512Mi", "1Gi", "1G") and returns it as a string."""
    text = _as_text(value, "memory")
    if text.endswith("m"):
        raise InvalidQuantityError(
            f"memory {text!r} means milli-bytes; did you mean {text[:-1]}Mi (mebibytes)?"
        )
    size = parse_quantity(text, "memory")
    if size < MIN_MEMORY_BYTES:
        raise InvalidQuantityError(
            f"memory {text!r} is {size.normalize():f} bytes, too small to run Python: "
            f'give a unit, e.g. "{text}Mi"'
        )
    if size > 2**50:
        raise InvalidQuantityError(f"memory {text!r} is more than 1Pi")
    return text


def memory_bytes(text: str) -> int:
    return int(parse_quantity(text, "memory"))


def parse_gpu(value: object) -> tuple[str, int]:
    """Validates "type", "type:count" or Chalk's count-first "count:type" and returns
    (type, count)."""
    if not isinstance(value, str):
        raise InvalidQuantityError(f'gpu must be a string such as "nvidia-l4", not {value!r}')
    kind, sep, count_text = value.strip().partition(":")
    if sep and kind.isascii() and kind.isdigit():
        kind, count_text = count_text, kind  # "2:nvidia-a100", as Chalk's docs write it
    if kind not in GPU_TYPES:
        raise InvalidQuantityError(
            f"gpu {value!r} is not a known type; known types: {', '.join(GPU_TYPES)} "
            '(add a count as "nvidia-l4:2")'
        )
    if not sep:
        return kind, 1
    if (
        not count_text.isascii()
        or not count_text.isdigit()
        or not 1 <= int(count_text) <= MAX_GPU_COUNT
    ):
        raise InvalidQuantityError(
            f"gpu {value!r} has an invalid count {count_text!r}: use a whole number from 1 to "
            f'{MAX_GPU_COUNT}, e.g. "{kind}:2"'
        )
    return kind, int(count_text)

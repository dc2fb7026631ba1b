"""The SDK as its own distribution, `chalkweb-sdk`: a wheel of this server's `chalkcompute` and
`chalk` (the decorator, the CLI, the runner), standard library only, built in memory with
`zipfile` from exactly the files the runner archive holds (runtime_bundle.py), so laptops and
run images get one SDK.

The distribution name is not `chalkcompute`: PyPI's `chalkcompute` is Chalk's own SDK, and a
resolver that could pick it would install someone else's code under our import name. The import
names stay `chalkcompute` and `chalk`, so code written for either SDK keeps working.

Deterministic: equal sources give byte-equal wheels (sorted entries, a fixed time, fixed
modes), so the sha256 the index publishes changes exactly when the SDK does.
"""

import base64
import functools
import hashlib
import io
import zipfile
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path

import chalk
import chalkcompute
from chalkcompute.version import VERSION

DISTRIBUTION = "chalkweb-sdk"  # PEP 503-normalized already
PACKAGES = (chalkcompute, chalk)
REQUIRES_PYTHON = ">=3.11"
SUMMARY = "Chalkweb's SDK: declare scheduled Python functions, deploy them, and their runner"
# The earliest time a zip entry can carry; any fixed time makes the wheel reproducible.
ZIP_TIME = (1980, 1, 1, 0, 0, 0)


def sdk_files(package_dirs: Iterable[Path] | None = None) -> dict[str, bytes]:
    """Every `.py` file of the SDK's packages by its path under site-packages
    ("chalkcompute/cli.py"), sorted: what the wheel and the runner archive both ship."""
    if package_dirs is None:
        package_dirs = (Path(package.__file__).parent for package in PACKAGES)
    files: dict[str, bytes] = {}
    for package_dir in package_dirs:
        for path in package_dir.rglob("*.py"):
            relative = path.relative_to(package_dir.parent)
            if "__pycache__" not in relative.parts:
                files[relative.as_posix()] = path.read_bytes()
    return dict(sorted(files.items()))


@dataclass(frozen=True)
class Wheel:
    filename: str
    content: bytes
    sha256: str


def _record_hash(content: bytes) -> str:
    digest = hashlib.sha256(content).digest()
    return "sha256=" + base64.urlsafe_b64encode(digest).rstrip(b"=").decode()


def _metadata(version: str) -> str:
    return (
        "Metadata-Version: 2.1\n"
        f"Name: {DISTRIBUTION}\n"
        f"Version: {version}\n"
        f"Summary: {SUMMARY}\n"
        f"Requires-Python: {REQUIRES_PYTHON}\n"
    )


def build_wheel(files: dict[str, bytes], version: str = VERSION) -> Wheel:
    """A py3-none-any wheel (PEP 427) of `files` with its .dist-info: METADATA, WHEEL, the
    `chalkcompute` command in entry_points.txt, top_level.txt and RECORD (every file's
    sha256 and size; RECORD itself unhashed, as the spec says)."""
    tag = "py3-none-any"
    stem = f"{DISTRIBUTION.replace('-', '_')}-{version}"
    dist_info = f"{stem}.dist-info"
    top_level = sorted({name.split("/")[0] for name in files})
    entries = dict(files)
    entries[f"{dist_info}/METADATA"] = _metadata(version).encode()
    entries[f"{dist_info}/WHEEL"] = (
        f"Wheel-Version: 1.0\nGenerator: chalkweb {VERSION}\nRoot-Is-Purelib: true\nTag: {tag}\n"
    ).encode()
    entries[f"{dist_info}/entry_points.txt"] = (
        b"[console_scripts]\nchalkcompute = chalkcompute.cli:main\n"
    )
    entries[f"{dist_info}/top_level.txt"] = "".join(f"{name}\n" for name in top_level).encode()
    record = "".join(
        f"{name},{_record_hash(content)},{len(content)}\n" for name, content in entries.items()
    )
    entries[f"{dist_info}/RECORD"] = (record + f"{dist_info}/RECORD,,\n").encode()

    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", compression=zipfile.ZIP_DEFLATED) as wheel:
        for name, content in entries.items():  # packages first, .dist-info last (PEP 427)
            info = zipfile.ZipInfo(name, date_time=ZIP_TIME)
            info.external_attr = 0o644 << 16
            info.compress_type = zipfile.ZIP_DEFLATED
            wheel.writestr(info, content)
    content = buffer.getvalue()
    return Wheel(
        filename=f"{stem}-{tag}.whl", content=content, sha256=hashlib.sha256(content).hexdigest()
    )


@functools.cache
def wheel() -> Wheel:
    """This server's SDK wheel, built once per process."""
    return build_wheel(sdk_files())

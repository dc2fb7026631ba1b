"""The runner as run images get it: the `.py` files of `chalkcompute` and `chalk`, exactly as
this server has them and exactly those the SDK's wheel ships (distribution.sdk_files), in a
gzip'd tar. Both are stdlib-only, so the archive is all a pod needs to run
`python -m chalkcompute.runtime`, and the runner always speaks this server's protocol.

Builds carry it in their ConfigMap (`dockerfile.build_configmap`); pods that install at start
download it from the runner API (`manifests.install_at_start_script`).

Deterministic: equal sources give byte-equal archives (sorted entries, no times, no owners), so
its sha256, which is in every Dockerfile, changes exactly when the runner does.
"""

import functools
import gzip
import hashlib
import io
import tarfile
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path

from sdk.distribution import sdk_files

ARCHIVE_NAME = "chalkweb-runtime.tar.gz"
PTH_NAME = "chalkweb-runtime.pth"  # what puts the extracted archive on a python's sys.path


@dataclass(frozen=True)
class RuntimeBundle:
    archive: bytes
    sha256: str


def _entry(name: str, *, directory: bool, size: int = 0) -> tarfile.TarInfo:
    info = tarfile.TarInfo(name)
    info.type = tarfile.DIRTYPE if directory else tarfile.REGTYPE
    info.mode = 0o755 if directory else 0o644
    info.size = size
    info.mtime = 0
    info.uid = info.gid = 0
    info.uname = info.gname = ""
    return info


def build_archive(package_dirs: Iterable[Path] | None = None) -> bytes:
    """A tar.gz of every `.py` file under each package directory (the SDK's by default), each
    under the package's name, with its directories; nothing from the filesystem but names and
    contents."""
    files = sdk_files(package_dirs)
    directories = {parent.as_posix() for name in files for parent in Path(name).parents}
    directories.discard(".")
    buffer = io.BytesIO()
    # mtime=0 and no file name: the gzip header would otherwise hold both.
    with gzip.GzipFile(filename="", mode="wb", fileobj=buffer, mtime=0) as compressed:
        with tarfile.open(fileobj=compressed, mode="w", format=tarfile.PAX_FORMAT) as tar:
            for name in sorted(directories | set(files)):
                if name in directories:
                    tar.addfile(_entry(name, directory=True))
                else:
                    content = files[name]
                    tar.addfile(
                        _entry(name, directory=False, size=len(content)), io.BytesIO(content)
                    )
    return buffer.getvalue()


@functools.cache
def bundle() -> RuntimeBundle:
    """This server's runtime, read once per process."""
    archive = build_archive()
    return RuntimeBundle(archive=archive, sha256=hashlib.sha256(archive).hexdigest())

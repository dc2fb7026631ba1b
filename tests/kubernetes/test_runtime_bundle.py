"""The runtime archive: what it holds, that it is byte-for-byte reproducible, and that what it
holds runs with nothing but the standard library."""

import hashlib
import io
import shutil
import subprocess
import sys
import tarfile
from pathlib import Path

import pytest

import chalk
import chalkcompute
from chalkcompute.image import PYTHON_VERSIONS
from sdk.runtime_bundle import build_archive, bundle

PACKAGES = [Path(chalkcompute.__file__).parent, Path(chalk.__file__).parent]
# Imports every module of the extracted tree but `__main__` (which runs the runner), then
# names any module loaded from outside the standard library and the two packages.
IMPORT_EVERYTHING = """
import importlib, pathlib, sys
root = pathlib.Path(sys.argv[1])
sys.path.insert(0, str(root))
for path in sorted(root.rglob("*.py")):
    if path.name != "__main__.py":
        parts = path.relative_to(root).with_suffix("").parts
        importlib.import_module(".".join(parts[:-1] if parts[-1] == "__init__" else parts))
ours = {"__main__", "chalk", "chalkcompute"}  # __main__: this program
# zoneinfo reads its search path from sysconfig, whose data module is part of every CPython
# but named by platform, so stdlib_module_names cannot list it.
found = {name.split(".")[0] for name in sys.modules if not name.startswith("_sysconfigdata_")}
print(sorted(found - sys.stdlib_module_names - ours))
"""


def _interpreter(version: str) -> str | None:
    """A working `python<version>`: on PATH, or installed by pyenv but not its global one."""
    pyenv = Path.home() / ".pyenv" / "versions"
    candidates = [shutil.which(f"python{version}"), *pyenv.glob(f"{version}.*/bin/python{version}")]
    for candidate in filter(None, candidates):
        if subprocess.run([candidate, "-c", "pass"], capture_output=True).returncode == 0:
            return str(candidate)
    return None


def _members(archive: bytes) -> list[tarfile.TarInfo]:
    with tarfile.open(fileobj=io.BytesIO(archive)) as tar:
        return tar.getmembers()


def test_it_holds_the_python_files_of_both_packages_and_their_directories():
    sources = sorted(
        path.relative_to(package.parent).as_posix()
        for package in PACKAGES
        for path in package.rglob("*.py")
    )
    names = [member.name for member in _members(bundle().archive)]
    assert names == sorted(names)
    assert [name for name in names if name.endswith(".py")] == sources
    assert {name for name in names if not name.endswith(".py")} == {
        "chalk",
        "chalkcompute",
        "chalkcompute/runtime",
    }
    with tarfile.open(fileobj=io.BytesIO(bundle().archive)) as tar:
        runner = tar.extractfile("chalkcompute/runtime/runner.py").read()
    assert runner == (PACKAGES[0] / "runtime" / "runner.py").read_bytes()


def test_it_records_no_times_owners_or_modes_of_this_machine():
    for member in _members(bundle().archive):
        assert (member.mtime, member.uid, member.gid, member.uname, member.gname) == (
            0,
            0,
            0,
            "",
            "",
        )
        assert member.mode == (0o755 if member.isdir() else 0o644), member.name
    assert bundle().archive[:2] == b"\x1f\x8b"  # gzip, whose header has no time in it:
    assert bundle().archive[4:8] == b"\0\0\0\0"


def test_it_gives_equal_bytes_for_equal_sources_wherever_they_lie(tmp_path):
    copies = []
    for package in PACKAGES:
        copy = shutil.copytree(package, tmp_path / package.name, copy_function=shutil.copy)
        copies.append(copy)
        for path in copy.rglob("*.py"):
            path.chmod(0o600)  # another umask, and new mtimes from the copy
        (copy / "__pycache__").mkdir(exist_ok=True)
        (copy / "__pycache__" / "stale.py").write_text("raise SystemExit('not shipped')\n")
        (copy / "notes.txt").write_text("not shipped either\n")
    assert build_archive(copies) == bundle().archive
    assert hashlib.sha256(bundle().archive).hexdigest() == bundle().sha256


def test_it_is_the_same_archive_in_another_process():
    printed = subprocess.run(
        [
            sys.executable,
            "-c",
            "from sdk.runtime_bundle import bundle; print(bundle().sha256)",
        ],
        capture_output=True,
        text=True,
        check=True,
        cwd=Path(__file__).resolve().parents[2],
    )
    assert printed.stdout.strip() == bundle().sha256


@pytest.mark.parametrize("version", PYTHON_VERSIONS)
def test_it_runs_on_the_standard_library_alone_of_every_python_an_image_may_have(version, tmp_path):
    python = _interpreter(version)
    if python is None:
        pytest.skip(f"python{version} is not installed on this machine")
    with tarfile.open(fileobj=io.BytesIO(bundle().archive)) as tar:
        tar.extractall(tmp_path, filter="data")
    # -I: no PYTHONPATH, no user site, no script directory; -S: no site-packages (no Django).
    result = subprocess.run(
        [python, "-I", "-S", "-c", IMPORT_EVERYTHING, tmp_path],
        capture_output=True,
        text=True,
        cwd=tmp_path,
    )
    assert result.returncode == 0, result.stderr
    assert result.stdout == "[]\n"
    # Only the extracted copy can have been imported: the repository is not on the path.
    check = subprocess.run(
        [python, "-I", "-S", "-c", "import chalkcompute.runtime, chalk"],
        capture_output=True,
        text=True,
        cwd=tmp_path.parent,
    )
    assert "No module named 'chalkcompute'" in check.stderr

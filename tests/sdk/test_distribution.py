"""The SDK's own distribution, `chalkweb-sdk`: a correct, reproducible wheel of exactly the files
the runner archive holds, versioned with the server, that installs into a clean virtualenv and
works there with nothing but the standard library."""

import base64
import csv
import hashlib
import io
import subprocess
import sys
import tarfile
import tomllib
import zipfile
from pathlib import Path

import pytest

from chalkcompute.version import VERSION
from sdk import runtime_bundle
from sdk.distribution import DISTRIBUTION, build_wheel, sdk_files, wheel

REPO = Path(__file__).resolve().parents[2]
DIST_INFO = f"chalkweb_sdk-{VERSION}.dist-info"


def _entries(content: bytes) -> dict[str, bytes]:
    with zipfile.ZipFile(io.BytesIO(content)) as archive:
        return {name: archive.read(name) for name in archive.namelist()}


def test_it_names_the_wheel_for_its_own_distribution_not_pypis_chalkcompute():
    assert DISTRIBUTION == "chalkweb-sdk"
    assert wheel().filename == f"chalkweb_sdk-{VERSION}-py3-none-any.whl"
    metadata = _entries(wheel().content)[f"{DIST_INFO}/METADATA"].decode()
    assert metadata.splitlines() == [
        "Metadata-Version: 2.1",
        "Name: chalkweb-sdk",
        f"Version: {VERSION}",
        "Summary: Chalkweb's SDK: declare scheduled Python functions, deploy them, and their "
        "runner",
        "Requires-Python: >=3.11",
    ]  # no Requires-Dist: the standard library only


def test_it_has_the_servers_version_from_one_source():
    pyproject = tomllib.loads((REPO / "pyproject.toml").read_text())
    assert pyproject["project"]["dynamic"] == ["version"]
    assert pyproject["tool"]["setuptools"]["dynamic"]["version"] == {
        "attr": "chalkcompute.version.VERSION"
    }
    installed = subprocess.run(
        [sys.executable, "-m", "pip", "show", "chalkweb"], capture_output=True, text=True
    ).stdout
    assert f"Version: {VERSION}\n" in installed


def test_it_ships_exactly_the_files_of_the_runner_archive():
    entries = _entries(wheel().content)
    packaged = {name: content for name, content in entries.items() if "dist-info" not in name}
    with tarfile.open(fileobj=io.BytesIO(runtime_bundle.bundle().archive)) as tar:
        archived = {
            member.name: tar.extractfile(member).read() for member in tar if member.isfile()
        }
    assert packaged == archived == sdk_files()
    assert "chalkcompute/cli.py" in packaged and "chalk/__init__.py" in packaged
    assert "chalkcompute/runtime/__main__.py" in packaged


def test_its_record_lists_every_file_with_its_hash_and_size():
    entries = _entries(wheel().content)
    rows = list(csv.reader(io.StringIO(entries[f"{DIST_INFO}/RECORD"].decode())))
    assert [row[0] for row in rows] == list(entries)  # every entry, in order, RECORD last
    assert rows[-1] == [f"{DIST_INFO}/RECORD", "", ""]
    for name, digest, size in rows[:-1]:
        expected = base64.urlsafe_b64encode(hashlib.sha256(entries[name]).digest()).rstrip(b"=")
        assert (digest, int(size)) == (f"sha256={expected.decode()}", len(entries[name])), name
    assert entries[f"{DIST_INFO}/WHEEL"].decode().splitlines() == [
        "Wheel-Version: 1.0",
        f"Generator: chalkweb {VERSION}",
        "Root-Is-Purelib: true",
        "Tag: py3-none-any",
    ]
    assert entries[f"{DIST_INFO}/entry_points.txt"] == (
        b"[console_scripts]\nchalkcompute = chalkcompute.cli:main\n"
    )
    assert entries[f"{DIST_INFO}/top_level.txt"] == b"chalk\nchalkcompute\n"


def test_it_is_byte_for_byte_reproducible_and_changes_with_the_sources():
    files = sdk_files()
    assert build_wheel(files).content == build_wheel(dict(files)).content == wheel().content
    changed = {**files, "chalk/__init__.py": files["chalk/__init__.py"] + b"# changed\n"}
    assert build_wheel(changed).sha256 != wheel().sha256
    assert build_wheel(files, version="0.2.0").filename == "chalkweb_sdk-0.2.0-py3-none-any.whl"


@pytest.mark.slow
def test_it_installs_and_works_in_a_clean_virtualenv_without_django(tmp_path):
    path = tmp_path / wheel().filename
    path.write_bytes(wheel().content)
    venv = tmp_path / "venv"
    subprocess.run(["python3.11", "-m", "venv", str(venv)], check=True, timeout=120)
    python = str(venv / "bin" / "python")
    subprocess.run(
        [python, "-m", "pip", "install", "-q", "--no-index", str(path)], check=True, timeout=120
    )

    probe = subprocess.run(
        [python, "-I", "-c", "import chalkcompute, chalk, chalkcompute.runtime.runner, "
         "chalkcompute.cli, sys; print(chalkcompute.__file__); print('django' in sys.modules);"
         "import django"],
        capture_output=True, text=True, cwd=tmp_path, timeout=60,
    )  # fmt: skip
    assert probe.stdout.splitlines() == [
        f"{venv}/lib/python3.11/site-packages/chalkcompute/__init__.py",
        "False",
    ]
    assert "ModuleNotFoundError: No module named 'django'" in probe.stderr
    help_text = subprocess.run(
        [str(venv / "bin" / "chalkcompute"), "--help"], capture_output=True, text=True, timeout=60
    )
    assert help_text.returncode == 0 and "deploy" in help_text.stdout
    shown = subprocess.run(
        [python, "-m", "pip", "show", DISTRIBUTION], capture_output=True, text=True, timeout=60
    ).stdout
    assert f"Version: {VERSION}\n" in shown and "Requires: \n" in shown


def test_the_servers_distribution_packages_every_app():
    """setuptools' `include` decides what a non-editable install of the server holds."""
    from fnmatch import fnmatch

    include = tomllib.loads((REPO / "pyproject.toml").read_text())["tool"]["setuptools"][
        "packages"
    ]["find"]["include"]
    apps = {path.parent.name for path in REPO.glob("*/__init__.py")} - {"tests"}
    assert {app for app in apps if not any(fnmatch(app, pattern) for pattern in include)} == set()

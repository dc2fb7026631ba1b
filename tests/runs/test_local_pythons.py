"""The local executor builds an image with the Python it asks for, or refuses it clearly."""

import sys

import pytest

from runs.executors.local.images import ImageBuildError, _interpreter


def test_it_uses_the_workers_own_python_for_its_version():
    running = f"{sys.version_info.major}.{sys.version_info.minor}"

    assert _interpreter(running)


def test_it_refuses_a_python_that_only_a_shim_names(tmp_path, monkeypatch):
    shim = tmp_path / "python3.14"
    shim.write_text("#!/bin/sh\necho 'pyenv: python3.14: command not found' >&2\nexit 127\n")
    shim.chmod(0o755)
    monkeypatch.setenv("PATH", str(tmp_path))

    with pytest.raises(ImageBuildError) as excinfo:
        _interpreter("3.14")

    running = f"{sys.version_info.major}.{sys.version_info.minor}"
    assert str(excinfo.value) == (
        f'Python 3.14 is not installed on this worker; use Image.debian_slim(python_version="'
        f'{running}") or run on the kubernetes executor'
    )

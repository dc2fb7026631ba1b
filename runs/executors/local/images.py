"""Images for the local executor: one virtualenv per image hash, built once.

A build is locked with a file lock, so two workers asking for one new image build it once;
the build log is kept on the ImageBuild row and shown like a run's. `run_commands` run with
the venv first on PATH, so `pip install requests` installs into it.

Where runs are sandboxed, so are builds (`run_commands` is the user's code as much as the
function is): the same bubblewrap sandbox and uid as a run, the venv being built its one
writable mount beside a private HOME and /tmp, and the run's own network when runs have one,
so a build reaches package indexes on the internet but not the worker's loopback. The
worker's PIP_* settings and /etc/pip.conf (and /etc/xdg/pip) come along; its own
~/.config/pip, and a package index on its loopback, do not. `apt_install` (root workers only)
still runs on the worker itself: it installs into the machine.
"""

import datetime as dt
import fcntl
import os
import shutil
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path

from django.conf import settings
from django.utils import timezone

from chalkcompute.image import Image as ImageSpec
from chalkcompute.image import ImageStep
from runs.executors.local import network, sandbox
from runs.models import ImageBuild, ImageBuildStatus
from scheduling.models import Image

STEP_TIMEOUT_SECONDS = 1800
MAX_BUILD_LOG_CHARS = 200_000


class ImageBuildError(RuntimeError):
    pass


def images_dir() -> Path:
    return settings.DATA_DIR / "images"


_RUNNING = f"{sys.version_info.major}.{sys.version_info.minor}"


def _interpreter(python_version: str) -> str:
    if python_version == _RUNNING:
        return getattr(sys, "_base_executable", sys.executable)
    found = shutil.which(f"python{python_version}")
    if found and _version_of(found) != python_version:
        found = None  # a shim (pyenv's) that names a version it cannot run
    if not found:
        raise ImageBuildError(
            f"Python {python_version} is not installed on this worker; use "
            f'Image.debian_slim(python_version="{_RUNNING}") '
            "or run on the kubernetes executor"
        )
    return found


def _version_of(python: str) -> str | None:
    try:
        answer = subprocess.run(
            [python, "-c", "import sys; print('%d.%d' % sys.version_info[:2])"],
            capture_output=True,
            text=True,
            timeout=30,
        )
    except (OSError, subprocess.TimeoutExpired):
        return None
    return answer.stdout.strip() if answer.returncode == 0 else None


def ensure_image(image: Image, heartbeat: Callable[[], None], isolation: sandbox.Isolation) -> Path:
    """Returns the venv's python for `image`, building the venv first if needed, in the
    sandbox `isolation` gives runs."""
    venv = images_dir() / image.spec_hash
    python = venv / "bin" / "python"
    if (venv / ".ready").exists():
        return python
    images_dir().mkdir(parents=True, exist_ok=True)
    with open(images_dir() / f"{image.spec_hash}.lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)  # a concurrent build of this image finishes first
        if (venv / ".ready").exists():
            return python
        _build(image, venv, heartbeat, isolation)
    return python


def _build(
    image: Image, venv: Path, heartbeat: Callable[[], None], isolation: sandbox.Isolation
) -> None:
    build, _ = ImageBuild.objects.update_or_create(
        image=image,
        executor="local",
        defaults={
            "status": ImageBuildStatus.BUILDING,
            "log": "",
            "started_at": timezone.now(),
            "finished_at": None,
            "artifact": str(venv),
        },
    )
    log: list[str] = []
    ids = sandbox.run_ids() if isolation.bwrap else None
    work = None

    def step(title: str, command: list[str], env: dict | None = None, confined=True) -> None:
        log.append(f"$ {title}\n")
        _save_log(build, log)
        popen = dict(
            stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, env=env,
            cwd=work.home if work else None,
        )  # fmt: skip
        own = None
        if confined and isolation.bwrap:
            command = sandbox.command(
                isolation.bwrap, command, venv=venv, runtime=None, work=work, ids=ids,
                own_network=bool(isolation.slirp4netns),
            )  # fmt: skip
            popen["env"] = {**(env or _build_env()), "HOME": sandbox.HOME}
        try:
            if confined and isolation.slirp4netns:
                log_path = work.root / "slirp4netns.log"
                process, own = network.spawn(
                    command, slirp4netns=isolation.slirp4netns, log=log_path, **popen
                )
            else:
                process = subprocess.Popen(command, **popen)
        except network.NetworkError as exc:
            raise ImageBuildError(f"the build's network could not be made: {exc}") from None
        try:
            started = time.monotonic()
            for raw in process.stdout:
                log.append(raw.decode("utf-8", "replace"))
                if time.monotonic() - started > STEP_TIMEOUT_SECONDS:
                    process.kill()
                heartbeat()
            code = process.wait()
        finally:
            process.stdout.close()
            if own:
                own.close()
        if code != 0:
            raise ImageBuildError(f"image build step failed with exit code {code}: {title}")

    spec = ImageSpec.from_spec(image.spec)
    try:
        if venv.exists():
            shutil.rmtree(venv)  # a half-built venv from an interrupted build
        for stale in (settings.DATA_DIR / "work").glob(f"build-{image.spec_hash}-*"):
            sandbox.remove_tree(stale)  # an interrupted build's folder (this one holds the lock)
        if isolation.bwrap:
            venv.mkdir()  # the sandbox's one writable mount, the run's uid its owner
            if ids:
                os.chown(venv, *ids)
            work = sandbox.work_folder(f"build-{image.spec_hash}", ids)
        interpreter = _interpreter(spec.python_version)
        step(
            f"python{spec.python_version} -m venv",
            [interpreter, "-m", "venv", *([] if spec.steps else ["--without-pip"]), str(venv)],
        )
        env = {
            **_build_env(),
            "VIRTUAL_ENV": str(venv),
            "PATH": f"{venv / 'bin'}:{_build_env()['PATH']}",
        }
        for entry in spec.steps:
            match entry:
                case ImageStep("pip_install", packages):
                    step(
                        "pip install " + " ".join(packages),
                        [
                            str(venv / "bin" / "python"),
                            "-m",
                            "pip",
                            "install",
                            "--disable-pip-version-check",
                            *packages,
                        ],
                        env,
                    )
                case ImageStep("run_commands", commands):
                    for command in commands:
                        step(command, ["/bin/sh", "-c", command], env)
                case ImageStep("apt_install", packages):
                    if os.geteuid() != 0:
                        raise ImageBuildError(
                            "apt_install needs root, and this local worker does not run as "
                            "root: install the packages on the worker yourself, or use the "
                            "kubernetes executor"
                        )
                    step(
                        "apt-get install " + " ".join(packages),
                        ["apt-get", "install", "-y", "--no-install-recommends", *packages],
                        env,
                        confined=False,  # it installs into this machine, as root
                    )
                case ImageStep("env", _):
                    pass  # not built: the runner sets the image's environment for every run
                case _:
                    raise ImageBuildError(f"image step {entry.kind!r} is unknown")
    except ImageBuildError as exc:
        log.append(f"\nbuild failed: {exc}\n")
        _finish(build, ImageBuildStatus.FAILED, log)
        raise
    finally:
        if work:
            sandbox.remove_tree(work.root)
    (venv / ".ready").write_text(timezone.now().isoformat())
    log.append("\nbuild succeeded\n")
    _finish(build, ImageBuildStatus.READY, log)


def _build_env() -> dict[str, str]:
    """A build's environment: the worker's PIP_* settings (its index, certificates), no more."""
    return {
        **{name: value for name, value in os.environ.items() if name.startswith("PIP_")},
        "PATH": os.environ.get("PATH", "/usr/local/bin:/usr/bin:/bin"),
        "HOME": os.environ.get("HOME", "/tmp"),
        "LANG": "C.UTF-8",
        "PIP_NO_INPUT": "1",
        "DEBIAN_FRONTEND": "noninteractive",
    }


def _save_log(build: ImageBuild, log: list[str]) -> None:
    ImageBuild.objects.filter(id=build.id).update(log="".join(log)[-MAX_BUILD_LOG_CHARS:])


def _finish(build: ImageBuild, status: str, log: list[str]) -> None:
    ImageBuild.objects.filter(id=build.id).update(
        status=status, log="".join(log)[-MAX_BUILD_LOG_CHARS:], finished_at=dt.datetime.now(dt.UTC)
    )

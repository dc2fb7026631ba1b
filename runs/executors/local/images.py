"""Images for the local executor: one virtualenv per image hash, built once.

A build is locked with a file lock, so two workers asking for one new image build it once;
the build log is kept on the ImageBuild row and shown like a run's. `run_commands` run with
the venv first on PATH, so `pip install requests` installs into it.

Where runs are sandboxed, so are builds (`run_commands` is the user's code as much as the
function is): the same bubblewrap sandbox and uid as a run, the venv being built its one
writable mount beside a private HOME and /tmp, and the run's own network when runs have one,
so a build reaches package indexes on the internet but not the worker's loopback. The
worker's PIP_* settings and /etc/pip.conf (and /etc/xdg/pip) come along; its own
~/.config/pip, and a package index on its loopback, do not.

A built venv is the deployer's data, never the worker's instructions: the interpreter prefix a
sandbox mounts is the server's own choice (`LocalImage.prefix`), not the venv's pyvenv.cfg;
the "built" marker lives beside the venv, where the build cannot write, made with
O_NOFOLLOW|O_EXCL. `apt_install` is refused: apt runs deployer-chosen package scripts as root
on the host, which no sandbox around it makes safe. A step ends at
CHALK_BUILD_STEP_TIMEOUT_SECONDS, silent or not (a watchdog, not the next line); a build stops
at CHALK_LOCAL_IMAGE_MAX_SIZE. A build holds a database connection only for its writes.
"""

import datetime as dt
import fcntl
import functools
import os
import resource
import select
import shutil
import signal
import subprocess
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from django.conf import settings
from django.utils import timezone

from chalkcompute.image import Image as ImageSpec
from chalkcompute.image import ImageStep
from chalkcompute.quantities import memory_bytes
from runs.executors.local import network, sandbox
from runs.models import ImageBuild, ImageBuildStatus
from runs.worker import database_slot
from scheduling.models import Image

MAX_BUILD_LOG_CHARS = 200_000
SIZE_CHECK_SECONDS = 2.0  # how often a step's venv and folder are measured
KILLED_DRAIN_SECONDS = 5.0  # a killed step's last output; a process that left it keeps the pipe


class ImageBuildError(RuntimeError):
    pass


def images_dir() -> Path:
    return settings.DATA_DIR / "images"


_RUNNING = f"{sys.version_info.major}.{sys.version_info.minor}"


@functools.lru_cache(maxsize=8)  # every run asks (its image's prefix); a miss is not cached
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


@dataclass(frozen=True)
class LocalImage:
    """A built image: its venv, and the install prefix of the base interpreter it was made
    from, which the server chose (the sandbox mounts it read-only for the venv's python)."""

    venv: Path
    prefix: Path

    @property
    def python(self) -> Path:
        return self.venv / "bin" / "python"


def local_image(image: Image) -> LocalImage:
    """Where `image` is (or will be) built here. Raises ImageBuildError when this worker has
    no interpreter of the image's Python version."""
    interpreter = _interpreter(ImageSpec.from_spec(image.spec).python_version)
    return LocalImage(
        venv=images_dir() / image.spec_hash, prefix=Path(interpreter).resolve().parent.parent
    )


def _ready_marker(image: Image) -> Path:
    return images_dir() / f"{image.spec_hash}.ready"


def ensure_image(
    image: Image, heartbeat: Callable[[], None], isolation: sandbox.Isolation
) -> LocalImage:
    """Returns `image` built, building its venv first if needed, in the sandbox `isolation`
    gives runs. `heartbeat` is called about once a second while it builds or waits for
    another worker's build of it."""
    built = local_image(image)
    if _ready_marker(image).exists():
        return built
    images_dir().mkdir(mode=0o700, parents=True, exist_ok=True)
    with open(images_dir() / f"{image.spec_hash}.lock", "w") as lock:
        while True:  # a concurrent build of this image finishes first
            try:
                fcntl.flock(lock, fcntl.LOCK_EX | fcntl.LOCK_NB)
                break
            except BlockingIOError:
                heartbeat()
                time.sleep(1)
        if not _ready_marker(image).exists():
            _build(image, built, heartbeat, isolation)
    return built


def forget_image(spec_hash: str) -> None:
    """Removes an image's venv and marker (the marker first: a run never finds a venv half
    removed). The caller holds the image's build lock."""
    (images_dir() / f"{spec_hash}.ready").unlink(missing_ok=True)
    if (images_dir() / spec_hash).exists():
        sandbox.remove_tree(images_dir() / spec_hash)


def collect_images(in_use: set[str]) -> list[str]:
    """Removes the venvs of images whose hash is not in `in_use` (the images of functions'
    current versions and of active runs) and that no build holds; returns their hashes."""
    folder = images_dir()
    if not folder.is_dir():
        return []
    removed = []
    for path in folder.iterdir():
        name = path.name
        if path.is_symlink() or not path.is_dir() or name in in_use:
            continue
        with open(folder / f"{name}.lock", "w") as lock:
            try:
                fcntl.flock(lock, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                continue  # being built now
            forget_image(name)  # the lock file stays: another worker may be waiting on it
        removed.append(name)
    return removed


def _build(
    image: Image, built: LocalImage, heartbeat: Callable[[], None], isolation: sandbox.Isolation
) -> None:
    venv = built.venv
    with database_slot():
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
    max_size = memory_bytes(settings.CHALK_LOCAL_IMAGE_MAX_SIZE)

    def step(title: str, command: list[str], env: dict | None = None) -> None:
        log.append(f"$ {title}\n")
        _save_log(build, log)
        popen = dict(
            stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, env=env,
            cwd=work.home if work else None, start_new_session=True,
            preexec_fn=lambda: resource.setrlimit(resource.RLIMIT_FSIZE, (max_size, max_size)),
        )  # fmt: skip
        own = None
        if isolation.bwrap:
            command = sandbox.command(
                isolation.bwrap, command, venv=venv, prefix=built.prefix, runtime=None,
                work=work, ids=ids, own_network=bool(isolation.slirp4netns),
            )  # fmt: skip
            popen["env"] = {**(env or _build_env()), "HOME": sandbox.HOME}
        try:
            if isolation.slirp4netns:
                log_path = work.root / "slirp4netns.log"
                process, own = network.spawn(
                    command, slirp4netns=isolation.slirp4netns, log=log_path, **popen
                )
            else:
                process = subprocess.Popen(command, **popen)
        except network.NetworkError as exc:
            raise ImageBuildError(f"the build's network could not be made: {exc}") from None
        try:
            stopped = _follow(process, log, heartbeat, [venv, *([work.root] if work else [])],
                              max_size)  # fmt: skip
            code = process.wait()
        finally:
            process.stdout.close()
            if own:
                own.close()
        if stopped:
            raise ImageBuildError(f"{stopped}: {title}")
        if code != 0:
            raise ImageBuildError(f"image build step failed with exit code {code}: {title}")

    spec = ImageSpec.from_spec(image.spec)
    try:
        refused = [entry for entry in spec.steps if entry.kind == "apt_install"]
        if refused:
            raise ImageBuildError(
                f"apt_install({', '.join(refused[0].content)}) is not done by the local "
                "executor: apt runs each package's install scripts as root on the worker's "
                "machine. Ask an operator to install the packages on the runs workers (every "
                "run sees the machine's /usr), or run the function on the kubernetes executor"
            )
        forget_image(image.spec_hash)  # a half-built venv from an interrupted build
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
    # O_EXCL|O_NOFOLLOW: never through a link, never over a file that is there.
    marker = os.open(
        _ready_marker(image), os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW, 0o600
    )
    os.close(marker)
    log.append("\nbuild succeeded\n")
    _finish(build, ImageBuildStatus.READY, log)


def _follow(
    process: subprocess.Popen,
    log: list[str],
    heartbeat: Callable[[], None],
    folders: list[Path],
    max_size: int,
) -> str | None:
    """Reads a build step's output into `log` until it ends. A watchdog, not the next line,
    stops a step past CHALK_BUILD_STEP_TIMEOUT_SECONDS or past the image's size: it returns
    why it stopped the step, else None."""
    timeout = settings.CHALK_BUILD_STEP_TIMEOUT_SECONDS
    fd = process.stdout.fileno()
    poller = select.poll()
    poller.register(fd, select.POLLIN)
    started = last_size_check = time.monotonic()
    stopped, stopped_at, pending = None, 0.0, b""
    while True:
        if poller.poll(1000):
            chunk = os.read(fd, 65536)
            if not chunk:
                break
            pending += chunk
            *lines, pending = pending.split(b"\n")
            log.extend(line.decode("utf-8", "replace") + "\n" for line in lines)
            if len(pending) > 65536:  # a step that never ends its line
                log.append(pending.decode("utf-8", "replace"))
                pending = b""
        heartbeat()
        now = time.monotonic()
        if stopped:
            if process.poll() is not None and now - stopped_at > KILLED_DRAIN_SECONDS:
                break
            continue
        if now - started > timeout:
            stopped = (
                f"image build step stopped after {timeout:g} seconds "
                "(CHALK_BUILD_STEP_TIMEOUT_SECONDS)"
            )
        elif now - last_size_check > SIZE_CHECK_SECONDS:
            last_size_check = now
            size = sum(_size(folder) for folder in folders)
            if size > max_size:
                stopped = (
                    f"image build stopped: it wrote {size / 2**20:.0f} MiB, above "
                    f"CHALK_LOCAL_IMAGE_MAX_SIZE ({settings.CHALK_LOCAL_IMAGE_MAX_SIZE})"
                )
        if stopped:
            stopped_at = now
            try:
                os.killpg(process.pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
    if pending:
        log.append(pending.decode("utf-8", "replace"))
    return stopped


def _size(folder: Path) -> int:
    """Bytes on disk under `folder`, links not followed."""
    total = 0
    for root, dirs, files in os.walk(folder):
        for name in (*dirs, *files):
            try:
                total += os.lstat(os.path.join(root, name)).st_blocks * 512
            except OSError:
                pass
    return total


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
    with database_slot():
        ImageBuild.objects.filter(id=build.id).update(log="".join(log)[-MAX_BUILD_LOG_CHARS:])


def _finish(build: ImageBuild, status: str, log: list[str]) -> None:
    with database_slot():
        ImageBuild.objects.filter(id=build.id).update(
            status=status,
            log="".join(log)[-MAX_BUILD_LOG_CHARS:],
            finished_at=dt.datetime.now(dt.UTC),
        )

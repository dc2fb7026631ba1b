"""An image build is the deployer's code, and what it writes is the deployer's data: nothing it
does reaches the host (runs/executors/local/images.py). Each test is an attack a deployer with
only the `deploy` right tried: a build that rewrites its venv's pyvenv.cfg to have a host
folder mounted, one that plants a link where the worker writes, a package list that apt would
read as "remove the sandbox", a step that never ends."""

import os
import time
import uuid

import pytest
from django.utils import timezone

from chalkcompute.image import Image
from runs.executors.local import sandbox
from runs.executors.local.images import (
    ImageBuildError,
    collect_images,
    ensure_image,
    local_image,
)
from runs.models import Attempt, ImageBuild, Run
from runs.services import run_trigger
from tests.personas import acting
from tests.runs.support import deploy, wait_for, wait_for_run
from tests.runs.test_sandbox import needs_bwrap

pytestmark = [needs_bwrap, pytest.mark.django_db]


def fresh(image: Image) -> Image:
    """A new image, built here rather than found built by an earlier test."""
    return image.env({"CHALK_TEST_BUILD": uuid.uuid4().hex})


def build(name: str, image: Image):
    stored = deploy(name, "pass", image=fresh(image)).current_version.image
    return stored, lambda: ensure_image(stored, lambda: None, sandbox.isolation())


def test_a_rewritten_pyvenv_cfg_mounts_no_host_folder(settings, tmp_path):
    # A host folder a build must never see: readable by anyone, so only a mount would hide it.
    host = settings.DATA_DIR / f"host-{uuid.uuid4().hex[:8]}"
    (host / "bin").mkdir(parents=True)
    (host / "canary").write_text("host data")
    for path in (settings.DATA_DIR, host):
        os.chmod(path, 0o755)
    os.chmod(host / "canary", 0o644)
    image, run_build = build(
        "pyvenv-rewriter",
        Image.debian_slim()
        .run_commands(f'echo "home = {host}/bin" > "$VIRTUAL_ENV/pyvenv.cfg"')
        # The next step's sandbox was made from the rewritten file: it mounted the folder.
        .run_commands(f'cat {host}/canary > "$VIRTUAL_ENV/leak" 2>&1 || true'),
    )
    try:
        built = run_build()

        assert (built.venv / "leak").read_text() != "host data"
        assert "No such file or directory" in (built.venv / "leak").read_text()
        assert not built.prefix.is_relative_to(host)
        # A run of the image mounts the server's interpreter prefix, not what the venv says.
        work = sandbox.WorkFolder(root=tmp_path, home=tmp_path / "home", tmp=tmp_path / "tmp")
        command = sandbox.command(
            "/usr/bin/bwrap", ["python"], venv=built.venv, prefix=built.prefix,
            runtime=tmp_path / "runtime", work=work, ids=None, own_network=False,
        )  # fmt: skip
        assert not any(str(host) in argument for argument in command)
    finally:
        sandbox.remove_tree(host)
        sandbox.remove_tree(local_image(image).venv)


def test_a_link_planted_where_the_marker_goes_is_not_written_through(settings, tmp_path):
    victim = tmp_path / "root-only"
    victim.write_text("precious")
    os.chmod(victim, 0o600)
    image, run_build = build(
        "marker-planter",
        Image.debian_slim().run_commands(f'ln -s {victim} "$VIRTUAL_ENV/.ready"'),
    )
    built = run_build()

    assert victim.read_text() == "precious"
    assert ImageBuild.objects.get(image=image).status == "ready"
    marker = settings.DATA_DIR / "images" / f"{image.spec_hash}.ready"
    assert marker.is_file() and not marker.is_symlink()
    assert ensure_image(image, lambda: None, sandbox.isolation()) == built  # found, not rebuilt
    sandbox.remove_tree(built.venv)


def test_apt_install_is_refused_by_the_local_executor_without_running_apt():
    image, run_build = build("apt-user", Image.debian_slim().apt_install("curl"))

    with pytest.raises(ImageBuildError, match=r"apt_install\(curl\) is not done by the local"):
        run_build()

    stored = ImageBuild.objects.get(image=image)
    assert stored.status == "failed"
    assert "kubernetes executor" in stored.log and "apt-get" not in stored.log


def test_a_silent_build_step_is_stopped_by_its_timeout(settings):
    settings.CHALK_BUILD_STEP_TIMEOUT_SECONDS = 2
    beats = []
    image, _ = build("silent-builder", Image.debian_slim().run_commands("sleep 600"))
    started = time.monotonic()

    with pytest.raises(ImageBuildError, match="stopped after 2 seconds"):
        ensure_image(image, lambda: beats.append(time.monotonic()), sandbox.isolation())

    assert time.monotonic() - started < 30
    assert len(beats) >= 2  # it beat while the step said nothing
    assert "CHALK_BUILD_STEP_TIMEOUT_SECONDS" in ImageBuild.objects.get(image=image).log


def test_a_build_that_writes_past_the_image_size_is_stopped(settings):
    settings.CHALK_LOCAL_IMAGE_MAX_SIZE = "60Mi"
    image, run_build = build(
        "big-builder",
        Image.debian_slim().run_commands(
            'for i in $(seq 100); do head -c 1048576 /dev/zero > "$VIRTUAL_ENV/f$i"; '
            "sleep 0.1; done"
        ),
    )

    with pytest.raises(ImageBuildError, match=r"above CHALK_LOCAL_IMAGE_MAX_SIZE \(60Mi\)"):
        run_build()
    assert not (settings.DATA_DIR / "images" / f"{image.spec_hash}.ready").exists()


@pytest.mark.slow
def test_a_silent_build_holds_no_database_slot_while_another_function_runs(platform):
    # One database connection for the whole runs worker: a build that held it for its length
    # would stop every other run until its timeout.
    platform.env["CHALK_WORKER_DB_CONNECTIONS"] = "1"
    platform.env["CHALK_BUILD_STEP_TIMEOUT_SECONDS"] = "20"
    platform.start_workers(concurrency=2)
    stuck = deploy(
        "stuck-build", "pass", image=fresh(Image.debian_slim().run_commands("sleep 600"))
    )
    quick = deploy("quick", 'print("ran")')

    stuck_run = run_trigger(function=stuck, trigger="manual", actor=acting("test"),
                            now=timezone.now())  # fmt: skip
    wait_for(lambda: ImageBuild.objects.filter(image=stuck.current_version.image,
                                               status="building").exists(),
             timeout=60, message="the stuck build to start")  # fmt: skip
    quick_run = run_trigger(function=quick, trigger="manual", actor=acting("test"),
                            now=timezone.now())  # fmt: skip

    assert wait_for_run(quick_run.id, timeout=60).status == "succeeded"
    assert Run.objects.get(id=stuck_run.id).is_active  # still building meanwhile
    stuck_done = wait_for_run(stuck_run.id, timeout=90)
    assert stuck_done.status == "failed"
    reason = Attempt.objects.get(run=stuck_done).reason
    assert "stopped after 20 seconds (CHALK_BUILD_STEP_TIMEOUT_SECONDS)" in reason, reason


def test_unused_images_are_collected_and_used_ones_kept(settings):
    kept, _ = build("kept", Image.debian_slim())
    dropped, _ = build("dropped", Image.debian_slim())
    for image in (kept, dropped):
        ensure_image(image, lambda: None, sandbox.isolation())

    removed = collect_images({kept.spec_hash})

    assert dropped.spec_hash in removed and kept.spec_hash not in removed
    assert local_image(kept).python.exists()
    assert not local_image(dropped).venv.exists()
    assert not (settings.DATA_DIR / "images" / f"{dropped.spec_hash}.ready").exists()
    sandbox.remove_tree(local_image(kept).venv)


@pytest.mark.slow
def test_a_pth_file_of_the_image_runs_no_code_in_the_runner_before_it_reads_its_token(platform):
    platform.start_workers(concurrency=2)
    # Site runs a .pth's import lines in every interpreter that starts with site: had the
    # runner done so, this one would have read the token's pipe before the runner could.
    thief = (
        "import os; fd = os.environ.get('CHALK_ATTEMPT_TOKEN_FD'); "
        "fd and open('/tmp/stolen', 'w').write(os.read(int(fd), 200).decode())"
    )
    image = Image.debian_slim().run_commands(
        "python -c \"import sysconfig; print(sysconfig.get_paths()['purelib'])\" > /tmp/site",
        f'echo "{thief}" > "$(cat /tmp/site)/zz_thief.pth"',
    )
    function = deploy(
        "pth-victim",
        'import os\nprint("stolen", os.path.exists("/tmp/stolen"))',
        image=fresh(image),
    )

    run = run_trigger(function=function, trigger="manual", actor=acting("test"),
                      now=timezone.now())  # fmt: skip
    finished = wait_for_run(run.id, timeout=120)

    attempt = Attempt.objects.get(run=finished)
    assert finished.status == "succeeded", attempt.reason
    assert list(attempt.log_lines_set.values_list("text", flat=True)) == ["stolen False"]

"""Local runs are sandboxed (runs/executors/local/sandbox.py): a deployed function tries to
read the data folder, the checkout, the operator's home, the runner's token and other
processes, to see another function's secret, and to write the runtime and the image's
virtualenv; each run says what it found in its log, and the test reads it there.

The sandbox tests run for real where bubblewrap is installed (CI: `.ci/run` installs it); on
a machine without it they are skipped, and the fallback (an unsandboxed run, warned at `make
run`'s start, on the run's log and on the console's pages) is tested everywhere."""

import hashlib
import io
import json
import os
import shlex
import shutil
import subprocess
import sys
import uuid
from pathlib import Path

import psutil
import pytest
from django.conf import settings
from django.contrib.auth import get_user_model
from django.core.management import call_command
from django.utils import timezone

from chalkcompute.image import Image
from chalkcompute.runtime import protocol
from chalkcompute.runtime import runner as runner_module
from chalkcompute.runtime.protocol import AttemptDocument
from chalkweb.management.commands import run_platform
from runs.executors.local import sandbox
from runs.executors.local.executor import LocalExecutor
from runs.executors.local.images import ensure_image
from runs.models import ImageBuild, LogLine, Run
from runs.services import attempt_claim, run_trigger
from scheduling.services import secret_set
from tests.personas import acting
from tests.runs.runner_harness import attempt_spec, run_runner
from tests.runs.support import Gate, deploy, wait_for, wait_for_run

REPO = Path(__file__).resolve().parents[2]
HAS_BWRAP = shutil.which("bwrap") is not None
# A laptop without bubblewrap skips the sandbox tests (its runs are warned as not isolated,
# which the tests below check everywhere); CI installs it, so there a missing bwrap fails.
if not HAS_BWRAP and os.environ.get("CI"):
    raise RuntimeError("CI must run the sandbox tests: apt-get install bubblewrap (.ci/run does)")
needs_bwrap = pytest.mark.skipif(not HAS_BWRAP, reason="bubblewrap is not installed here")

# What a function prints: one `probe NAME JSON` line per thing it tried.
PROBE = """
import json, os, re, sys, sysconfig, urllib.error, urllib.request
from pathlib import Path

def report(name, value):
    print("probe", name, json.dumps(value, default=str))

def attempt(action):
    try:
        return "ok: " + repr(action())[:300]
    except Exception as exc:
        return "refused: " + type(exc).__name__

def readable(path):
    try:
        return Path(path).read_bytes()
    except OSError:
        return b""
"""

PROBER = (
    PROBE
    + """
DATA, REPO, SERVER = {data!r}, {repo!r}, os.environ["CHALK_SERVER_URL"].rstrip("/")
from chalkcompute.client import urlopen  # the runner's way to the server: the socket
SOCKET = os.environ.get("CHALK_SERVER_SOCKET")
report("uid", [os.getuid(), os.geteuid(), os.getgid(), os.getegid(), os.getgroups()])
report("data folder", attempt(lambda: sorted(os.listdir(DATA))))
report("canary", attempt(lambda: Path(DATA, "sandbox-canary").read_text()))
report("secrets key", attempt(lambda: Path(DATA, "secrets.key").read_text()))
report("other work folders", attempt(lambda: os.listdir(Path(DATA, "work"))))
report("checkout", attempt(lambda: Path(REPO, "manage.py").read_text()))
report("checkout listing", attempt(lambda: os.listdir(REPO)))
report("server venv", attempt(lambda: os.listdir(Path(REPO, ".venv"))))
report("operator home", attempt(lambda: os.listdir("/root")))
report("operator profile", attempt(lambda: Path("/root/.profile").read_text()))
pids = sorted(int(p) for p in os.listdir("/proc") if p.isdigit())
report("processes", {{p: readable(f"/proc/{{p}}/cmdline").replace(b"\\0", b" ").decode()[:400]
                      for p in pids}})
ppid = os.getppid()
report("pid 1 environ", attempt(lambda: Path("/proc/1/environ").read_bytes()))
report("runner environ", attempt(lambda: Path(f"/proc/{{ppid}}/environ").read_bytes()))
report("runner mem", attempt(lambda: open(f"/proc/{{ppid}}/mem", "rb").read(1)))
report("runner fds", attempt(lambda: os.listdir(f"/proc/{{ppid}}/fd")))
report("token variables", sorted(n for n in os.environ if "TOKEN" in n))
# Every token-like text it can read anywhere, tried on the runner API: 401 is "unknown".
decoy = "chalk_attempt_" + "d" * int("43")  # not folded into a constant of the source's .pyc
Path("/tmp/decoy").write_text(decoy)  # found, and refused: the check works
found = set()
pattern = re.compile(rb"chalk_attempt_[A-Za-z0-9_-]{{20,}}")
texts = ["\\0".join(f"{{k}}={{v}}" for k, v in os.environ.items()).encode()]
texts += [readable(f"/proc/{{p}}/{{part}}") for p in pids for part in ("environ", "cmdline")]
for root in {{os.environ["HOME"], "/tmp", os.getcwd()}}:
    texts += [readable(path) for path in Path(root).rglob("*") if path.is_file()]
for fd in os.listdir("/proc/self/fd"):
    try:
        texts.append(os.pread(int(fd), 4096, 0))
    except OSError:
        pass
for text in texts:
    found.update(match.decode() for match in pattern.findall(text))
accepted = 0
for candidate in found:
    request = urllib.request.Request(
        SERVER + "/api/runner/v1/attempt", headers={{"Authorization": "Bearer " + candidate}}
    )
    try:
        urlopen(request, timeout=10, unix_socket=SOCKET)
        accepted += 1
    except urllib.error.HTTPError as exc:
        accepted += exc.code != 401
report("tokens found", len(found))
report("tokens accepted", accepted)
report("secrets", {{name: name in os.environ for name in ("RATES_KEY", "OTHER_KEY")}})
report("own secret", os.environ.get("RATES_KEY") == "rates-secret-value")
needle = "-".join(["other", "secret", "value"]).encode()  # not in this source as it is
report("other secret anywhere", any(needle in text for text in texts))
for name, path in (("secrets api", "/api/v1/secrets"), ("admin", "/admin/login/")):
    try:
        urlopen(urllib.request.Request(SERVER + path), timeout=10, unix_socket=SOCKET)
        report(name, 200)
    except urllib.error.HTTPError as exc:
        report(name, exc.code)
import chalkcompute.runtime.runner as runner
runtime = Path(runner.__file__)
report("runtime", [str(runtime), any(p.is_symlink() for p in [runtime, *runtime.parents])])
report("write runtime", attempt(lambda: runtime.open("a").write("raise SystemExit(9)\\n")))
report("add to runtime", attempt(lambda: (runtime.parent / "evil.py").write_text("x")))
site = Path(sysconfig.get_paths()["purelib"])
report("write venv", attempt(lambda: (site / "zz_evil.pth").write_text("import os\\n")))
report("write venv python", attempt(lambda: open(sys.executable, "ab").write(b"x")))
report("server code on path", [p for p in sys.path if p in (REPO, REPO + "/.venv")])
import resource
report("data limit", resource.getrlimit(resource.RLIMIT_DATA))
report("600 MiB", attempt(lambda: len(bytearray(600 * 2**20))))
report("home", [os.environ["HOME"], os.getcwd(), __import__("tempfile").gettempdir()])
Path(os.environ["HOME"], "leftover").write_text("x")
Path("/tmp/leftover").write_text("x")
archive = urllib.request.Request(SERVER + "/api/runner/v1/runtime.tar.gz")
report("runner api", attempt(lambda: urlopen(archive, timeout=10, unix_socket=SOCKET).status))
report("server directly", attempt(lambda: urllib.request.urlopen(archive, timeout=10).status))
"""
)

CHECKER = (
    PROBE
    + """
import hashlib, sysconfig
import chalkcompute.runtime.runner as runner
runtime = Path(runner.__file__)
report("runner sha256", hashlib.sha256(runtime.read_bytes()).hexdigest())
report("runtime extras", sorted(p.name for p in runtime.parent.glob("evil*")))
site = Path(sysconfig.get_paths()["purelib"])
report("venv extras", sorted(p.name for p in site.glob("zz_evil*")))
report("leftovers", [Path(os.environ["HOME"], "leftover").exists(), Path("/tmp/leftover").exists()])
"""
)


def trigger(function) -> Run:
    return run_trigger(
        function=function, trigger="manual", actor=acting("test"), now=timezone.now()
    )


def log(run: Run) -> list[tuple[str, str, str]]:
    return list(
        LogLine.objects.filter(attempt__run=run)
        .order_by("id")
        .values_list("stream", "level", "text")
    )


def _parse(text: str) -> tuple[str, object]:
    # "probe NAME WITH SPACES JSON": the JSON is what json.loads takes from the end.
    body = text[len("probe ") :]
    for cut in range(len(body)):
        if body[cut] == " ":
            try:
                return body[:cut], json.loads(body[cut + 1 :])
            except ValueError:
                continue
    raise ValueError(text)


def probe_lines(run: Run) -> dict:
    texts = LogLine.objects.filter(attempt__run=run, text__startswith="probe ").values_list(
        "text", flat=True
    )
    return dict(_parse(text) for text in texts)


def _processes_of(entrypoint: str) -> list[psutil.Process]:
    found = []
    for process in psutil.process_iter(["cmdline"]):
        cmdline = " ".join(process.info["cmdline"] or [])
        if "chalkcompute.runtime.child" in cmdline and f"{entrypoint}.py" in cmdline:
            found.append(process)
    return found


@needs_bwrap
@pytest.mark.slow
def test_a_sandboxed_run_reaches_nothing_of_the_platform_nor_of_other_runs(platform):
    canary = settings.DATA_DIR / "sandbox-canary"
    canary.write_text("the data folder")
    for name, value in (("RATES_KEY", "rates-secret-value"), ("OTHER_KEY", "other-secret-value")):
        secret_set(name=name, value=value, actor=acting("test"), now=timezone.now())
    platform.start_workers(concurrency=2)
    gate = Gate(hold=True)
    holder = deploy(
        "holder",
        f"""
        import socket
        held = socket.create_connection(("{gate.address}", {gate.port}))
        print("holding")
        held.recv(64)
        """,
        secrets=("OTHER_KEY",),
    )
    prober = deploy(
        "prober",
        PROBER.format(data=str(settings.DATA_DIR), repo=str(REPO)),
        secrets=("RATES_KEY",),
        memory="256Mi",
    )
    checker = deploy("checker", CHECKER)

    # The other function's run is running, its secret in its environment, while this one looks.
    held = trigger(holder)
    wait_for(
        lambda: (
            LogLine.objects.filter(attempt__run=held, text="holding").exists()
            or not Run.objects.get(id=held.id).is_active
        ),
        timeout=120,
        message="the holder to run",
    )
    held.refresh_from_db()
    assert held.is_active, (held.status, held.status_reason, log(held))
    children = _processes_of("holder")
    assert len(children) == 1
    child = children[0]
    runner = child.parent()
    # Seen from outside the sandbox: nobody, no capabilities; the runner too.
    for process in (child, runner):
        status = Path(f"/proc/{process.pid}/status").read_text()
        fields = dict(line.split(":", 1) for line in status.splitlines())
        assert fields["Uid"].split() == ["65534"] * 4, status
        assert fields["Gid"].split() == ["65534"] * 4, status
        assert fields["Groups"].split() == [], status
        assert fields["CapEff"].strip() == fields["CapPrm"].strip() == "0" * 16, status
        assert fields["NoNewPrivs"].strip() == "1"
    assert runner.cmdline()[-2:] == ["-m", "chalkcompute.runtime"]
    looked = wait_for_run(trigger(prober).id)
    gate.release()
    held = wait_for_run(held.id)
    checked = wait_for_run(trigger(checker).id)

    assert (looked.status, held.status, checked.status) == ("succeeded",) * 3, (
        looked.status_reason,
        log(looked),
    )
    found = probe_lines(looked)
    assert found["uid"] == [65534, 65534, 65534, 65534, []]
    # Of the data folder, only the folders leading to this run's image virtualenv and runtime
    # copy (mounted where they are built: the venv's scripts name their path), which list
    # nothing; this test's data folder is in the checkout, so the checkout's path is there too.
    assert found["data folder"] == found["checkout listing"] == "refused: PermissionError"
    for name in ("canary", "secrets key", "other work folders", "checkout"):
        assert found[name] == "refused: FileNotFoundError", (name, found[name])
    assert found["server venv"] == "refused: FileNotFoundError"
    assert found["operator home"] == "refused: PermissionError"
    assert found["operator profile"] == "refused: FileNotFoundError"
    # Its own processes only: bwrap's init, the runner and itself.
    commands = list(found["processes"].values())
    assert len(commands) == 3, commands
    assert "-m chalkcompute.runtime" in commands[1]
    assert "chalkcompute.runtime.child" in commands[2]
    assert not any("celery" in command for command in commands)
    assert found["pid 1 environ"] == "refused: PermissionError"
    assert found["runner environ"] == "refused: PermissionError"
    assert found["runner mem"] == "refused: PermissionError"
    assert found["runner fds"] == "refused: PermissionError"
    assert found["token variables"] == []
    assert (found["tokens found"], found["tokens accepted"]) == (1, 0)  # the decoy only
    assert found["secrets"] == {"RATES_KEY": True, "OTHER_KEY": False}
    assert found["own secret"] is True
    assert found["other secret anywhere"] is False
    # Through the socket, only the runner API: the rest of the server is not there.
    assert (found["secrets api"], found["admin"]) == (403, 403)
    runtime, linked = found["runtime"]
    assert runtime.startswith(str(settings.DATA_DIR / "runtime")) and not linked
    for name in ("write runtime", "add to runtime", "write venv", "write venv python"):
        assert found[name] in ("refused: OSError", "refused: PermissionError"), (name, found)
    assert found["server code on path"] == []
    limit = sandbox.data_limit(256 * 2**20)
    assert found["data limit"] == [limit, limit]
    assert found["600 MiB"] == "refused: MemoryError"
    home, cwd, temporary = found["home"]  # the runner's folder for the source is the cwd
    assert (home, temporary) == ("/home/run", "/tmp") and cwd.startswith("/tmp/chalk-run-")
    assert found["runner api"] == "ok: 200"
    assert found["server directly"] == "refused: URLError"  # on the worker's loopback
    # Another function's later run: the runtime and the venv as they were, nothing left over.
    after = probe_lines(checked)
    assert (
        after["runner sha256"]
        == hashlib.sha256(Path(runner_module.__file__).read_bytes()).hexdigest()
    )
    assert after["runtime extras"] == after["venv extras"] == []
    assert after["leftovers"] == [False, False]
    for run in (looked, held, checked):  # removed once bwrap is gone, after the report
        pattern = f"attempt-{run.attempts.get().id}-*"
        wait_for(lambda: not list((settings.DATA_DIR / "work").glob(pattern)), timeout=10)  # noqa: B023
    assert not _processes_of("holder")
    # Sandboxed, with its own network: no warning anywhere.
    assert not LogLine.objects.filter(stream="system", level="WARNING").exists()


# Where there is no sandbox: said at make run's start, on each run's log, on the pages.


def test_off_runs_unsandboxed_and_says_so_everywhere(settings):
    settings.CHALK_LOCAL_SANDBOX = "off"

    warning = sandbox.isolation().warning

    assert warning.startswith("Runs are not isolated (CHALK_LOCAL_SANDBOX=off): each run's ")
    assert "Install bubblewrap" in warning
    assert LocalExecutor().isolation() == warning
    assert run_platform.runs_line() == "NOT ISOLATED: " + warning


def test_auto_without_bubblewrap_runs_unsandboxed_and_says_why(settings, tmp_path):
    settings.CHALK_LOCAL_SANDBOX = "auto"  # the embedded default's; production requires it
    settings.CHALK_LOCAL_BWRAP = str(tmp_path / "no-bwrap")

    found = sandbox.isolation()

    assert (found.bwrap, found.refusal) == (None, None)
    assert found.warning.startswith(
        f"Runs are not isolated (bubblewrap was not found ({str(tmp_path / 'no-bwrap')!r} is "
        "not an executable here)): each run's function runs as "
    )


def test_auto_with_a_bubblewrap_that_cannot_make_a_sandbox_says_what_it_said(settings):
    settings.CHALK_LOCAL_SANDBOX = "auto"  # the embedded default's; production requires it
    settings.CHALK_LOCAL_BWRAP = "false"  # as a bwrap refused user namespaces would: exit 1

    warning = sandbox.isolation().warning

    assert warning.startswith(
        f"Runs are not isolated ({shutil.which('false')} cannot make a sandbox here (exit code 1"
    )


@needs_bwrap
def test_auto_with_bubblewrap_sandboxes_and_says_nothing(settings):
    found = sandbox.isolation()

    assert found.bwrap == shutil.which("bwrap") and found.description is None
    assert LocalExecutor().isolation() is None
    assert run_platform.runs_line().startswith("sandboxed with bubblewrap (")


@pytest.mark.django_db
def test_required_bubblewrap_that_is_missing_fails_the_attempt_and_says_why(settings, tmp_path):
    settings.CHALK_LOCAL_SANDBOX = "bwrap"
    settings.CHALK_LOCAL_BWRAP = str(tmp_path / "no-bwrap")
    run = trigger(deploy("required", "pass", retries=2))
    attempt, token = attempt_claim(
        attempt_id=run.attempts.get().id, executor="local", executor_ref="test", now=timezone.now()
    )

    LocalExecutor().run(attempt, token)

    run.refresh_from_db()
    assert run.status == "failed"
    assert run.status_reason.startswith(
        "runs are refused: CHALK_LOCAL_SANDBOX=bwrap, but bubblewrap was not found ("
    )
    assert run.attempts.count() == 1  # no retry brings bubblewrap
    assert not (settings.DATA_DIR / "work").exists() or not list(
        (settings.DATA_DIR / "work").glob(f"attempt-{attempt.id}-*")
    )


@pytest.mark.django_db
def test_make_run_says_once_at_start_that_runs_are_not_isolated(settings, monkeypatch):
    settings.CHALK_LOCAL_SANDBOX = "off"
    monkeypatch.setattr(run_platform.Command, "_serve", lambda self, host, port: None)
    out = io.StringIO()

    call_command("run_platform", port=8123, stdout=out)

    lines = out.getvalue().splitlines()
    warned = [line for line in lines if "not isolated" in line]
    assert warned == ["  runs:           NOT ISOLATED: " + sandbox.isolation().warning]
    assert lines[lines.index(warned[0]) - 1].startswith("  data folder:    ")


@pytest.mark.slow
def test_an_unsandboxed_run_says_so_on_its_log_and_pages(platform, settings, client):
    settings.CHALK_LOCAL_SANDBOX = "off"  # the web process's pages
    platform.env["CHALK_LOCAL_SANDBOX"] = "off"  # the worker's runs
    platform.start_workers(concurrency=1)
    function = deploy("unsandboxed", 'import os\nprint("ran as uid", os.getuid())')
    run = wait_for_run(trigger(function).id)

    warning = sandbox.isolation().warning
    assert run.status == "succeeded", run.status_reason
    assert log(run) == [
        ("system", "WARNING", warning),
        ("stdout", "", f"ran as uid {os.geteuid()}"),
    ]
    client.force_login(get_user_model().objects.create_superuser("sandbox-admin", password="x"))
    for page in (f"/functions/{function.name}", f"/runs/{run.id}"):
        html = client.get(page).content.decode()
        assert html.count('id="run-isolation"') == 1, page
        assert "Runs are not isolated (CHALK_LOCAL_SANDBOX=off)" in html, page
    settings.CHALK_LOCAL_SANDBOX = "auto"
    if HAS_BWRAP:  # sandboxed again: the pages say nothing
        assert 'id="run-isolation"' not in client.get(f"/runs/{run.id}").content.decode()


# The runner's side: the token is read once and leaves no trace; levels and samples as the
# server takes them.


@pytest.mark.parametrize("given", ["fd", "file", "variable"])
def test_the_runner_reads_its_token_once_and_keeps_no_trace_of_it(given, monkeypatch, tmp_path):
    token = "chalk_attempt_" + "x" * 43
    pipe = None
    if given == "fd":
        pipe, write = os.pipe()
        os.write(write, token.encode())
        os.close(write)
        monkeypatch.setenv("CHALK_ATTEMPT_TOKEN_FD", str(pipe))
    elif given == "file":
        (tmp_path / "token").write_text(token + "\n")
        monkeypatch.setenv("CHALK_ATTEMPT_TOKEN_FILE", str(tmp_path / "token"))
    else:
        monkeypatch.setenv("CHALK_ATTEMPT_TOKEN", token)
    monkeypatch.setenv("CHALK_ATTEMPT_TOKEN_EXTRA", "anything")

    assert runner_module._token() == token

    assert not [name for name in os.environ if name.startswith("CHALK_ATTEMPT_TOKEN")]
    if pipe is not None:
        with pytest.raises(OSError):
            os.fstat(pipe)  # closed
    assert not (tmp_path / "token").exists()


def test_the_runner_without_a_token_says_which_variable_is_missing(monkeypatch):
    for name in [name for name in os.environ if name.startswith("CHALK_ATTEMPT_TOKEN")]:
        monkeypatch.delenv(name)
    with pytest.raises(KeyError, match="CHALK_ATTEMPT_TOKEN"):
        runner_module._token()


@pytest.mark.parametrize(
    ("name", "number", "level"),
    [
        ("INFO", 20, "INFO"),
        ("TRACE", 5, "DEBUG"),
        ("NOTSET", 0, "DEBUG"),
        ("NOTICE", 25, "INFO"),
        ("ALERT", 45, "ERROR"),
        ("EMERGENCY", 60, "CRITICAL"),
        ("INFORMATION", 20, "INFO"),  # logging.addLevelName(20, "INFORMATION")
        ("WARN", None, "WARNING"),  # a child of an older runtime sends the name only
        ("Level 35", None, "WARNING"),
        ("NOTICE", None, "INFO"),
    ],
)
def test_the_runner_sends_a_custom_level_as_the_standard_one_at_or_below_it(name, number, level):
    assert runner_module._level(name, number) == level


def test_the_runner_sends_custom_levels_as_standard_ones_from_a_real_run():
    result = run_runner(
        attempt_spec(
            """
            import logging
            logging.addLevelName(25, "NOTICE")
            chalk_logger.log(25, "noticed")
            chalk_logger.log(15, "verbose")
            chalk_logger.log(45, "alerted")
            """
        )
    )

    assert result.outcome["status"] == "succeeded", result.stderr
    assert result.log == [
        ("stdout", "INFO", "noticed"),
        ("stdout", "DEBUG", "verbose"),
        ("stdout", "ERROR", "alerted"),
    ]


def test_a_heartbeat_carries_at_most_the_samples_the_server_takes():

    class Api:
        bodies: list[dict] = []

        def call(self, method, path, body=None, patience=60.0) -> dict:
            self.bodies.append(body)
            return {}

    api = Api()
    attempt = runner_module.Attempt(api, AttemptDocument.from_json(attempt_spec("pass")))
    sample = {"ts": 1.0, "cpu_seconds": 0.0, "cpu_percent": 0.0, "rss_bytes": 1}
    limit = protocol.MAX_HEARTBEAT_ITEMS
    attempt.samples = [dict(sample) for _ in range(2 * limit + 1)]

    attempt._heartbeat()
    attempt._heartbeat()
    attempt._heartbeat()

    assert [len(body["samples"]) for body in api.bodies] == [limit, limit, 1]


# The command line, as built.


@pytest.mark.parametrize("own_network", [True, False])
def test_the_sandbox_mounts_only_what_a_run_needs(own_network, settings, tmp_path):
    venv = tmp_path / "images" / "abc"
    (venv / "bin").mkdir(parents=True)
    work = sandbox.WorkFolder(root=tmp_path / "w", home=tmp_path / "w/home", tmp=tmp_path / "w/tmp")

    command = sandbox.command(
        "/usr/bin/bwrap", ["python", "-m", "chalkcompute.runtime"], venv=venv,
        prefix=Path(sys.base_prefix).resolve(), runtime=tmp_path / "runtime" / "sha", work=work,
        ids=(65534, 65534), own_network=own_network,
    )  # fmt: skip

    mounts = [
        (command[i], command[i + 1], command[i + 2])
        for i in range(len(command) - 2)
        if command[i] in ("--bind", "--ro-bind", "--ro-bind-try")
    ]
    writable = [(source, target) for kind, source, target in mounts if kind == "--bind"]
    assert writable == [(str(work.home), "/home/run"), (str(work.tmp), "/tmp")]
    sources = {source for _, source, _ in mounts}
    assert str(venv) in sources and str(tmp_path / "runtime" / "sha") in sources
    for hidden in (str(settings.DATA_DIR), str(REPO), str(REPO / ".venv"), "/root", "/home", "/"):
        assert hidden not in sources
    if not Path(sys.base_prefix).is_relative_to("/usr"):
        assert str(Path(sys.base_prefix).resolve()) in sources
    for flag in ("--unshare-pid", "--unshare-ipc", "--unshare-uts", "--die-with-parent",
                 "--new-session", "--proc", "--dev"):  # fmt: skip
        assert flag in command
    assert "--share-net" not in command
    read_only = {(source, target) for kind, source, target in mounts if kind == "--ro-bind"}
    if own_network:  # its own resolver and the runner API's socket folder, nothing writable
        assert "--unshare-net" in command
        assert (str(work.resolv_conf), "/etc/resolv.conf") in read_only
        assert (str(work.api), "/run/chalkweb") in read_only
        assert ("--ro-bind-try", "/etc/resolv.conf", "/etc/resolv.conf") not in mounts
    else:
        assert "--unshare-net" not in command
        assert ("--ro-bind-try", "/etc/resolv.conf", "/etc/resolv.conf") in mounts
        assert str(work.api) not in sources
    assert command[command.index("--") + 1 :] == [
        sandbox._setpriv() or "/usr/bin/setpriv", "--reuid=65534", "--regid=65534",
        "--clear-groups", "--inh-caps=-all", "--bounding-set=-all", "--",
        "python", "-m", "chalkcompute.runtime",
    ]  # fmt: skip


def test_the_runtime_copy_is_the_bundle_read_only_made_once(settings):
    first = sandbox.runtime_copy()
    again = sandbox.runtime_copy()

    assert first == again and first.parent == settings.DATA_DIR / "runtime"
    runner = first / "chalkcompute" / "runtime" / "runner.py"
    assert not runner.is_symlink() and not (first / "chalkcompute").is_symlink()
    assert runner.read_bytes() == Path(runner_module.__file__).read_bytes()
    assert oct(runner.stat().st_mode & 0o777) == "0o444"
    assert oct(runner.parent.stat().st_mode & 0o777) == "0o555"
    assert {p.name for p in first.iterdir()} == {"chalkcompute", "chalk"}


def test_the_runtime_copy_is_made_by_a_python_without_tar_filters(settings, monkeypatch):
    """Debian 12's python3.11 is 3.11.2, older than tarfile's extraction filters (3.11.4):
    `make run` on it failed every run until the copy did without them."""
    import tarfile

    extractall = tarfile.TarFile.extractall

    def without_filters(self, path=".", members=None, *, numeric_owner=False):  # 3.11.2's
        return extractall(self, path, members, numeric_owner=numeric_owner)

    monkeypatch.delattr(tarfile, "data_filter")
    monkeypatch.setattr(tarfile.TarFile, "extractall", without_filters)
    settings.DATA_DIR = settings.DATA_DIR / "old-python"
    settings.DATA_DIR.mkdir(exist_ok=True)

    copy = sandbox.runtime_copy()

    runner = copy / "chalkcompute" / "runtime" / "runner.py"
    assert runner.read_bytes() == Path(runner_module.__file__).read_bytes()
    sandbox.remove_tree(settings.DATA_DIR)


# Image builds: `run_commands` is the user's code too.

BUILD_PROBE = """
import json, os, socket, sys
from pathlib import Path
def attempt(action):
    try:
        return "ok: " + repr(action())[:100]
    except Exception as exc:
        return "refused: " + type(exc).__name__
def connect(port):
    with socket.create_connection(("127.0.0.1", port), timeout=5):
        return "connected"
found = {
    "uid": os.getuid(),
    "canary": attempt(lambda: Path(DATA, "sandbox-canary").read_text()),
    "data folder": attempt(lambda: os.listdir(DATA)),
    "write checkout": attempt(lambda: Path(REPO, "evil.py").write_text("x")),
    "operator home": attempt(lambda: os.listdir("/root")),
    "postgresql": attempt(lambda: connect(5432)),
    "home": os.environ["HOME"],
}
Path(os.environ["VIRTUAL_ENV"], "probe.json").write_text(json.dumps(found))
"""


@needs_bwrap
@pytest.mark.django_db
@pytest.mark.slow
def test_an_image_build_reaches_nothing_of_the_platform_but_installs_packages(settings):
    (settings.DATA_DIR / "sandbox-canary").write_text("the data folder")
    probe = f"DATA, REPO = {str(settings.DATA_DIR)!r}, {str(REPO)!r}\n" + BUILD_PROBE
    image_spec = (
        Image.debian_slim()
        .run_commands(f"python -c {shlex.quote(probe)}")
        .pip_install("six==1.16.0")  # one small package from the index: the network works
        .env({"CHALK_TEST_BUILD": uuid.uuid4().hex})  # a new image: built here, not cached
    )
    image = deploy("builder", "pass", image=image_spec).current_version.image
    isolation = sandbox.isolation()

    venv = ensure_image(image, lambda: None, isolation).venv

    build = ImageBuild.objects.get(image=image)
    assert build.status == "ready", build.log
    found = json.loads((venv / "probe.json").read_text())
    assert found["uid"] == (65534 if os.geteuid() == 0 else os.geteuid())
    assert found["canary"] == "refused: FileNotFoundError", found
    # The folders leading to the venv (in the data folder, in the checkout here) list nothing.
    for name in ("data folder", "write checkout", "operator home"):
        assert found[name] in ("refused: PermissionError", "refused: FileNotFoundError"), found
    assert not (REPO / "evil.py").exists()
    expected = "refused: ConnectionRefusedError" if isolation.slirp4netns else "ok: 'connected'"
    assert found["postgresql"] == expected  # the worker's loopback: only with a shared network
    assert found["home"] == "/home/run"
    assert "Successfully installed six-1.16.0" in build.log
    assert list(venv.glob("lib/python*/site-packages/six.py"))
    assert not list((settings.DATA_DIR / "work").glob(f"build-{image.spec_hash}-*"))
    sandbox.remove_tree(venv)


@pytest.mark.parametrize(
    "database, expected",
    [("", "auto auto"), ("postgres://postgres@127.0.0.1:5432/chalkweb", "bwrap isolated")],
    ids=["embedded", "production"],
)
def test_production_requires_the_sandbox_and_its_network_by_default(database, expected, tmp_path):
    """A missing sandbox piece is a refusal in production, never a silent run as the worker."""
    env = {k: v for k, v in os.environ.items() if not k.startswith(("CHALK_LOCAL_", "DATABASE"))}
    started = subprocess.run(
        [sys.executable, "-c", "import django; django.setup(); from django.conf import settings"
         " as s; print(s.CHALK_LOCAL_SANDBOX, s.CHALK_LOCAL_NETWORK)"],
        cwd=REPO, capture_output=True, text=True, timeout=60,
        env={**env, "DJANGO_SETTINGS_MODULE": "chalkweb.settings", "DATABASE_URL": database,
             "CHALK_DATA_DIR": str(tmp_path)},
    )  # fmt: skip

    assert started.stdout.strip() == expected, started.stderr

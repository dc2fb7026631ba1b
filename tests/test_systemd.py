"""deploy/systemd/, tested as far as this machine allows: each unit's commands started as
systemd would start them (ExecStartPre, then ExecStart, from WorkingDirectory, with only the
unit's Environment= and the EnvironmentFile in systemd's format, specifiers and $VARIABLES
expanded), the checkout at /opt/chalkweb being this one, against the real PostgreSQL and
Redis. They serve a deploy, a triggered and a scheduled run end to end, and a restart as the
README says (`systemctl restart chalkweb.target`: each unit of the target stopped as
KillMode=mixed stops it, SIGTERM to the main process, then started again; then `systemctl
reload chalkweb-runs-worker`, its ExecReload) with runs in flight loses nothing: no run, no
line, no slot. `systemd-analyze verify` checks the unit files when it is installed."""

import datetime as dt
import os
import re
import shlex
import shutil
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import pytest
import yaml
from django.utils import timezone

from runs.beat import ensure_periodic_tasks
from runs.models import LogLine, Run, Trigger
from tests.personas import make_token
from tests.runs.support import database_url, wait_for, wait_for_run
from tests.test_make_run import free_port

REPO = Path(__file__).resolve().parents[1]
UNITS = REPO / "deploy" / "systemd"
PREFIX = "/opt/chalkweb"  # where the units expect the checkout (and its .venv)
ENV_FILE = "/etc/chalkweb/chalkweb.env"
SERVICES = ["web", "control-worker", "runs-worker", "beat"]  # in their After= order
HANDED_OVER = "takes new runs"  # manage.py runs_worker, once the new celery worker is ready
# What `systemctl restart chalkweb.target` restarts: the units PartOf= it. The runs worker is
# not one of them; it is reloaded (a handover), so its runs in flight delay no start.
RESTARTED = ["web", "control-worker", "beat"]
SYSTEMD_PATH = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"

JOBS = """
import time

import chalkcompute


@chalkcompute.function(name="slow-report")
def slow_report() -> None:
    for step in range(8):
        print(f"step {step}", flush=True)
        time.sleep(1)


@chalkcompute.function(name="every-minute", schedule="* * * * *")
def every_minute() -> None:
    print("on the minute")
"""


def read_unit(name: str) -> dict[str, list[tuple[str, str]]]:
    """{section: [(key, value), ...]} of a unit file (keys may repeat, as in systemd)."""
    sections: dict[str, list[tuple[str, str]]] = {}
    section = ""
    for line in (UNITS / name).read_text().splitlines():
        line = line.strip()
        if not line or line[0] in "#;":
            continue
        if line.startswith("["):
            section = line.strip("[]")
            sections[section] = []
            continue
        key, separator, value = line.partition("=")
        assert separator, f"{name}: not KEY=VALUE: {line!r}"
        sections[section].append((key.strip(), value.strip()))
    return sections


def service(name: str) -> dict[str, list[str]]:
    values: dict[str, list[str]] = {}
    for key, value in read_unit(f"chalkweb-{name}.service")["Service"]:
        values.setdefault(key, []).append(value)
    return values


def read_env_file(text: str) -> dict[str, str]:
    """systemd's EnvironmentFile format: KEY=VALUE lines, # or ; comments, optional quotes."""
    env = {}
    for line in text.splitlines():
        line = line.strip()
        if not line or line[0] in "#;":
            continue
        key, separator, value = line.partition("=")
        assert separator and re.fullmatch(r"[A-Za-z_][A-Za-z0-9_]*", key.strip()), line
        value = value.strip()
        if len(value) >= 2 and value[0] == value[-1] and value[0] in "'\"":
            value = value[1:-1]
        env[key.strip()] = value
    return env


def command_line(value: str, env: dict[str, str]) -> list[str]:
    """An Exec line as systemd runs it: %% and %H expanded, ${NAME} as one word, $NAME split
    on whitespace, the installed prefix being this checkout."""

    def specifier(match: re.Match) -> str:
        assert match.group(1) in "%H", f"a specifier this test does not know: {match.group(0)}"
        return "%" if match.group(1) == "%" else socket.gethostname()

    value = re.sub(r"%(.)", specifier, value).replace(PREFIX, str(REPO))
    words = []
    for word in shlex.split(value):
        whole = re.fullmatch(r"\$\{(\w+)\}|\$(\w+)", word)
        if whole and whole.group(2):
            words += env[whole.group(2)].split()
        elif whole:
            words.append(env[whole.group(1)])
        else:
            words.append(re.sub(r"\$\{(\w+)\}", lambda m: env[m.group(1)], word))
    return words


class Machine:
    """The four units of chalkweb.target, started and stopped as systemd would."""

    def __init__(self, tmp_path: Path, port: int) -> None:
        self.logs = tmp_path
        template = read_env_file((UNITS / "chalkweb.env.example").read_text())
        # What an operator edits in the template; everything else stays as shipped.
        self.file_env = {
            **template,
            "DATABASE_URL": database_url(),
            "CELERY_BROKER_URL": os.environ.get(
                "CELERY_TEST_BROKER_URL", "redis://127.0.0.1:6379/15"
            ),
            "DJANGO_SECRET_KEY": os.environ["DJANGO_SECRET_KEY"],
            "CHALK_SECRETS_KEY": os.environ["CHALK_SECRETS_KEY"],
            "CHALK_PUBLIC_URL": f"http://127.0.0.1:{port}",
            "CHALK_RUNNER_SERVER_URL": f"http://127.0.0.1:{port}",
            "CHALK_WEB_BIND": f"127.0.0.1:{port}",
            "CHALK_WEB_WORKERS": "2",
            "CHALK_DATA_DIR": str(tmp_path / "state"),
        }
        self.url = f"http://127.0.0.1:{port}"
        self.processes: dict[str, subprocess.Popen] = {}

    def env(self, name: str) -> dict[str, str]:
        unit = service(name)
        assert unit["EnvironmentFile"] == [ENV_FILE]
        env = {"PATH": SYSTEMD_PATH, "LANG": "C.UTF-8", "HOME": str(self.logs)}
        for assignment in unit.get("Environment", []):
            key, _, value = assignment.partition("=")
            env[key] = value
        return {**env, **self.file_env}

    def start(self, name: str) -> None:
        unit, env = service(name), self.env(name)
        cwd = unit["WorkingDirectory"][0].replace(PREFIX, str(REPO))
        for pre in unit.get("ExecStartPre", []):
            subprocess.run(command_line(pre, env), cwd=cwd, env=env, check=True, timeout=300)
        (exec_start,) = unit["ExecStart"]
        log = (self.logs / f"{name}.log").open("a")
        self.processes[name] = subprocess.Popen(
            command_line(exec_start, env), cwd=cwd, env=env, stdout=log, stderr=subprocess.STDOUT,
            start_new_session=True,
        )  # fmt: skip

    def stop(self, name: str) -> int:
        """KillMode=mixed: SIGTERM to the main process; what is left after TimeoutStopSec is
        killed. Returns the main process's exit status."""
        process = self.processes.pop(name)
        timeout = service(name)["TimeoutStopSec"][0]
        seconds = int(timeout[:-1]) * 3600 if timeout.endswith("h") else int(timeout)
        process.send_signal(signal.SIGTERM)
        try:
            return process.wait(timeout=min(seconds, 120))
        finally:
            try:
                os.killpg(process.pid, signal.SIGKILL)
            except ProcessLookupError:
                pass

    def reload(self, name: str) -> None:
        """`systemctl reload`: the unit's ExecReload, $MAINPID its main process."""
        (exec_reload,) = service(name)["ExecReload"]
        env = {**self.env(name), "MAINPID": str(self.processes[name].pid)}
        subprocess.run(command_line(exec_reload, env), env=env, check=True, timeout=30)

    def restart_as_the_readme_says(self) -> None:
        """`systemctl restart chalkweb.target && systemctl reload chalkweb-runs-worker`: the
        target's units stopped (in the reverse of their After= order), then started, then the
        runs worker's handover."""
        for name in reversed(RESTARTED):
            assert self.stop(name) == 0, self.log(name)
        for name in RESTARTED:
            self.start(name)
        self.wait_until_up()
        handovers = self.log("runs-worker").count(HANDED_OVER)
        self.reload("runs-worker")
        wait_for(
            lambda: self.log("runs-worker").count(HANDED_OVER) > handovers, 120,
            message=lambda: f"the runs worker's handover:\n{self.log('runs-worker')}",
        )  # fmt: skip

    def log(self, name: str) -> str:
        return (self.logs / f"{name}.log").read_text()

    def wait_until_up(self) -> None:
        def web_up() -> bool:
            try:
                with urllib.request.urlopen(f"{self.url}/healthz", timeout=5) as response:
                    return response.status == 200
            except OSError:
                return False

        wait_for(web_up, 60, message=f"the web unit to answer:\n{self.log('web')}")
        for name, ready in [("control-worker", " ready."), ("runs-worker", " ready."),
                            ("beat", "beat: Starting")]:  # fmt: skip
            wait_for(lambda n=name, r=ready: r in self.log(n), 60, message=self.log(name))
        for name, process in self.processes.items():
            assert process.poll() is None, f"{name} exited:\n{self.log(name)}"


@pytest.fixture
def machine(transactional_db, tmp_path):
    machine = Machine(tmp_path, free_port())
    subprocess.run(
        [sys.executable, "-c", "from chalkweb.celery import purge_queues; purge_queues()"],
        cwd=REPO, env=machine.env("web"), check=True, timeout=60,
    )  # fmt: skip
    # A real install's migration made beat's periodic tasks; the test database is emptied
    # between tests, so they are made again here.
    ensure_periodic_tasks()
    yield machine
    for name in list(machine.processes):
        machine.stop(name)


@pytest.mark.slow
def test_the_units_serve_deploys_and_runs_and_restart_without_losing_a_run(machine, tmp_path):
    for name in SERVICES:
        machine.start(name)
    machine.wait_until_up()
    _, token = make_token("ops", role="deployer")
    (tmp_path / "jobs.py").write_text(JOBS)
    sdk = {"PATH": SYSTEMD_PATH, "HOME": str(tmp_path), "CHALK_COMPUTE_URL": machine.url,
           "CHALK_COMPUTE_TOKEN": token}  # fmt: skip
    chalkcompute = str(Path(sys.executable).with_name("chalkcompute"))

    deployed = subprocess.run(
        [chalkcompute, "deploy", "jobs.py"], cwd=tmp_path, env=sdk, capture_output=True,
        text=True, timeout=60,
    )  # fmt: skip
    assert deployed.returncode == 0, deployed.stderr
    started = subprocess.run(
        [chalkcompute, "run", "slow-report"], env=sdk, capture_output=True, text=True, timeout=60
    )
    assert started.returncode == 0, started.stderr
    run_id = int(re.search(r"Started run (\d+)", started.stdout).group(1))

    def logged(text: str, run: int = run_id) -> bool:
        return Run.objects.get(id=run).attempts.filter(log_lines_set__text=text).exists()

    def in_flight() -> bool:
        run = Run.objects.get(id=run_id)
        assert run.status in ("queued", "starting", "running"), [
            (a.reason, a.error_message, a.traceback) for a in run.attempts.all()
        ]
        return logged("step 1")

    wait_for(in_flight, 60, message="the run to be in flight")
    machine.restart_as_the_readme_says()

    run = wait_for_run(run_id, timeout=120)
    assert run.status == "succeeded", [a.reason or a.error_message for a in run.attempts.all()]
    (attempt,) = run.attempts.all()
    texts = [line.text for line in attempt.log_lines_set.filter(stream="stdout").order_by("id")]
    assert texts == [f"step {step}" for step in range(8)]

    every_minute = Run.objects.filter(function__name="every-minute", trigger=Trigger.SCHEDULE)

    def what_ran() -> str:
        runs = [
            (f"{run.scheduled_for:%H:%M}", run.status, run.status_reason)
            for run in every_minute.order_by("scheduled_for")
        ]
        return f"a scheduled run of every-minute to succeed; its runs: {runs}"

    scheduled = wait_for(
        lambda: every_minute.filter(status="succeeded").first(), 130, message=what_ran
    )
    assert logged("on the minute", scheduled.id)
    for name in SERVICES:
        assert machine.stop(name) == 0, machine.log(name)


LONG_JOBS = """
import time

import chalkcompute


@chalkcompute.function(name="long-report", timeout=600)
def long_report() -> None:
    for line in range(100):
        print(f"long line {line:03d}", flush=True)
        time.sleep(1)


@chalkcompute.function(name="every-minute", schedule="* * * * *")
def every_minute() -> None:
    print("on the minute")
"""
SLOT_START_SECONDS = 30  # a slot's run starts within this, on a busy machine, restart or not
WEB_AWAY_SECONDS = 40  # longer than CHALK_HEARTBEAT_TIMEOUT_SECONDS, the reaper's silence limit


@pytest.mark.slow
def test_a_restart_with_a_long_run_in_flight_keeps_every_slot_and_every_line(machine, tmp_path):
    """`systemctl restart chalkweb.target && systemctl reload chalkweb-runs-worker` just
    before a minute's slot, with a 100-second run in flight, then the web away for 40 s: the
    slot's run starts within seconds (on the new runs worker, while the old one still has the
    long run), and the long run succeeds with every line."""
    for name in SERVICES:
        machine.start(name)
    machine.wait_until_up()
    _, token = make_token("ops", role="deployer")
    (tmp_path / "jobs.py").write_text(LONG_JOBS)
    sdk = {"PATH": SYSTEMD_PATH, "HOME": str(tmp_path), "CHALK_COMPUTE_URL": machine.url,
           "CHALK_COMPUTE_TOKEN": token}  # fmt: skip
    chalkcompute = str(Path(sys.executable).with_name("chalkcompute"))
    deployed = subprocess.run(
        [chalkcompute, "deploy", "jobs.py"], cwd=tmp_path, env=sdk, capture_output=True,
        text=True, timeout=60,
    )  # fmt: skip
    assert deployed.returncode == 0, deployed.stderr
    # The long run starts about 15 s before a slot (one wait for a minute's second 40), and
    # the restart begins about 5 s before it: the slot falls in the restart.
    while not 40 <= time.time() % 60 < 46:
        time.sleep(0.5)
    started = subprocess.run(
        [chalkcompute, "run", "long-report"], env=sdk, capture_output=True, text=True, timeout=60
    )
    assert started.returncode == 0, started.stderr
    long_run = int(re.search(r"Started run (\d+)", started.stdout).group(1))
    wait_for(
        lambda: LogLine.objects.filter(attempt__run_id=long_run, text="long line 002").exists(),
        60, message="the long run to be in flight",
    )  # fmt: skip
    while time.time() % 60 < 54:
        time.sleep(0.2)
    restart_began = timezone.now()
    machine.restart_as_the_readme_says()
    restarted = timezone.now()
    assert Run.objects.get(id=long_run).status == "running"
    # An upgrade's web may be away longer (make install, migrations): the runner keeps its
    # lines, the worker keeps the attempt's heartbeat, and the reaper, running, loses nothing.
    assert machine.stop("web") == 0, machine.log("web")
    time.sleep(WEB_AWAY_SECONDS)
    machine.start("web")
    machine.wait_until_up()

    run = wait_for_run(long_run, timeout=180)
    assert run.status == "succeeded", [a.reason or a.error_message for a in run.attempts.all()]
    (attempt,) = run.attempts.all()
    texts = [line.text for line in attempt.log_lines_set.filter(stream="stdout").order_by("id")]
    assert texts == [f"long line {line:03d}" for line in range(100)]
    # The old celery worker finished the long run, then exited.
    wait_for(
        lambda: "finished its runs and exited" in machine.log("runs-worker"), 30,
        message=lambda: machine.log("runs-worker"),
    )  # fmt: skip

    slots = [
        restart_began.replace(second=0, microsecond=0) + dt.timedelta(minutes=minutes)
        for minutes in range(1, 4)
    ]
    slots = [slot for slot in slots if slot < run.finished_at]
    assert slots, (restart_began, run.finished_at)
    every_minute = Run.objects.filter(function__name="every-minute", trigger=Trigger.SCHEDULE)
    for slot in slots:
        scheduled = wait_for(
            lambda s=slot: every_minute.filter(scheduled_for=s, status="succeeded").first(), 60,
            message=lambda: [(f"{r.scheduled_for:%H:%M:%S}", r.status, r.status_reason,
                              r.started_at) for r in every_minute.order_by("scheduled_for")],
        )  # fmt: skip
        assert scheduled.missed_slots == 0, slot
    during_the_restart = every_minute.get(scheduled_for=slots[0])
    lag = (during_the_restart.started_at - slots[0]).total_seconds()
    print(f"restart {restart_began:%H:%M:%S.%f}-{restarted:%H:%M:%S.%f}, slot {slots[0]:%H:%M}"
          f" started {lag:.1f} s late")  # fmt: skip
    assert lag < SLOT_START_SECONDS, (lag, machine.log("runs-worker"))
    for name in [*RESTARTED, "runs-worker"]:
        assert machine.stop(name) == 0, machine.log(name)


def test_every_unit_runs_from_the_checkout_with_the_environment_file():
    for name in [*SERVICES, "kubernetes-watcher"]:
        unit = service(name)
        assert unit["WorkingDirectory"] == [PREFIX], name
        assert unit["EnvironmentFile"] == [ENV_FILE], name
        assert unit["ExecStart"][0].startswith(f"{PREFIX}/.venv/bin/"), name
        assert unit["KillMode"] == ["mixed"], name
    wanted = dict(read_unit("chalkweb.target")["Unit"])["Wants"].split()
    assert wanted == [f"chalkweb-{name}.service" for name in SERVICES]


def test_no_start_of_a_restart_waits_for_the_runs_in_flight():
    """systemd orders a stop of one unit before the start of another when the two are ordered
    (After=/Before=, either way) and both are in the transaction. A restart of the target
    takes in the units PartOf= it: the runs worker, whose stop waits for its runs (up to
    TimeoutStopSec), is not one of them. It is reloaded instead: ExecReload hands over."""

    def unit(name: str) -> dict[str, list[str]]:
        values: dict[str, list[str]] = {}
        for key, value in read_unit(f"chalkweb-{name}.service")["Unit"]:
            values.setdefault(key, []).extend(value.split())
        return values

    part_of_the_target = [
        name
        for name in [*SERVICES, "kubernetes-watcher"]
        if "chalkweb.target" in unit(name).get("PartOf", [])
    ]
    assert sorted(part_of_the_target) == sorted([*RESTARTED, "kubernetes-watcher"])
    for name in part_of_the_target:
        ordered = unit(name).get("After", []) + unit(name).get("Before", [])
        assert "chalkweb-runs-worker.service" not in ordered, name
    runs_worker = service("runs-worker")
    assert runs_worker["ExecReload"] == ["/bin/kill -HUP $MAINPID"]
    assert "manage.py runs_worker" in runs_worker["ExecStart"][0]
    assert service("runs-worker")["TimeoutStopSec"] == ["1h"]  # a stop drains, as long as that


def test_the_web_unit_the_image_and_the_manifest_run_the_same_command():
    (exec_start,) = service("web")["ExecStart"]
    unit_args = shlex.split(exec_start)[1:]
    dockerfile = (REPO / "deploy" / "kubernetes" / "Dockerfile").read_text()
    image_args = yaml.safe_load(re.search(r"^CMD (.+)$", dockerfile, re.M).group(1))[1:]
    web = next(
        doc
        for doc in yaml.safe_load_all((REPO / "deploy" / "kubernetes" / "web.yaml").read_text())
        if doc["kind"] == "Deployment"
    )
    (container,) = web["spec"]["template"]["spec"]["containers"]
    assert unit_args == image_args == container["command"][1:]
    assert unit_args == ["--config", "python:chalkweb.gunicorn_conf", "chalkweb.wsgi"]


def test_the_environment_file_template_sets_what_production_needs():
    env = read_env_file((UNITS / "chalkweb.env.example").read_text())

    for name in ("DATABASE_URL", "CELERY_BROKER_URL", "DJANGO_SECRET_KEY", "CHALK_SECRETS_KEY",
                 "CHALK_PUBLIC_URL", "CHALK_WEB_BIND", "CHALK_LOCAL_MAX_RUNS"):  # fmt: skip
        assert env.get(name), name
    assert env["DATABASE_URL"].startswith("postgres://")
    assert env["CHALK_PUBLIC_URL"].startswith("https://")
    assert env["CHALK_WEB_BIND"].startswith("127.0.0.1:")  # the TLS proxy is in front


@pytest.mark.skipif(
    shutil.which("systemd-analyze") is None,
    reason="systemd-analyze is not installed here: only this check is skipped",
)
def test_systemd_analyze_verifies_the_unit_files(tmp_path):
    """Verified as installed: the prefix replaced by this checkout, which has the .venv."""
    for path in UNITS.glob("chalkweb*"):
        text = path.read_text().replace(PREFIX, str(REPO))
        (tmp_path / path.name).write_text(text.replace(ENV_FILE, str(tmp_path / "chalkweb.env")))
    shutil.copy(UNITS / "chalkweb.env.example", tmp_path / "chalkweb.env")
    units = sorted(
        str(path) for path in tmp_path.iterdir() if path.suffix in (".service", ".target")
    )
    assert len(units) == 6

    result = subprocess.run(
        ["systemd-analyze", "verify", *units], capture_output=True, text=True, timeout=120
    )

    assert (result.returncode, result.stderr) == (0, "")

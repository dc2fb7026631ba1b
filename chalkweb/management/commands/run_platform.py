"""`make run`: sets up the embedded default and runs web, worker and beat until Ctrl-C."""

import os
import secrets
import signal
import subprocess
import sys
import time

from django.conf import settings
from django.contrib.auth import get_user_model
from django.core.management import call_command
from django.core.management.base import BaseCommand, CommandError

from chalkweb.datafolder import replace_private_file, tighten
from chalkweb.env import env_int, env_str
from common.database import EXIT_OLDER_THAN_DATABASE
from runs.beat import ensure_periodic_tasks
from runs.versions import older_than_database
from runs.worker import runs_worker_pool


def web_command(python: str, host: str, port: int) -> list[str]:
    """The web process: Django's runserver for the embedded default only; with DATABASE_URL
    set (production), gunicorn with chalkweb/gunicorn_conf.py, as systemd and Kubernetes run
    it."""
    if settings.CHALK_EMBEDDED:
        return [python, "manage.py", "runserver", f"{host}:{port}", "--noreload", "--skip-checks"]
    return [
        python, "-m", "gunicorn", "--config", "python:chalkweb.gunicorn_conf",
        "--bind", f"{host}:{port}", "chalkweb.wsgi",
    ]  # fmt: skip


def runs_line() -> str:
    """How local runs are isolated, or the warning that they are not (said once, here)."""
    from runs.executors.local import sandbox

    return sandbox.describe()


class Command(BaseCommand):
    help = "Migrate, create the first login and API token, then run web, worker and beat."

    def add_arguments(self, parser):
        parser.add_argument("--port", type=int, default=env_int("PORT", 8000))
        parser.add_argument("--host", default=env_str("HOST", "127.0.0.1"))

    def handle(self, *args, port: int, host: str, **options):
        self._tighten_data_folder()
        call_command("migrate", interactive=False, verbosity=0)
        refusal = older_than_database()  # a newer Chalkweb used this data folder
        if refusal:
            raise CommandError(refusal, returncode=EXIT_OLDER_THAN_DATABASE)
        ensure_periodic_tasks()  # a data folder migrated by an older Chalkweb gets new ones
        password = self._first_login()
        token = self._first_token()
        url = f"http://{host}:{port}/"
        self.stdout.write(f"Chalkweb console: {url}")
        self.stdout.write(f"  data folder:    {settings.DATA_DIR}")
        if settings.CHALK_EXECUTOR == "local":
            self.stdout.write(f"  runs:           {runs_line()}")
        if password:
            self.stdout.write(f"  login:          admin / {password}")
        else:
            self.stdout.write(
                "  login:          admin (password as first printed; change it in the admin)"
            )
        if token:
            self.stdout.write("Deploy from this machine with:")
            self.stdout.write(
                f"  export CHALK_COMPUTE_URL={url.rstrip('/')} CHALK_COMPUTE_TOKEN={token}"
            )
        else:
            self.stdout.write(
                "API token: python manage.py create_token NAME (or the console's API tokens page)"
            )
        self.stdout.flush()
        self._serve(host, port)

    def _tighten_data_folder(self) -> None:
        """A data folder made by an older Chalkweb, or by hand, may be open to other users of
        the machine: from here on only this one may read it (chalkweb/datafolder.py)."""
        for path, old, new in tighten(settings.DATA_DIR):
            self.stdout.write(
                f"tightened {path}: mode {old:o} -> {new:o} (the data folder holds keys, "
                "passwords and the database: for this user only)"
            )

    def _first_login(self) -> str | None:
        """Creates `admin` once; its password is kept in the data folder to print again."""
        password_file = settings.DATA_DIR / "admin-password"
        User = get_user_model()
        if not User.objects.filter(username="admin").exists():
            password = secrets.token_urlsafe(12)
            User.objects.create_superuser("admin", password=password)
            replace_private_file(password_file, password)  # 0600 from the start
        return password_file.read_text().strip() if password_file.exists() else None

    def _first_token(self) -> str | None:
        """Creates a token on first start only: tokens are stored hashed and shown once."""
        from access.models import ApiToken
        from access.tokens import token_create

        if ApiToken.objects.exists():
            return None
        from django.utils import timezone

        from access.actor import Actor

        admin = get_user_model().objects.get(username="admin")
        _, plaintext = token_create(
            name="make-run", user=admin, actor=Actor.platform(), now=timezone.now()
        )
        return plaintext

    def _serve(self, host: str, port: int) -> None:
        python = sys.executable
        env = {**os.environ, "PORT": str(port)}
        # --quiet drops celery's startup banners, which would push the login and the export
        # line above off the screen; chalkweb/celery.py keeps the platform's own periodic
        # tasks (the tick every second, the reaper, ...) out of the INFO lines after that.
        celery = [python, "-m", "celery", "-A", "chalkweb", "--quiet"]
        worker = [*celery, "worker", "--loglevel", "INFO"]
        # Runs hold a thread of the runs worker while they last; the tick and the reaper get
        # their own worker so a busy machine never delays a slot.
        processes = {
            "web": web_command(python, host, port),
            "control-worker": [*worker, "-Q", "chalk-control", "-c", "2",
                               "-n", f"control-{port}@%h"],
            "runs-worker": [*worker, "-Q", "chalk-runs", *runs_worker_pool(),
                            "-n", f"runs-{port}@%h"],
            "beat": [*celery, "beat", "--loglevel", "INFO",
                     "--pidfile", str(settings.DATA_DIR / "beat.pid")],
        }  # fmt: skip
        if settings.CHALK_EXECUTOR == "kubernetes":
            processes["kubernetes-watcher"] = [python, "manage.py", "watch_kubernetes"]
        children = {name: subprocess.Popen(cmd, env=env) for name, cmd in processes.items()}

        def stop(*_):
            for child in children.values():
                if child.poll() is None:
                    child.terminate()
            for child in children.values():
                try:
                    child.wait(timeout=15)
                except subprocess.TimeoutExpired:
                    child.kill()

        signal.signal(signal.SIGTERM, lambda *_: (stop(), sys.exit(0)))
        # `kill <pid of make>`: make ends without passing SIGTERM on to its recipe, and this
        # process is handed to another parent. Nothing may be left running after that.
        parent = os.getppid()
        try:
            while True:
                if os.getppid() != parent:
                    self.stderr.write("what started the platform has ended; stopping")
                    stop()
                    sys.exit(0)
                for name, child in children.items():
                    if child.poll() is not None:
                        self.stderr.write(f"{name} exited with status {child.returncode}; stopping")
                        stop()
                        sys.exit(1)
                time.sleep(0.5)
        except KeyboardInterrupt:
            stop()

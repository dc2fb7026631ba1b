"""The data folder is for the user running Chalkweb only: created 0700 with its keys, password,
database and broker files 0600 from the moment each exists, whatever the umask (every test here
sets a permissive one, so only the code's own care is tested), and never chmod-ed after
writing. An existing folder others could read is tightened when `make run` starts."""

import io
import json
import os
import stat
import subprocess
import sys
from pathlib import Path

import pytest

from chalkweb import broker, datafolder
from chalkweb.management.commands.run_platform import Command

REPO = Path(__file__).resolve().parents[1]

# Imports the settings (a fresh data folder: keys, database file, broker folders), then writes
# to the SQLite database (SQLite makes its -wal and -shm files), under umask 0, and reports
# every path's mode while the database is open, and every chmod call made.
FRESH_START = """
import json, os, sys
from pathlib import Path

os.umask(0)
chmods = []
for name in ("chmod", "fchmod", "lchmod"):
    real = getattr(os, name, None)
    if real is not None:
        def spy(*args, _real=real, **kwargs):
            chmods.append(str(args[0]))
            return _real(*args, **kwargs)
        setattr(os, name, spy)
os.environ["DJANGO_SETTINGS_MODULE"] = "chalkweb.settings"
import django

django.setup()
from django.db import connection

root = Path(os.environ["CHALK_DATA_DIR"])
with connection.cursor() as cursor:
    cursor.execute("CREATE TABLE t (x)")
    cursor.execute("INSERT INTO t VALUES (1)")
    modes = {str(p.relative_to(root)): oct(stat.S_IMODE(p.lstat().st_mode))
             for p in [root, *root.rglob("*")]}
print(json.dumps({"modes": modes, "chmods": chmods}))
"""


def mode(path: Path) -> int:
    return stat.S_IMODE(path.lstat().st_mode)


@pytest.fixture
def permissive_umask():
    old = os.umask(0)
    yield
    os.umask(old)


@pytest.fixture
def no_chmod(monkeypatch):
    """Fails the test on any chmod: a mode set after the file was written is too late."""

    def refuse(path, *args, **kwargs):
        raise AssertionError(f"chmod({path}) after the fact")

    for name in ("chmod", "fchmod", "lchmod"):
        if hasattr(os, name):
            monkeypatch.setattr(os, name, refuse)


def test_a_fresh_data_folder_is_private_from_the_start(tmp_path):
    data = tmp_path / "nested" / "data"
    env = {
        k: v
        for k, v in os.environ.items()
        if k not in ("DATABASE_URL", "CELERY_BROKER_URL", "DJANGO_SECRET_KEY", "CHALK_SECRETS_KEY")
    }
    env["CHALK_DATA_DIR"] = str(data)
    script = "import stat\n" + FRESH_START
    result = subprocess.run(
        [sys.executable, "-c", script], cwd=REPO, env=env, capture_output=True, text=True
    )

    assert result.returncode == 0, result.stderr
    report = json.loads(result.stdout.splitlines()[-1])
    modes = report["modes"]
    assert report["chmods"] == []
    assert {"secrets.key", "django-secret.key", "db.sqlite3", "db.sqlite3-wal"} <= set(modes)
    assert {"broker", "broker/queue", "broker/processed", "broker/control"} <= set(modes)
    for path, found in modes.items():
        expected = "0o700" if (data / path).is_dir() else "0o600"
        assert (path, found) == (path, expected)


def test_keys_are_created_0600_once_and_then_read(tmp_path, permissive_umask, no_chmod):
    key = tmp_path / "secrets.key"

    assert datafolder.private_file(key, lambda: "first\n") == "first"
    assert datafolder.private_file(key, lambda: "second") == "first"
    assert mode(key) == 0o600
    assert [p.name for p in tmp_path.iterdir()] == ["secrets.key"]  # no partial file left


def test_a_key_file_another_process_made_first_wins(tmp_path, permissive_umask, no_chmod):
    key = tmp_path / "secrets.key"

    def make() -> str:  # the other process links its key in while this one writes its own
        datafolder.replace_private_file(key, "theirs")
        return "mine"

    assert datafolder.private_file(key, make) == "theirs"


def test_the_first_logins_password_file_is_private_from_the_start(
    db, tmp_path, settings, permissive_umask, no_chmod
):
    settings.DATA_DIR = tmp_path

    password = Command()._first_login()

    assert (tmp_path / "admin-password").read_text() == password
    assert mode(tmp_path / "admin-password") == 0o600
    assert Command()._first_login() == password


def test_broker_messages_are_written_0600(tmp_path, permissive_umask, no_chmod):
    broker._write_whole(str(tmp_path / "1_x.chalk-runs.msg"), b"{}")

    assert mode(tmp_path / "1_x.chalk-runs.msg") == 0o600


def test_make_run_tightens_a_data_folder_others_could_read(tmp_path, settings):
    data = tmp_path / "data"
    data.mkdir(mode=0o755)
    for name, file_mode in (
        ("secrets.key", 0o644),
        ("db.sqlite3", 0o640),
        ("django-secret.key", 0o600),
    ):
        (data / name).write_text("x")
        (data / name).chmod(file_mode)
    (data / "broker").mkdir()
    (data / "broker").chmod(0o755)
    outside = tmp_path / "outside.txt"
    outside.write_text("not ours to change")
    outside.chmod(0o644)
    (data / "link").symlink_to(outside)
    settings.DATA_DIR = data
    out = io.StringIO()

    Command(stdout=out)._tighten_data_folder()

    why = "(the data folder holds keys, passwords and the database: for this user only)"
    assert out.getvalue().splitlines() == [
        f"tightened {data}: mode 755 -> 700 {why}",
        f"tightened {data / 'broker'}: mode 755 -> 700 {why}",
        f"tightened {data / 'db.sqlite3'}: mode 640 -> 600 {why}",
        f"tightened {data / 'secrets.key'}: mode 644 -> 600 {why}",
    ]
    assert [mode(data), mode(data / "broker")] == [0o700, 0o700]
    assert [mode(data / n) for n in ("secrets.key", "db.sqlite3", "django-secret.key")] == [
        0o600
    ] * 3
    assert mode(outside) == 0o644  # a symlink is not followed

    out = io.StringIO()
    Command(stdout=out)._tighten_data_folder()
    assert out.getvalue() == ""  # nothing left to say

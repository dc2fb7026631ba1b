"""The data folder (CHALK_DATA_DIR): the embedded default's keys, the first login's password,
its SQLite database and broker folders. Only the user running Chalkweb may read any of it.

Everything here is created with its final mode, never chmod-ed after it was written: folders
0700 (mkdir's mode; a umask can only narrow it), files 0600 with O_CREAT | O_EXCL, so whatever
the umask a key is never readable by others for a moment, and a file or a symlink already in
the way is never written through. A data folder made by an older Chalkweb, or by hand, is
tightened when `make run` starts (`tighten`), one line for each path it changes.
"""

import os
import secrets
import stat
from collections.abc import Callable
from pathlib import Path

FOLDER_MODE = 0o700
FILE_MODE = 0o600
_PRIVATE = 0o077  # the group's and others' permission bits


def private_folder(path: Path) -> None:
    """Creates `path` 0700 if it does not exist (missing parents with the usual mode)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    try:
        os.mkdir(path, FOLDER_MODE)
    except FileExistsError:
        pass


def private_empty_file(path: Path) -> None:
    """Creates `path` empty and 0600 if it does not exist: the SQLite database, before SQLite
    makes it 0644 (its write-ahead log and shared-memory files take the database's mode)."""
    try:
        os.close(os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW, FILE_MODE))
    except FileExistsError:
        pass


def _new_file(beside: Path, text: str) -> Path:
    """A new 0600 file in `beside`'s folder holding `text`, under a name nobody reads."""
    path = beside.with_name(f".{beside.name}.{secrets.token_hex(8)}.partial")
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW, FILE_MODE)
    with os.fdopen(fd, "w") as file:
        file.write(text)
        file.flush()
        os.fsync(file.fileno())
    return path


def private_file(path: Path, make: Callable[[], str]) -> str:
    """The text of `path`, a 0600 file, written with `make()` when it does not exist yet.

    Processes that start at once (web, worker, beat) agree on one text: it appears under its
    name whole (a hard link to a complete file, which fails if the name exists), and a process
    that comes second reads the first one's."""
    if not path.exists():
        made = _new_file(path, make())
        try:
            os.link(made, path)
        except FileExistsError:
            pass  # another process made it first: its text is the one
        finally:
            made.unlink()
    return path.read_text().strip()


def replace_private_file(path: Path, text: str) -> None:
    """Writes `text` to `path`, 0600 from the start, replacing whatever was there at once."""
    os.replace(_new_file(path, text), path)


def tighten(folder: Path) -> list[tuple[Path, int, int]]:
    """Takes the group's and others' permissions off `folder` and each path at its top level
    (symlinks are left alone, and not followed); returns (path, old mode, new mode) of each
    path changed. The top level is enough: inside a 0700 folder nobody else can reach more."""
    changed = []
    for path in [folder, *sorted(folder.iterdir())]:
        mode = os.lstat(path).st_mode
        if stat.S_ISLNK(mode) or not stat.S_IMODE(mode) & _PRIVATE:
            continue
        old = stat.S_IMODE(mode)
        os.chmod(path, old & ~_PRIVATE)
        changed.append((path, old, old & ~_PRIVATE))
    return changed

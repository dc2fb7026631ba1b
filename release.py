"""`make release VERSION=X.Y.Z`: makes a release of Chalkweb (README, "Releases") in the git
repository it is run in: sets the one version (chalkcompute/version.py, the server's and the
SDK's), turns the CHANGELOG's "Unreleased" section into the release's, commits both and tags
the commit vX.Y.Z. It refuses a working tree with changes, a version that is not newer than
every release tagged so far (nor older than the version the code says), and a release with
nothing in its CHANGELOG section. It pushes nothing: it prints the command that does."""

import datetime as dt
import os
import re
import subprocess
import sys
from pathlib import Path

VERSION_FILE = Path("chalkcompute/version.py")
CHANGELOG = Path("CHANGELOG.md")
UNRELEASED = "## Unreleased\n"


class Refused(Exception):
    pass


def git(*args: str) -> str:
    return subprocess.run(["git", *args], check=True, capture_output=True, text=True).stdout


def key(version: str) -> tuple[int, int, int]:
    major, minor, patch = (int(part) for part in version.split("."))
    return major, minor, patch


def release(version: str, today: dt.date) -> None:
    if not re.fullmatch(r"\d+\.\d+\.\d+", version):
        raise Refused(f"{version!r} is not a version: give VERSION=X.Y.Z, e.g. 1.4.0")
    if git("status", "--porcelain"):
        raise Refused("the working tree has changes: commit or stash them, then release")
    source = VERSION_FILE.read_text()
    current = re.search(r'^VERSION = "(\d+\.\d+\.\d+)"$', source, re.M).group(1)
    tags = git("tag", "--list", "v*").split()
    tagged = [tag[1:] for tag in tags if re.fullmatch(r"v\d+\.\d+\.\d+", tag)]
    last = max(tagged, key=key, default=None)
    if last is not None and key(version) <= key(last):
        raise Refused(f"{version} is not newer than the last release, {last}")
    if key(version) < key(current):
        raise Refused(f"{version} is older than the version the code says, {current}")
    changelog = CHANGELOG.read_text()
    if UNRELEASED not in changelog:
        raise Refused(f"{CHANGELOG} has no {UNRELEASED.strip()!r} section to release")
    section = changelog.split(UNRELEASED, 1)[1].split("\n## ", 1)[0]
    if not section.strip():
        raise Refused(f"{CHANGELOG}'s Unreleased section is empty: say what the release changes")
    VERSION_FILE.write_text(source.replace(f'VERSION = "{current}"', f'VERSION = "{version}"'))
    CHANGELOG.write_text(
        changelog.replace(UNRELEASED, f"{UNRELEASED}\n## {version} ({today.isoformat()})\n", 1)
    )
    git("commit", "--quiet", "-m", f"Chalkweb {version}", "--", str(VERSION_FILE), str(CHANGELOG))
    git("tag", "--annotate", f"v{version}", "-m", f"Chalkweb {version}")


def main() -> int:
    if len(sys.argv) != 2:
        print("usage: make release VERSION=X.Y.Z", file=sys.stderr)
        return 2
    version = sys.argv[1]
    os.chdir(git("rev-parse", "--show-toplevel").strip())
    try:
        release(version, dt.date.today())
    except Refused as refusal:
        print(f"release refused: {refusal}", file=sys.stderr)
        return 1
    print(f"Chalkweb {version}: committed and tagged v{version}. Publish it with:")
    print(f"  git push origin HEAD v{version}")
    return 0


if __name__ == "__main__":
    sys.exit(main())

"""`make release VERSION=X.Y.Z` (release.py) in a repository of its own: it sets the version,
dates the CHANGELOG's section, commits and tags, and refuses what would make a bad release."""

import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]


def git(repository: Path, *args: str) -> str:
    return subprocess.run(
        ["git", "-C", str(repository), *args], check=True, capture_output=True, text=True
    ).stdout


@pytest.fixture
def repository(tmp_path):
    (tmp_path / "chalkcompute").mkdir()
    (tmp_path / "chalkcompute/version.py").write_text('"""One version."""\n\nVERSION = "0.1.0"\n')
    (tmp_path / "CHANGELOG.md").write_text(
        "# Changelog\n\n## Unreleased\n\n### Upgrade notes for operators\n\n1. Stop the old.\n"
    )
    git(tmp_path, "init", "--quiet")
    git(tmp_path, "-c", "user.name=t", "-c", "user.email=t@t", "commit", "--quiet",
        "--allow-empty", "-m", "start")  # fmt: skip
    git(tmp_path, "add", "-A")
    git(tmp_path, "-c", "user.name=t", "-c", "user.email=t@t", "commit", "--quiet", "-m", "one")
    return tmp_path


def release(repository: Path, version: str) -> subprocess.CompletedProcess:
    env = {"GIT_AUTHOR_NAME": "t", "GIT_AUTHOR_EMAIL": "t@t", "GIT_COMMITTER_NAME": "t",
           "GIT_COMMITTER_EMAIL": "t@t", "PATH": "/usr/bin:/bin"}  # fmt: skip
    return subprocess.run(
        [sys.executable, str(REPO / "release.py"), version], cwd=repository, env=env,
        capture_output=True, text=True,
    )  # fmt: skip


def test_a_release_sets_the_version_dates_the_changelog_and_tags(repository):
    made = release(repository, "0.2.0")

    assert made.returncode == 0, made.stderr
    assert "git push origin HEAD v0.2.0" in made.stdout
    assert 'VERSION = "0.2.0"' in (repository / "chalkcompute/version.py").read_text()
    changelog = (repository / "CHANGELOG.md").read_text()
    assert changelog.startswith("# Changelog\n\n## Unreleased\n\n## 0.2.0 (")
    assert "1. Stop the old." in changelog.split("## 0.2.0")[1]
    assert git(repository, "tag", "--points-at", "HEAD").split() == ["v0.2.0"]
    assert git(repository, "log", "-1", "--format=%s").strip() == "Chalkweb 0.2.0"
    assert git(repository, "status", "--porcelain") == ""


def test_it_refuses_what_would_make_a_bad_release(repository):
    def refused(version: str) -> str:
        made = release(repository, version)
        assert made.returncode == 1, made.stdout
        return made.stderr.strip()

    assert release(repository, "0.2.0").returncode == 0
    assert refused("0.2.0") == "release refused: 0.2.0 is not newer than the last release, 0.2.0"
    assert refused("0.1.9") == "release refused: 0.1.9 is not newer than the last release, 0.2.0"
    assert refused("1.0") == (
        "release refused: '1.0' is not a version: give VERSION=X.Y.Z, e.g. 1.4.0"
    )
    assert refused("0.3.0") == (
        "release refused: CHANGELOG.md's Unreleased section is empty: say what the release changes"
    )
    (repository / "CHANGELOG.md").write_text("# Changelog\n\n## Unreleased\n\n- More.\n")
    assert refused("0.3.0") == (
        "release refused: the working tree has changes: commit or stash them, then release"
    )
    assert git(repository, "tag").split() == ["v0.2.0"]

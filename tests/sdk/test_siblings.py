"""What a deploy ships of the script's folder: the modules and packages the script imports
from it, as `python jobs.py` would find them, read from real files."""

import textwrap
from pathlib import Path

from chalkcompute.siblings import sibling_sources


def tree(folder: Path, files: dict[str, str]) -> Path:
    for name, text in files.items():
        path = folder / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(textwrap.dedent(text))
    return folder / "jobs.py"


def shipped(script: Path, already: set[str] = frozenset()) -> list[tuple[str, str]]:
    folder = script.resolve().parent
    return [
        (source.dest, source.path.relative_to(folder).as_posix())
        for source in sibling_sources(script, set(already))
    ]


def test_it_ships_the_modules_and_packages_the_script_imports_from_its_folder(tmp_path):
    script = tree(tmp_path, {
        "jobs.py": """
            import json
            import helpers
            from lib.fmt import money

            def refresh() -> None:
                import late  # imported only when the function runs
        """,
        "helpers.py": "",
        "late.py": "",
        "lib/__init__.py": "",
        "lib/fmt.py": "",
        "unused.py": "",
    })  # fmt: skip

    assert shipped(script) == [
        ("helpers.py", "helpers.py"), ("late.py", "late.py"), ("lib", "lib"),
    ]  # fmt: skip


def test_what_a_shipped_module_imports_from_the_folder_ships_too(tmp_path):
    script = tree(tmp_path, {
        "jobs.py": "import helpers\n",
        "helpers.py": "from units import EUR\n",
        "units.py": "import lib.deep\n",
        "lib/__init__.py": "",
        "lib/deep.py": "import config\n",  # a package's own imports count
        "config.py": "import helpers  # a cycle ends\n",
    })  # fmt: skip

    assert [dest for dest, _ in shipped(script)] == ["config.py", "helpers.py", "lib", "units.py"]


def test_a_package_wins_over_a_module_of_the_same_name_and_a_folder_of_python_files_counts(
    tmp_path,
):
    script = tree(tmp_path, {
        "jobs.py": "import rates, loose, notes\n",
        "rates/__init__.py": "",
        "rates.py": "",
        "loose/parse.py": "",  # a namespace package
        "notes/readme.txt": "",  # no Python: not what `import notes` finds
    })  # fmt: skip

    assert shipped(script) == [("loose", "loose"), ("rates", "rates")]


def test_it_leaves_what_is_not_beside_the_script_or_is_shipped_already(tmp_path):
    script = tree(tmp_path, {
        "jobs.py": """
            import os, requests, jobs, chalkcompute
            from . import sibling
            from helpers import x
            from config import y
        """,
        "sibling.py": "",  # a relative import: the script is not in a package in the run
        "helpers.py": "",  # shipped by add_local_python_source("helpers")
        "config.py": "",
        "chalkcompute/__init__.py": "",  # the run has its own SDK
    })  # fmt: skip

    assert shipped(script, already={"helpers"}) == [("config.py", "config.py")]


def test_a_file_that_does_not_parse_imports_nothing_and_a_virtualenv_is_not_read(tmp_path):
    script = tree(tmp_path, {
        "jobs.py": "import broken, tools\n",
        "broken.py": "import never_read\ndef (:\n",
        "never_read.py": "",
        "tools/__init__.py": "",
        "tools/.venv/lib/site.py": "import never_read\n",
    })  # fmt: skip

    assert shipped(script) == [("broken.py", "broken.py"), ("tools", "tools")]


def test_a_script_that_does_not_parse_ships_nothing(tmp_path):
    script = tree(tmp_path, {"jobs.py": "import helpers\nif\n", "helpers.py": ""})

    assert shipped(script) == []

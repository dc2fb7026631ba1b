"""The script's own modules: what it imports from its folder ships with it.

`python jobs.py` finds `import helpers` in jobs.py's folder first (it is sys.path[0]), and the
run puts the script and what ships with it in one working directory on sys.path. So a deploy
ships each module (`helpers.py`) or package (`helpers/`) of the script's folder that the
script imports, at any depth of the file, and what those import from the folder in turn, as
`Image.add_local_python_source` would. Imports are read from the source, not run: a name
built at run time (`importlib.import_module(name)`) is not seen; ship it with
`add_local_python_source`. Standard library only.
"""

import ast
from pathlib import Path

from chalkcompute.image import LocalSource, skipped

# Every run has its own chalkcompute: a copy beside the script (a checkout of the SDK) must
# not shadow it.
PROVIDED = frozenset({"chalkcompute"})


def sibling_sources(script: Path, shipped: set[str]) -> list[LocalSource]:
    """The modules and packages of `script`'s folder that it imports, directly or through
    one another, but for the top-level names in `shipped` (already shipped by the image)."""
    folder = script.resolve().parent
    found: dict[str, LocalSource] = {}
    unread = [script.resolve()]
    read: set[Path] = set()
    while unread:
        path = unread.pop()
        if path in read:
            continue
        read.add(path)
        for name in sorted(_imported_names(path)):
            if name in found or name in shipped or name in PROVIDED:
                continue
            source = _beside(folder, name)
            if source is None or source.path == script.resolve():
                continue
            found[name] = source
            if source.path.is_dir():
                unread.extend(_python_files(source.path))
            else:
                unread.append(source.path)
    return [found[name] for name in sorted(found)]


def _imported_names(path: Path) -> set[str]:
    """The top-level names of a file's absolute imports (`import a.b`, `from a import b`).
    A file that cannot be read or parsed here imports nothing we can know of."""
    try:
        tree = ast.parse(path.read_bytes(), filename=str(path))
    except (OSError, SyntaxError, ValueError):
        return set()
    names: set[str] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            names.update(alias.name.partition(".")[0] for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            names.add(node.module.partition(".")[0])
    return names


def _beside(folder: Path, name: str) -> LocalSource | None:
    """`name` as `import` finds it in the folder: a package (with an __init__.py), else a
    module file, else a folder of Python files (a namespace package, which an installed
    package of that name still wins over, in the run as here)."""
    package, module = folder / name, folder / f"{name}.py"
    if (package / "__init__.py").is_file():
        return LocalSource(package.resolve(), name)
    if module.is_file():
        return LocalSource(module.resolve(), f"{name}.py")
    if package.is_dir() and _python_files(package):
        return LocalSource(package.resolve(), name)
    return None


def _python_files(package: Path) -> list[Path]:
    """The .py files a package ships (not those of its caches or a virtualenv in it)."""
    return [
        path
        for path in sorted(package.rglob("*.py"))
        if not skipped(path.relative_to(package).as_posix())
    ]

"""The layout is the architecture: dependencies point one way, down this chain of layers

    chalk ← chalkcompute ← common ← access ← scheduling ← sdk ← runs ← health ← alerts
      ← console ← chalkweb

(README.md's Layout section quotes the same line). A layer imports only layers below it, and
ALLOWED narrows that further; every top-level package of the repository is a layer (tests/
excepted), so a new app cannot slip past. No module imports another that (through any chain)
imports it back, and nothing imports runs.tasks (services send tasks by name, through
runs.dispatch). Imports inside functions count: they hide a cycle, they do not break it."""

import ast
import functools
import re
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
# Bottom to top: the chain above, one layer a line.
LAYERS = [
    "chalk",  # the logger shim beside the SDK
    "chalkcompute",
    "common",
    "access",
    "scheduling",
    "sdk",
    "runs",
    "health",
    "alerts",
    "console",
    "chalkweb",
]
# Top-level packages that are not layers, and why.
NOT_LAYERS = {"tests": "the tests import every layer"}
# What each layer may import of ours: itself and layers below it, no more.
ALLOWED = {
    "chalk": {"chalk"},
    "chalkcompute": {"chalk", "chalkcompute"},
    "common": {"common"},
    "access": {"common", "access"},
    "scheduling": {"chalkcompute", "common", "access", "scheduling"},
    "sdk": {"chalkcompute", "chalk", "sdk"},
    "runs": {"chalk", "chalkcompute", "common", "access", "scheduling", "sdk", "runs"},
    "health": {"chalkcompute", "common", "access", "scheduling", "sdk", "runs", "health"},
    "alerts": {"chalkcompute", "common", "access", "scheduling", "sdk", "runs", "health", "alerts"},
    "console": {
        "chalkcompute", "common", "access", "scheduling", "sdk", "runs", "health", "alerts",
        "console",
    },
    "chalkweb": set(LAYERS),
}  # fmt: skip


def _modules() -> dict[str, Path]:
    modules = {}
    for layer in LAYERS:
        for path in (ROOT / layer).rglob("*.py"):
            if "migrations" in path.parts:
                continue
            name = ".".join(path.relative_to(ROOT).with_suffix("").parts)
            modules[name.removesuffix(".__init__")] = path
    return modules


def _imports(path: Path, modules: dict[str, Path]) -> set[str]:
    """Our modules that `path` imports, at its top or inside a function."""
    found = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            names = [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            names = [node.module] + [f"{node.module}.{alias.name}" for alias in node.names]
        else:
            continue
        for name in names:
            while name and name not in modules:
                name = name.rpartition(".")[0]
            if name:
                found.add(name)
    return found


@functools.cache
def _graph() -> dict[str, set[str]]:
    modules = _modules()
    graph = {}
    for name, path in modules.items():
        # A package's own __init__ is not a dependency of its modules.
        graph[name] = {
            other
            for other in _imports(path, modules)
            if other != name and not name.startswith(other + ".")
        }
    return graph


def _cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """Strongly connected components of more than one module (Tarjan)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    components = []

    def visit(module: str) -> None:
        index[module] = low[module] = len(index)
        stack.append(module)
        on_stack.add(module)
        for other in graph[module]:
            if other not in index:
                visit(other)
                low[module] = min(low[module], low[other])
            elif other in on_stack:
                low[module] = min(low[module], index[other])
        if low[module] == index[module]:
            component = []
            while True:
                top = stack.pop()
                on_stack.discard(top)
                component.append(top)
                if top == module:
                    break
            if len(component) > 1:
                components.append(sorted(component))

    for module in graph:
        if module not in index:
            visit(module)
    return components


def _chain(text: str) -> list[str]:
    """The first chain of layers `text` draws ("a ← b ← c", over lines or not), bottom first."""
    chain = re.search(r"\w+(?:\s*←\s*\w+)+", text)
    return [layer.strip() for layer in chain.group().split("←")] if chain else []


def test_every_package_is_a_layer():
    packages = {path.parent.name for path in ROOT.glob("*/__init__.py")} - NOT_LAYERS.keys()
    unplaced = sorted(packages - set(LAYERS))
    assert unplaced == [], "place each in LAYERS, ALLOWED and the chain (here and in README.md)"
    assert sorted(set(LAYERS) - packages) == []


def test_the_layers_are_the_chain_the_docstring_and_the_readme_draw():
    assert _chain(__doc__) == LAYERS
    assert ALLOWED.keys() == set(LAYERS)
    layout = (ROOT / "README.md").read_text().partition("\n## Layout\n")[2]
    assert _chain(layout) == LAYERS


def test_a_layer_may_import_only_layers_below_it():
    upwards = {
        layer: sorted(other for other in allowed if LAYERS.index(other) > LAYERS.index(layer))
        for layer, allowed in ALLOWED.items()
    }
    assert upwards == {layer: [] for layer in LAYERS}


def test_it_has_no_import_cycle():
    assert _cycles(_graph()) == []


def test_it_imports_only_downwards():
    wrong = [
        f"{module} imports {other}"
        for module, others in _graph().items()
        for other in others
        if other.split(".")[0] not in ALLOWED[module.split(".")[0]]
    ]
    assert wrong == []


def test_it_never_imports_the_tasks_module():
    importers = [module for module, others in _graph().items() if "runs.tasks" in others]
    assert importers == []


def test_it_finds_a_cycle_when_there_is_one():
    assert _cycles({"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}}) == [["a", "b", "c"]]

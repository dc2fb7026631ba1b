"""The layout is the architecture: dependencies point one way,

    chalkcompute ← common ← scheduling ← sdk ← runs ← health ← alerts ← console ← chalkweb

no module imports another that (through any chain) imports it back, and nothing imports
runs.tasks (services send tasks by name, through runs.dispatch). Imports inside functions
count: they hide a cycle, they do not break it."""

import ast
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
LAYERS = [
    "chalkcompute", "chalk", "common", "scheduling", "sdk", "runs", "health", "alerts",
    "console", "chalkweb",
]  # fmt: skip
# What each layer may import of ours (chalk is the logger shim beside the SDK).
ALLOWED = {
    "chalkcompute": {"chalkcompute", "chalk"},
    "chalk": {"chalk"},
    "common": {"common"},
    "scheduling": {"chalkcompute", "common", "scheduling"},
    "sdk": {"chalkcompute", "chalk", "sdk"},
    "runs": {"chalkcompute", "chalk", "common", "scheduling", "sdk", "runs"},
    "health": {"chalkcompute", "common", "scheduling", "sdk", "runs", "health"},
    "alerts": {"chalkcompute", "common", "scheduling", "sdk", "runs", "health", "alerts"},
    "console": {
        "chalkcompute", "common", "scheduling", "sdk", "runs", "health", "alerts", "console",
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

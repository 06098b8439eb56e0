"""The shape of the code, checked from its own imports (../shared/ARCHITECTURE.md).

Every import counts: module level, inside functions, and under ``TYPE_CHECKING`` (a type that
points up a layer is still a dependency that points up). The graph is module to module.

- no import cycle among the project's modules;
- no import points up a layer or across contexts (the table ``LAYERS`` below, bottom to top);
- no Python module outside tests/ and bench/ is longer than ``MAX_LINES``;
- the environment is read in one module of services/ only: ``services/settings.py``.
"""

from __future__ import annotations

import ast
from collections import deque
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from functools import cache
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
PACKAGES = ("events", "contracts", "projections", "services")
MAX_LINES = 600
NOT_SHIPPED = {"tests", "bench", ".venv", ".git", "node_modules"}
SETTINGS_MODULE = "services.settings"


# -- the layers ----------------------------------------------------------------------------------

CONTEXTS = ("catalogue", "duty_log", "rectifications", "campaigns", "warnings", "meetings", "logistics",
            "reviews", "notify", "accounts", "evidence")
ENTRY_POINTS = ("api", "web", "cli", "cli_common", "cli_tokens", "cli_sheets", "cli_accounts", "cli_evidence",
                "scheduler", "kafka", "demo", "platform")


@dataclass(frozen=True)
class Layer:
    name: str
    modules: tuple[str, ...]  # each names a module and everything below it
    may_import: frozenset[str]  # layer names, its own included where it may import itself


def _layers() -> tuple[Layer, ...]:
    # The process-wide pause of the garbage collector (projections/collector.py): one counted
    # pause that the runner and the brief renderer share, so it sits below both.
    below_services = {"events", "contracts", "projections", "collector"}
    # Principal (who acts) is a plain value that the kernel and security both speak in.
    leaves = {"settings", "documents", "principal"}
    infrastructure = {"store & security", *leaves, *below_services}
    kernel = {"kernel", *infrastructure}
    contexts = {f"context {c}" for c in CONTEXTS}
    table = [
        Layer("events", ("events",), frozenset({"events"})),
        Layer("contracts", ("contracts",), frozenset({"contracts", "events"})),
        Layer("collector", ("projections.collector",), frozenset({"collector"})),
        Layer("projections", ("projections",), frozenset(below_services)),
        # services/, bottom to top; settings and documents are leaves anything in services/ may import
        Layer("settings", ("services.settings",), frozenset({"settings"})),
        Layer("documents", ("services.documents",), frozenset({"documents", "settings", "collector"})),
        Layer("principal", ("services.kernel.principal",), frozenset({"principal"})),
        Layer("store & security", ("services.store", "services.security"), frozenset(infrastructure)),
        Layer("kernel", ("services.kernel",), frozenset(kernel)),
        *(Layer(f"context {c}", (f"services.{c}",), frozenset({f"context {c}", *kernel})) for c in CONTEXTS),
        # the composition of the contexts into one application class
        Layer("app", ("services.app",), frozenset({"app", *contexts, *kernel})),
        Layer("entry points", tuple(f"services.{e}" for e in ENTRY_POINTS),
              frozenset({"entry points", "app", *contexts, *kernel})),
    ]
    return tuple(table)


LAYERS = _layers()
# services/__init__.py is in no layer (every layer of services/ is a subpackage or module of it):
# it holds a docstring and must import nothing. The other roots are in their own layer.
PACKAGE_ROOTS = frozenset(PACKAGES)


def layer_of(module: str) -> Layer | None:
    """The layer whose most specific entry names the module (None when no entry does)."""
    best: tuple[int, Layer] | None = None
    for layer in LAYERS:
        for prefix in layer.modules:
            if (module == prefix or module.startswith(prefix + ".")) and (best is None or len(prefix) > best[0]):
                best = (len(prefix), layer)
    return best[1] if best else None


# -- the import graph ----------------------------------------------------------------------------

def _module_name(path: Path) -> str:
    parts = list(path.relative_to(ROOT).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


@cache
def project_modules() -> dict[str, Path]:
    return {_module_name(p): p for pkg in PACKAGES for p in sorted((ROOT / pkg).rglob("*.py"))}


def _from_base(module: str, node: ast.ImportFrom) -> str:
    """The module a ``from ... import`` names, a relative one resolved against its package."""
    if not node.level:
        return node.module or ""
    is_package = project_modules()[module].name == "__init__.py"
    package = (module if is_package else module.rpartition(".")[0]).split(".")
    base = package[: len(package) - (node.level - 1)]
    return ".".join([*base, node.module] if node.module else base)


def _imported_names(module: str, tree: ast.AST) -> Iterator[str]:
    """Every dotted name the module imports, anywhere in it. ``from a import b`` names ``a.b``
    when b is a module of the project, else ``a``."""
    modules = project_modules()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            yield from (alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            base = _from_base(module, node)
            for alias in node.names:
                yield f"{base}.{alias.name}" if f"{base}.{alias.name}" in modules else base


def _resolve(name: str) -> str | None:
    """The project module an imported name lands in: itself, or the nearest enclosing module."""
    if name.split(".")[0] not in PACKAGES:
        return None
    modules = project_modules()
    while name and name not in modules:
        name = name.rpartition(".")[0]
    return name or None


@cache
def import_graph() -> dict[str, frozenset[str]]:
    """Module → the project modules it imports (itself excluded)."""
    graph: dict[str, frozenset[str]] = {}
    for module, path in project_modules().items():
        tree = ast.parse(path.read_text(encoding="utf-8"), filename=str(path))
        targets = {_resolve(name) for name in _imported_names(module, tree)}
        graph[module] = frozenset(t for t in targets if t is not None and t != module)
    return graph


# -- cycles --------------------------------------------------------------------------------------

def strongly_connected(graph: dict[str, frozenset[str]]) -> list[list[str]]:
    """Tarjan's algorithm, iteratively; the components with more than one module."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    on_stack: set[str] = set()
    stack: list[str] = []
    found: list[list[str]] = []
    counter = 0
    for root in sorted(graph):
        if root in index:
            continue
        work: list[tuple[str, Iterator[str]]] = [(root, iter(sorted(graph[root])))]
        index[root] = low[root] = counter
        counter += 1
        stack.append(root)
        on_stack.add(root)
        while work:
            node, children = work[-1]
            child = next(children, None)
            if child is not None:
                if child not in index:
                    index[child] = low[child] = counter
                    counter += 1
                    stack.append(child)
                    on_stack.add(child)
                    work.append((child, iter(sorted(graph.get(child, ())))))
                elif child in on_stack:
                    low[node] = min(low[node], index[child])
                continue
            work.pop()
            if work:
                low[work[-1][0]] = min(low[work[-1][0]], low[node])
            if low[node] == index[node]:
                component = []
                while True:
                    member = stack.pop()
                    on_stack.discard(member)
                    component.append(member)
                    if member == node:
                        break
                if len(component) > 1:
                    found.append(sorted(component))
    return found


def shortest_cycle(graph: dict[str, frozenset[str]], component: Iterable[str]) -> list[str]:
    """A shortest cycle through the component's first module, staying inside the component."""
    members = set(component)
    start = min(members)
    came_from: dict[str, str] = {}
    queue = deque([start])
    while queue:
        node = queue.popleft()
        for nxt in sorted(graph[node] & members):
            if nxt == start:
                path = [node]
                while path[-1] != start:
                    path.append(came_from[path[-1]])
                return [*reversed(path), start]
            if nxt not in came_from:
                came_from[nxt] = node
                queue.append(nxt)
    raise AssertionError(f"no cycle through {start}")  # a component always has one


# -- the tests -----------------------------------------------------------------------------------

def _report(title: str, lines: list[str]) -> str:
    return f"{title} ({len(lines)}):\n" + "\n".join(f"  - {line}" for line in lines)


def test_the_graph_sees_the_imports_it_should() -> None:
    """Guards the checker itself: function-level and TYPE_CHECKING imports are edges."""
    graph = import_graph()
    assert "events.base" in graph["events.rectifications"]
    assert "events.escalation" in graph["events.meetings"]
    assert "contracts.catalogue" in graph["contracts.escalation"]
    assert not graph["events.base"] & {m for m in graph if not m.startswith("events")}
    tree = ast.parse("def f():\n    from . import base\n    import events.errors\n"
                     "if TYPE_CHECKING:\n    from events.warnings import EarlyWarning\n")
    names = set(_imported_names("events.rectifications", tree))
    assert names == {"events.base", "events.errors", "events.warnings"}
    assert shortest_cycle({"a": frozenset({"b"}), "b": frozenset({"c", "a"}), "c": frozenset({"a"})},
                          ["a", "b", "c"]) == ["a", "b", "a"]
    assert strongly_connected({"a": frozenset({"b"}), "b": frozenset({"a"}), "c": frozenset({"a"})}) == [["a", "b"]]


def test_the_layer_table_says_what_the_architecture_says() -> None:
    def may(source: str, target: str) -> bool:
        src, dst = layer_of(source), layer_of(target)
        assert src is not None and dst is not None, (source, target)
        return dst.name in src.may_import

    layer = layer_of("services.rectifications.jobs")
    assert layer is not None and layer.name == "context rectifications"
    assert layer_of("services.brief") is None and layer_of("services") is None
    assert may("services.api.routes.duty_log", "services.platform")
    assert may("services.app", "services.meetings.use_cases")
    assert may("services.meetings.use_cases", "services.store.database")  # skipping the kernel is fine
    assert may("services.kernel.use_cases", "services.documents.labels")
    assert not may("services.meetings.use_cases", "services.app")
    assert not may("services.meetings.use_cases", "services.campaigns.use_cases")
    assert not may("services.kernel.jobs", "services.rectifications.jobs")
    assert not may("services.kernel.jobs", "services.scheduler")
    assert not may("services.documents.labels", "events.base")
    assert not may("projections.base", "services.settings")
    assert not may("events.base", "contracts.catalogue")


def test_no_import_cycle() -> None:
    graph = import_graph()
    cycles = []
    for component in strongly_connected(graph):
        inside = set(component)
        edges = [f"{a} → {b}" for a in component for b in sorted(graph[a] & inside)]
        cycles.append(f"{' → '.join(shortest_cycle(graph, component))}\n"
                      f"    one loop of {len(component)} modules; its imports: {'; '.join(edges)}")
    assert not cycles, _report("import cycles", cycles)


def test_no_import_points_up_a_layer() -> None:
    violations = []
    unplaced = sorted(m for m in project_modules() if m not in PACKAGE_ROOTS and layer_of(m) is None)
    for module, targets in sorted(import_graph().items()):
        source = layer_of(module)
        if source is None:
            if module in PACKAGE_ROOTS and targets:
                violations.append(f"{module} (a package root) imports {', '.join(sorted(targets))}")
            continue
        for target in sorted(targets):
            layer = layer_of(target)
            if layer is not None and layer.name not in source.may_import:
                violations.append(f"{module} imports {target}: [{source.name}] may not import [{layer.name}]")
    messages = []
    if unplaced:
        messages.append(_report("modules in no layer of the table (move them into one, or add the layer)",
                                unplaced))
    if violations:
        messages.append(_report("imports that point up a layer or across contexts", violations))
    assert not messages, "\n".join(messages)


def _shipped_python() -> Iterator[Path]:
    for path in sorted(ROOT.rglob("*.py")):
        if not NOT_SHIPPED & set(path.relative_to(ROOT).parts[:-1]):
            yield path


def test_no_module_is_longer_than_the_limit() -> None:
    too_long = [
        f"{path.relative_to(ROOT)}: {lines} lines"
        for path in _shipped_python()
        if (lines := len(path.read_text(encoding="utf-8").splitlines())) > MAX_LINES
    ]
    assert not too_long, _report(f"modules longer than {MAX_LINES} lines", too_long)


def _reads_environment(tree: ast.AST) -> list[str]:
    """What in the tree reads the process environment: os.environ, os.getenv, BaseSettings."""
    found = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Attribute) and node.attr in {"environ", "getenv"} \
                and isinstance(node.value, ast.Name) and node.value.id == "os":
            found.append(f"os.{node.attr} (line {node.lineno})")
        elif isinstance(node, ast.ImportFrom) and node.module == "os":
            found += [f"from os import {a.name} (line {node.lineno})" for a in node.names
                      if a.name in {"environ", "getenv"}]
        elif isinstance(node, ast.Name) and node.id == "BaseSettings":
            found.append(f"BaseSettings (line {node.lineno})")
        elif isinstance(node, ast.alias) and node.name == "BaseSettings":
            found.append(f"imports BaseSettings (line {node.lineno})")
    return found


def test_only_the_settings_module_reads_the_environment() -> None:
    readers = {}
    for module, path in project_modules().items():
        if module.split(".")[0] == "services":
            uses = _reads_environment(ast.parse(path.read_text(encoding="utf-8")))
            if uses:
                readers[module] = uses
    problems = [f"{module}: {', '.join(uses)}" for module, uses in sorted(readers.items())
                if module != SETTINGS_MODULE]
    if SETTINGS_MODULE not in readers:
        problems.append(f"{SETTINGS_MODULE} reads no environment, yet it is meant to be the one that does")
    assert not problems, _report("modules of services/ that read the environment besides "
                                 f"{SETTINGS_MODULE}", problems)


def test_the_contexts_composed_into_the_app_define_no_member_twice() -> None:
    """LianxiApp composes one use-case class per context over the kernel; a name two contexts
    both define would silently resolve to whichever comes first in the MRO."""
    from services.app import LianxiApp
    from services.kernel.use_cases import UseCases

    contexts = [c for c in LianxiApp.__mro__[1:] if issubclass(c, UseCases) and c.__module__.startswith("services.")
                and c.__module__.split(".")[1] in CONTEXTS]
    # notify and accounts have no use-case class on the event store (accounts live in a table)
    assert len(contexts) >= len(CONTEXTS) - 2, [c.__name__ for c in contexts]
    owners: dict[str, list[str]] = {}
    for cls in contexts:
        for name in vars(cls):
            if not name.startswith("__") and name != "name":  # eventsourcing names every subclass
                owners.setdefault(name, []).append(cls.__name__)
    clashes = {name: who for name, who in owners.items() if len(who) > 1}
    assert not clashes, f"members defined by more than one context: {clashes}"

"""Dependencies point down: the Python client imports only the package's bottom layer."""

import ast
from pathlib import Path

import websuckets

PACKAGE = Path(websuckets.__file__).resolve().parent
# what server and client share: wire names and value types, the error base class, quiet logging
BOTTOM = {"websuckets.wire", "websuckets.exc", "websuckets._logging"}


def imported_modules(path: Path, package: str) -> set[str]:
    """The websuckets modules ``path`` (a module of ``package``) imports, relative imports resolved."""
    found: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.Import):
            found |= {alias.name for alias in node.names}
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = package.split(".")[: len(package.split(".")) - node.level + 1]
                module = ".".join([*base, node.module] if node.module else base)
            else:
                module = node.module or ""
            submodules = {
                f"{module}.{alias.name}"
                for alias in node.names
                if (PACKAGE.parent / module.replace(".", "/") / f"{alias.name}.py").exists()
            }
            found |= submodules if len(submodules) == len(node.names) else {module, *submodules}
    return {name for name in found if name == "websuckets" or name.startswith("websuckets.")}


def test_the_client_imports_no_server_module() -> None:
    """websuckets.client imports nothing of the package but itself and the bottom modules (wire, exc, logging)."""
    imported = {
        name
        for path in sorted((PACKAGE / "client").glob("*.py"))
        for name in imported_modules(path, "websuckets.client")
    }
    outside = {name for name in imported if name != "websuckets.client" and not name.startswith("websuckets.client.")}
    assert outside <= BOTTOM, sorted(outside - BOTTOM)
    assert "websuckets.wire" in outside  # the check sees the imports it is about


def test_the_bottom_modules_import_nothing_of_the_package() -> None:
    """The wire names and the logging helper stand on the standard library alone."""
    for name in ("wire", "_logging"):
        assert imported_modules(PACKAGE / f"{name}.py", "websuckets") == set()


def test_relative_imports_resolve_against_the_package() -> None:
    """``from ..wire import X`` in a client module is websuckets.wire; ``from .events import X`` is a client module."""
    assert imported_modules(PACKAGE / "client" / "events.py", "websuckets.client") == {"websuckets.wire"}
    assert "websuckets.client.events" in imported_modules(PACKAGE / "client" / "connection.py", "websuckets.client")


def module_name(path: Path) -> str:
    parts = path.relative_to(PACKAGE.parent).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def import_graph() -> dict[str, set[str]]:
    """Every module of the package -> the package's modules it imports, wherever the import sits.

    Imports under ``TYPE_CHECKING`` and inside functions count: they tie modules together as
    much as the others do, only later.
    """
    modules = {module_name(path): path for path in PACKAGE.rglob("*.py")}
    graph: dict[str, set[str]] = {}
    for name, path in modules.items():
        package = name if path.name == "__init__.py" else name.rpartition(".")[0]
        graph[name] = {found for found in imported_modules(path, package) if found in modules and found != name}
    return graph


def cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """The strongly connected components of more than one module (Tarjan's algorithm)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    found: list[list[str]] = []

    def visit(node: str) -> None:
        index[node] = low[node] = len(index)
        stack.append(node)
        for target in sorted(graph[node]):
            if target not in index:
                visit(target)
                low[node] = min(low[node], low[target])
            elif target in stack:
                low[node] = min(low[node], index[target])
        if low[node] == index[node]:
            component = []
            while (member := stack.pop()) != node:
                component.append(member)
            component.append(node)
            if len(component) > 1:
                found.append(sorted(component))

    for node in sorted(graph):
        if node not in index:
            visit(node)
    return found


def test_the_package_has_no_import_cycle() -> None:
    """No two modules import each other, even behind ``TYPE_CHECKING`` or inside a function."""
    graph = import_graph()
    assert "websuckets.backends.base" in graph["websuckets.store"]  # the graph holds the imports it is about
    assert cycles(graph) == []


def test_a_cycle_is_found() -> None:
    assert cycles({"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}}) == [["a", "b", "c"]]


def test_the_redis_backends_logic_runs_without_redis() -> None:
    """RedisBackend's codec, key names, mirror, history sync and requests import neither redis-py nor the link."""
    for name in ("codec", "keys", "mirror", "history_sync", "requests"):
        path = PACKAGE / "backends" / "redis" / f"{name}.py"
        nodes = list(ast.walk(ast.parse(path.read_text(), str(path))))
        absolute = {alias.name for node in nodes if isinstance(node, ast.Import) for alias in node.names}
        absolute |= {node.module or "" for node in nodes if isinstance(node, ast.ImportFrom) and not node.level}
        assert not {module for module in absolute if module.split(".")[0] == "redis"}, name
        assert "websuckets.backends.redis.link" not in imported_modules(path, "websuckets.backends.redis"), name


# The layers, bottom up, as docs/topics/architecture.md draws them. A module imports only from its
# own layer and the ones below; the client stands beside the server on the foundation alone.
LAYERS: dict[str, set[str]] = {
    "foundation": {
        "wire", "exc", "_logging", "_version", "identity", "http", "security", "events", "delivery", "origin",
        "listening", "msgpack_codec",
    },
    "client": {"client", "client.*"},
    "state": {
        "user", "history", "envelope", "connection", "keepalive", "handshake", "static", "presence", "remote",
        "backends", "backends.*", "store", "session", "negotiation",
    },
    "commands": {
        "context", "handlers", "di", "routing", "answer", "middleware", "middleware.*", "resume", "handshake_auth",
        "dispatcher", "streams",
    },
    "instruments": {"instrument", "asyncapi", "health", "metrics", "prometheus", "tracing", "typescript"},
    "app": {"", "app", "startup", "serving", "testing", "testing_connection", "testing_streams", "memory_server"},
    "tools": {"loading", "worker", "supervisor", "cli", "__main__"},
}  # fmt: skip
UPWARD_ALLOWED: set[tuple[str, str]] = set()
"""Imports from a lower layer to a higher one, each justified in the architecture page (at most 3)."""


def layer_of(module: str) -> int:
    """The index in `LAYERS` of ``module`` (a websuckets module); fails for a module no layer names."""
    name = module.removeprefix("websuckets").removeprefix(".")
    for index, members in enumerate(LAYERS.values()):
        if name in members or any(m.endswith(".*") and name.startswith(m[:-1]) for m in members):
            return index
    raise AssertionError(f"{module} is in no layer: add it to LAYERS and to docs/topics/architecture.md")


def test_imports_point_down_the_layers() -> None:
    """Every module has a layer; no import runs up one, but the few allowed (and documented)."""
    graph = import_graph()
    upward = {(a, b) for a, targets in graph.items() for b in targets if layer_of(b) > layer_of(a)}
    assert upward == UPWARD_ALLOWED
    assert len(UPWARD_ALLOWED) <= 3


def test_the_architecture_page_names_every_module() -> None:
    """docs/topics/architecture.md lists each module of the package by its path."""
    page = (PACKAGE.parent / "docs" / "topics" / "architecture.md").read_text()
    for path in sorted(PACKAGE.rglob("*.py")):
        relative = path.relative_to(PACKAGE).as_posix()
        assert f"| `{relative}` |" in page, relative

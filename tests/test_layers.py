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
            found.add(module)
            found |= {
                f"{module}.{alias.name}"
                for alias in node.names
                if (PACKAGE.parent / module.replace(".", "/") / f"{alias.name}.py").exists()
            }
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

"""The documentation shows the programs the suite runs, and the Reference page the public API only."""

import importlib
import re
from pathlib import Path
from types import ModuleType

import websuckets

ROOT = Path(__file__).resolve().parent.parent
INCLUDE = re.compile(r'^--8<-- "([^"]+)"$')


def test_every_snippet_include_is_well_formed_and_points_at_a_file() -> None:
    """Lines that include a file use the exact `--8<-- "path"` form, and the path exists."""
    includes, malformed = [], []
    for page in sorted((ROOT / "docs").rglob("*.md")):
        for number, line in enumerate(page.read_text().splitlines(), 1):
            if line.startswith("--8"):
                match = INCLUDE.match(line)
                if match is None:
                    malformed.append(f"{page.relative_to(ROOT)}:{number}: {line}")
                else:
                    includes.append(match.group(1))
    assert not malformed
    assert [path for path in includes if not (ROOT / path).is_file()] == []
    assert "examples/quickstart.py" in includes
    assert {
        f"examples/docs/{name}.py" for name in ("app", "say_ok", "user_create", "send_message", "protected")
    } <= set(includes)
    assert {"examples/rooms.py", "examples/scaling.py", "examples/push.py"} <= set(includes)


DIRECTIVE = re.compile(r"^::: (\S+)$")
MEMBERS = re.compile(r"^\s+members: \[(.*)\]$")
# the parts of the package that are not API: whatever they hold, users do not import it
INTERNAL_MODULES = (
    "websuckets.answer",
    "websuckets.cli",
    "websuckets.dispatcher",
    "websuckets.envelope",
    "websuckets.handlers",
    "websuckets.store",
    "websuckets.presence",
)
# names that modules export for the package's own use: the app's plumbing, not the users'
INTERNAL_NAMES = {
    "websuckets.middleware.build_chain",
    "websuckets.middleware.endpoint",
    "websuckets.middleware.parse_payload",
    "websuckets.events.dump_event",
    "websuckets.events.with_id",
    "websuckets.static.CLIENT_JS",
    "websuckets.delivery.send_now",
    "websuckets.backends.base.UserId",
}


def reference_entries() -> set[str]:
    """The dotted names the Reference page documents: each ``::: target``, or the members listed of a module."""
    entries: set[str] = set()
    target = None
    for line in (ROOT / "docs" / "reference.md").read_text().splitlines():
        if directive := DIRECTIVE.match(line):
            target = directive.group(1)
            entries.add(target)
        elif target is not None and (members := MEMBERS.match(line)) and isinstance(resolve(target), ModuleType):
            entries.discard(target)  # a module shows the members listed; a class shows itself, whatever its members
            entries |= {f"{target}.{name.strip()}" for name in members.group(1).split(",")}
    return entries


def shown_names(entry: str) -> set[str]:
    """A module documented whole shows every name of its ``__all__``; anything else shows itself."""
    module = resolve(entry)
    if not isinstance(module, ModuleType):
        return {entry}
    return {entry} | {f"{entry}.{name}" for name in module.__all__}


def test_the_reference_shows_the_public_api_and_nothing_internal() -> None:
    """The Reference page documents every name the package exports, and nothing of its internals."""
    shown = {name for entry in reference_entries() for name in shown_names(entry)}
    internal = sorted(name for name in shown if is_internal(name))
    assert internal == []
    documented = [resolve(name) for name in shown]
    exported = [name for name in websuckets.__all__ if name != "__version__"]
    assert [name for name in exported if not any(getattr(websuckets, name) is obj for obj in documented)] == []


def is_internal(name: str) -> bool:
    """Whether ``name`` is an internal name, module or inside one (``websuckets.client`` is not ``.cli``)."""
    return name in INTERNAL_NAMES or any(name == module or name.startswith(module + ".") for module in INTERNAL_MODULES)


def resolve(dotted: str) -> object:
    """The module or the object named ``dotted``."""
    module, _, name = dotted.rpartition(".")
    parent = importlib.import_module(module) if module else None
    if parent is not None and hasattr(parent, name) and not isinstance(getattr(parent, name), ModuleType):
        return getattr(parent, name)
    return importlib.import_module(dotted)


def test_the_systemd_example_sets_the_port_in_one_place() -> None:
    """The deployment guide's unit gives the port once, where `websuckets run` reads it: its --port option."""
    guide = (ROOT / "docs" / "guide" / "deployment.md").read_text()
    unit = re.search(r"```ini\n(.*?)```", guide, re.DOTALL)
    assert unit is not None
    assert re.findall(r"PORT|--port \d+", unit.group(1)) == ["--port 9000"]

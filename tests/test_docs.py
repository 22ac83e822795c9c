"""The documentation shows the programs the suite runs, snippets that run as written, and the public API only."""

import ast
import builtins
import importlib
import re
import symtable
import textwrap
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from types import ModuleType

import pytest

import websuckets

ROOT = Path(__file__).resolve().parent.parent
INCLUDE = re.compile(r'^--8<-- "([^"]+)"$')


def test_every_snippet_include_is_well_formed_and_points_at_a_file() -> None:
    """Lines that include a file use the exact `--8<-- "path"` form, and the path exists."""
    includes: dict[str, list[str]] = {}
    malformed = []
    for page in sorted((ROOT / "docs").rglob("*.md")):
        for number, line in enumerate(page.read_text().splitlines(), 1):
            if line.startswith("--8"):
                match = INCLUDE.match(line)
                if match is None:
                    malformed.append(f"{page.relative_to(ROOT)}:{number}: {line}")
                else:
                    includes.setdefault(page.relative_to(ROOT / "docs").as_posix(), []).append(match.group(1))
    assert not malformed
    every = {path for paths in includes.values() for path in paths}
    assert [path for path in sorted(every) if not (ROOT / path).is_file()] == []
    assert "examples/quickstart.py" in includes["index.md"]
    steps = ("app", "say_ok", "user_create", "send_message", "protected")
    # the tutorial runs on today's API; the original documentation's programs have a page of their own
    assert includes["tutorial.md"] == [f"examples/tutorial/{name}.py" for name in steps]
    assert includes["topics/original-docs.md"] == [f"examples/docs/{name}.py" for name in steps]
    assert {"examples/rooms.py", "examples/scaling.py", "examples/push.py"} <= every


DIRECTIVE = re.compile(r"^::: (\S+)$")
MEMBERS = re.compile(r"^\s+members: \[(.*)\]$")
# the parts of the package that are not API: whatever they hold, users do not import it
INTERNAL_MODULES = (
    "websuckets.answer",
    "websuckets.cli",
    "websuckets.dispatcher",
    "websuckets.envelope",
    "websuckets.handlers",
    "websuckets.http",
    "websuckets.memory_server",
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


# Every ```python block of the documentation (docs/**/*.md and README.md) is a program that runs as
# written: it compiles, and each name it uses is defined in the block, imported by it, or a builtin.
# A block that is deliberately a piece of a larger program (it uses the reader's `app`, continues the
# block above, or is a Jinja template) is marked as a fragment by an HTML comment on the line right
# before its fence, invisible on the rendered page:
#
#     <!-- fragment: uses your app -->
#     ```python
#
# (`<!-- fragment -->` alone works too.) A fragment is not checked. `--8<-- "file"` lines are replaced by
# the file they include, so an included example is checked as the page shows it. A block written on the
# page (not included: included files are run by tests of their own) whose top level only imports, defines
# and assigns, so that running it starts nothing (no `asyncio.run(...)` call, no `await`), is also run.
FENCE = re.compile(r"^(\s*)```(\S*)")
FRAGMENT = re.compile(r"^\s*<!-- fragment(: [^>]*)? -->$")
# names a module has without defining them (`__file__` is set for a program run as `python main.py`)
MODULE_NAMES = set(dir(builtins)) | {"__file__"}


@dataclass(frozen=True)
class CodeBlock:
    where: str  # page:line of the opening fence
    source: str
    fragment: bool
    included: bool  # the block is `--8<--` lines only, showing files


def python_blocks(page: Path) -> Iterator[CodeBlock]:
    """The page's ```python blocks, dedented (admonitions indent them), with their includes expanded."""
    lines = page.read_text().splitlines()
    number = 0
    while number < len(lines):
        fence = FENCE.match(lines[number])
        if fence is None:
            number += 1
            continue
        end = next(i for i in range(number + 1, len(lines)) if lines[i].strip() == "```")
        if fence.group(2) == "python":
            body = textwrap.dedent("\n".join(lines[number + 1 : end]))
            source = "\n".join(
                (ROOT / include.group(1)).read_text() if (include := INCLUDE.match(line)) else line
                for line in body.splitlines()
            )
            fragment = number > 0 and FRAGMENT.match(lines[number - 1]) is not None
            included = all(INCLUDE.match(line) for line in body.splitlines())
            yield CodeBlock(f"{page.relative_to(ROOT)}:{number + 1}", source, fragment, included)
        number = end + 1


def undefined_names(source: str) -> set[str]:
    """The global names ``source`` reads without defining or importing them (and that no builtin has).

    Top-level ``await`` (a snippet showing a few lines of a coroutine) is allowed: such a block is
    analysed as the body of an ``async def``, whose locals are the block's own definitions.
    """
    try:
        table = symtable.symtable(source, "<snippet>", "exec")
    except SyntaxError:
        compile(source, "<snippet>", "exec", flags=ast.PyCF_ALLOW_TOP_LEVEL_AWAIT)  # still a SyntaxError if not that
        table = symtable.symtable("async def _snippet():\n" + textwrap.indent(source, "    "), "<snippet>", "exec")
        (table,) = table.get_children()
    defined = {symbol.get_name() for symbol in table.get_symbols() if symbol.is_assigned() or symbol.is_imported()}
    undefined: set[str] = set()
    scopes = [(table, True)]
    while scopes:
        scope, outermost = scopes.pop()
        for symbol in scope.get_symbols():
            name = symbol.get_name()
            unbound = not (symbol.is_assigned() or symbol.is_imported()) if outermost else name not in defined
            if symbol.is_referenced() and (outermost or symbol.is_global()) and unbound and name not in MODULE_NAMES:
                undefined.add(name)
        scopes += [(child, False) for child in scope.get_children()]
    return undefined


def only_defines(source: str) -> bool:
    """Whether running ``source`` only imports, defines and assigns: no top-level call statement, no await."""
    try:
        tree = ast.parse(source)
        compile(tree, "<snippet>", "exec")
    except SyntaxError:
        return False  # top-level await
    docstring = (ast.Expr, ast.Constant)
    return not any(isinstance(node, docstring[0]) and not isinstance(node.value, docstring[1]) for node in tree.body)


DOC_PAGES = [*sorted((ROOT / "docs").rglob("*.md")), ROOT / "README.md"]
SNIPPETS = [block for page in DOC_PAGES for block in python_blocks(page)]


def test_the_python_snippet_checker_tells_a_program_from_a_piece() -> None:
    """Definitions, imports, builtins, nested scopes and top-level await count; a name from elsewhere does not."""
    complete = "import asyncio\n\nasync def main(n: int) -> None:\n    print([asyncio.sleep(i) for i in range(n)])\n"
    assert undefined_names(complete) == set()
    assert undefined_names("class A:\n    x = 1\n    y = [x]\n\nA()\n") == set()
    assert undefined_names("from x import app\nawait app.start()\n") == set()
    piece = "async def test() -> None:\n    async with TestClient(create_app()) as c:\n        ...\n"
    assert undefined_names(piece) == {"TestClient", "create_app"}
    assert undefined_names("await client.close()\n") == {"client"}
    assert only_defines('"""A program."""\nimport asyncio\n\nx = f()\nif __name__ == "__main__":\n    asyncio.run(x)\n')
    assert not only_defines("import asyncio\n\nasyncio.run(main())\n")
    assert not only_defines("await client.start()\n")


@pytest.mark.parametrize("block", [block for block in SNIPPETS if not block.fragment], ids=lambda block: block.where)
def test_every_python_snippet_runs_as_written_or_is_marked_a_fragment(block: CodeBlock) -> None:
    """An unmarked ```python block compiles and defines or imports every name it uses; one that only defines runs."""
    code = compile(block.source, block.where, "exec", flags=ast.PyCF_ALLOW_TOP_LEVEL_AWAIT)
    assert undefined_names(block.source) == set(), "define or import them, or mark the block <!-- fragment: ... -->"
    if not block.included and only_defines(block.source):
        exec(code, {"__name__": "snippet"})  # the page's own code; __name__ is not "__main__", so nothing serves


def test_fragments_are_marked_only_on_python_blocks() -> None:
    """A fragment marker stands right before a ```python fence, never stray (where it would mark nothing)."""
    stray = []
    for page in DOC_PAGES:
        lines = page.read_text().splitlines()
        for number, line in enumerate(lines):
            following = lines[number + 1] if number + 1 < len(lines) else ""
            if FRAGMENT.match(line) and following.strip() != "```python":
                stray.append(f"{page.relative_to(ROOT)}:{number + 1}")
    assert stray == []
    assert len(SNIPPETS) > len([block for block in SNIPPETS if block.fragment]) > 0
    run = [block.where for block in SNIPPETS if not (block.fragment or block.included) and only_defines(block.source)]
    assert "docs/guide/sessions.md:100" in run

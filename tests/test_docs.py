"""The documentation shows the programs the suite runs: every snippet include is well formed."""

import re
from pathlib import Path

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
    assert {"examples/rooms.py", "examples/scaling.py"} <= set(includes)

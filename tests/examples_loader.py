"""Load the documentation's example programs as modules, each fresh."""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path
from types import ModuleType

EXAMPLES = Path(__file__).resolve().parent.parent / "examples"


def load_example(relative: str) -> ModuleType:
    """Import ``examples/<relative>`` as a new module (its globals start afresh every time)."""
    path = EXAMPLES / relative
    name = f"example_{path.stem}_{id(path)}"
    spec = importlib.util.spec_from_file_location(name, path)
    assert spec is not None
    assert spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module
    spec.loader.exec_module(module)
    return module

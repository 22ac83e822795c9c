"""What users import: every module's __all__, and every import the documentation shows."""

import importlib
import importlib.resources
import pkgutil
import subprocess
import sys

import pytest

import websuckets

MODULES = sorted(
    name for _, name, _ in pkgutil.walk_packages(websuckets.__path__, "websuckets.") if not name.endswith("__main__")
)


@pytest.mark.parametrize("name", MODULES)
def test_every_module_declares_all_and_it_resolves(name: str) -> None:
    """Each public module lists its API in __all__, and every name there exists."""
    module = importlib.import_module(name)
    assert hasattr(module, "__all__"), f"{name} has no __all__"
    missing = [item for item in module.__all__ if not hasattr(module, item)]
    assert not missing


def test_root_exports() -> None:
    """The package root re-exports what users import."""
    assert set(websuckets.__all__) == {
        "CallNext",
        "ClientEvent",
        "Command",
        "CommandGroup",
        "Context",
        "History",
        "InternalError",
        "Middleware",
        "Position",
        "Session",
        "Token",
        "User",
        "WebSuckets",
        "__version__",
    }


def test_documented_imports_work_and_warn_nothing() -> None:
    """The original documentation's imports work; importing websuckets raises no warning of ours."""
    code = """
import warnings
warnings.simplefilter("error")
from websuckets import WebSuckets, CommandGroup, ClientEvent
from websuckets.exc import InternalError
from websuckets.session import Session
from websuckets.security import Token
from websuckets.di import WebSucketsProvider
from websuckets.testing import TestClient
from websuckets.backends.memory import MemoryBackend
from websuckets import Context, CallNext
"""
    subprocess.run([sys.executable, "-c", code], check=True)


def test_py_typed_ships() -> None:
    """The package is marked as typed."""
    assert importlib.resources.files("websuckets").joinpath("py.typed").is_file()

"""What users import: every module's __all__, and every import the documentation shows."""

import importlib
import importlib.resources
import pkgutil
import re
import subprocess
import sys
from pathlib import Path

import pytest

import websuckets

MODULES = sorted(
    name for _, name, _ in pkgutil.walk_packages(websuckets.__path__, "websuckets.") if not name.endswith("__main__")
)


INTERNAL_PACKAGES = ("websuckets.backends.redis.", "websuckets.client.", "websuckets.middleware.")
"""Packages whose modules are all internal: the package itself exports what users import."""
INTERNAL = {
    f"websuckets.{name}"
    for name in [
        "_logging",
        "_version",
        "answer",
        "app",
        "context",
        "dispatcher",
        "envelope",
        "events",
        "handlers",
        "handshake",
        "history",
        "http",
        "identity",
        "keepalive",
        "listening",
        "loading",
        "memory_server",
        "origin",
        "presence",
        "prometheus",
        "routing",
        "serving",
        "startup",
        "store",
        "streams",
        "supervisor",
        "testing_connection",
        "testing_streams",
        "user",
        "wire",
        "worker",
    ]
}
"""Modules whose names may change in any release (docs/reference.md says so); they declare no ``__all__``."""


def is_internal(name: str) -> bool:
    return name in INTERNAL or name.startswith(INTERNAL_PACKAGES)


@pytest.mark.parametrize("name", MODULES)
def test_public_modules_declare_all_and_internal_ones_do_not(name: str) -> None:
    """A public module lists its API in __all__, and every name there exists; an internal module has
    no public-looking surface."""
    module = importlib.import_module(name)
    if is_internal(name):
        assert not hasattr(module, "__all__"), f"{name} is internal but declares __all__"
        return
    assert hasattr(module, "__all__"), f"{name} has no __all__"
    missing = [item for item in module.__all__ if not hasattr(module, item)]
    assert not missing


def test_the_reference_names_the_internal_modules() -> None:
    """docs/reference.md tells users which modules are internal: every one of them, and no other."""
    reference = (Path(websuckets.__file__).parent.parent / "docs" / "reference.md").read_text()
    named = set(re.findall(r"`(websuckets\.[a-z_.]*[a-z_])`", reference.partition("\n## ")[0]))
    packages = {prefix.removesuffix(".") for prefix in INTERNAL_PACKAGES}
    assert set(MODULES) >= INTERNAL
    assert named == INTERNAL | packages | {"websuckets.cli"}  # and the internals of the command line


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

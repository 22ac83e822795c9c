"""Finding the app that ``websuckets run MODULE:ATTRIBUTE`` names, the way uvicorn does.

Shared by the command line, which turns its errors into usage errors, and by worker
processes, which import the app again by the same spec; neither needs the other.
"""

from __future__ import annotations

import importlib
import inspect
import sys
from pathlib import Path
from typing import Any

from .app import WebSuckets
from .exc import WebSucketsError


class AppNotFound(WebSucketsError):
    """The spec names no `WebSuckets` app: the message says what is missing or what was found."""


class InvalidAppSpec(AppNotFound):
    """The spec is not of the form ``MODULE:ATTRIBUTE``."""


def find_app(spec: str) -> WebSuckets:
    """The `WebSuckets` named by ``"module:attribute"``, or made by a function so named that takes no
    arguments. The current directory comes first on ``sys.path``."""
    module_name, _, attribute = spec.partition(":")
    if not module_name or not attribute:
        raise InvalidAppSpec(f"expected MODULE:ATTRIBUTE, like 'chat.app:app', got {spec!r}")
    if "" not in sys.path and str(Path.cwd()) not in sys.path:
        sys.path.insert(0, "")
    try:
        module = importlib.import_module(module_name)
    except ModuleNotFoundError as exc:
        if exc.name is not None and module_name.startswith(exc.name):
            raise AppNotFound(f"cannot import {module_name!r}: no module named {exc.name!r}") from None
        raise  # the module exists, and one of its own imports failed: the traceback says which
    app = module
    for name in attribute.split("."):
        try:
            app = getattr(app, name)
        except AttributeError:
            raise AppNotFound(f"module {module_name!r} has no attribute {attribute!r}") from None
    if inspect.isfunction(app) and not _required_parameters(app):
        app = app()  # a factory, such as examples/chat.py's create_app
    if not isinstance(app, WebSuckets):
        raise AppNotFound(f"{spec} is not a WebSuckets app: its type is {type(app).__name__}")
    return app


def _required_parameters(function: Any) -> list[str]:
    parameters = inspect.signature(function).parameters.values()
    return [p.name for p in parameters if p.default is p.empty and p.kind not in (p.VAR_POSITIONAL, p.VAR_KEYWORD)]

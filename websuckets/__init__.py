"""websuckets: real-time applications over WebSockets, with pydantic and dishka."""

from ._version import __version__
from .app import WebSuckets
from .context import CallNext, Context, Middleware
from .events import ClientEvent
from .exc import InternalError
from .history import History
from .routing import Command, CommandGroup
from .security import Token
from .session import Session, User
from .wire import Position

__all__ = [
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
]

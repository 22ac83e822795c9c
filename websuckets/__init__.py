"""websuckets: real-time applications over WebSockets, with pydantic and dishka."""

from .app import WebSuckets
from .context import CallNext, Context, Middleware
from .events import ClientEvent
from .exc import InternalError
from .history import History, Position
from .routing import Command, CommandGroup
from .security import Token
from .session import Session, User

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

__version__ = "0.1.0"

"""The middleware chain and the built-in middlewares, one a module.

A middleware is ``async def middleware(ctx: Context, call_next: CallNext) -> None``. The
chain of every command is built once, when the app starts, in this order (outermost
first)::

    map_errors -> RateLimit -> authenticate -> app middlewares -> group middlewares
        -> CommandTimeouts -> validate_payload -> handler

``RateLimit`` and ``CommandTimeouts`` are in a chain only when the app has them on.

Each built-in is an ordinary middleware: pass your own to ``WebSuckets(...)`` to replace it.
"""

from .authentication import authenticate
from .chain import build_chain, endpoint
from .errors import map_errors
from .rate_limit import RateLimit
from .timeout import CommandTimeouts
from .validation import parse_payload, validate_payload

__all__ = [
    "CommandTimeouts",
    "RateLimit",
    "authenticate",
    "build_chain",
    "endpoint",
    "map_errors",
    "parse_payload",
    "validate_payload",
]

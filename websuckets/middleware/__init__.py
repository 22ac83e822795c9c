"""The middleware chain and the built-in middlewares, one a module.

A middleware is ``async def middleware(ctx: Context, call_next: CallNext) -> None``. The
chain of every command is built once, when the app starts, in this order (outermost
first)::

    map_errors -> RateLimit -> authenticate -> app middlewares -> group middlewares
        -> CommandTimeouts -> validate_payload -> handler

``RateLimit`` and ``CommandTimeouts`` are in a chain only when the app has them on.

Each built-in is an ordinary middleware: pass your own to ``WebSuckets(...)`` to replace it.
Whether a middleware is left out of a command's chain, or run inside the handler's step, is
said by attributes it carries, which your own may carry too (``applies_to``,
``fuses_into_endpoint``, ``answers_errors_with``: see `websuckets.middleware.chain` and `mark`).
"""

from .authentication import authenticate
from .chain import build_chain, endpoint, mark
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
    "mark",
    "parse_payload",
    "validate_payload",
]

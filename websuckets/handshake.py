"""The handshake: checks that run on every HTTP request before a websocket opens.

``websockets`` calls one ``process_request(connection, request)`` hook per request; `Handshake`
runs several in order (static files, the connection cap, the origin check, the app's handshake
authentication) and returns the first response one gives. A response refuses the upgrade;
``None`` from every check lets the websocket open.
"""

from __future__ import annotations

import inspect
from collections.abc import Awaitable, Callable, Sequence
from http import HTTPStatus

from websockets.asyncio.server import ServerConnection
from websockets.http11 import Request, Response

from .http import is_upgrade

Check = Callable[[ServerConnection, Request], Response | Awaitable[Response | None] | None]
"""A ``websockets`` ``process_request`` hook, plain or async."""


class Handshake:
    """A ``process_request`` hook running ``checks`` in order; the first response wins."""

    def __init__(self, checks: Sequence[Check]) -> None:
        self.checks = tuple(checks)

    async def __call__(self, connection: ServerConnection, request: Request) -> Response | None:
        for check in self.checks:
            response = check(connection, request)
            if inspect.isawaitable(response):
                response = await response
            if response is not None:
                return response
        return None


def limit_connections(
    count: Callable[[], int], limit: int, retry_after: int = 5
) -> Callable[[ServerConnection, Request], Response | None]:
    """A check refusing an upgrade with HTTP 503 and ``Retry-After`` while ``count()`` is at ``limit``."""

    def connection_cap(connection: ServerConnection, request: Request) -> Response | None:
        if count() < limit or not is_upgrade(request):
            return None
        connection.logger.warning("handshake refused: %d connections open, the limit", limit)
        response = connection.respond(HTTPStatus.SERVICE_UNAVAILABLE, "Too many connections, try again later\n")
        response.headers["Retry-After"] = str(retry_after)
        return response

    return connection_cap

"""``check_origin``: the handshake check against cross-site WebSocket hijacking.

Browsers send an ``Origin`` header with every websocket handshake and let any page open a
websocket to any server, with the user's cookies. The check refuses the handshake (HTTP 403)
when the ``Origin`` is not allowed:

- ``origins=None`` (the default): same origin only. A browser's ``Origin`` must name the host
  (and port) the browser connected to, its ``Host`` header;
- ``origins=["https://app.example.com", ...]``: one of these exactly (case-insensitive);
- ``origins="*"``: any origin (no check).

Clients without an ``Origin`` header (not browsers: scripts, servers, mobile apps) always pass:
they carry no ambient cookies of a victim, and could forge the header anyway.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from http import HTTPStatus
from typing import Literal
from urllib.parse import urlsplit

from websockets.asyncio.server import ServerConnection
from websockets.http11 import Request, Response

Origins = Sequence[str] | Literal["*"] | None
"""What ``WebSuckets(origins=...)`` takes."""

_DEFAULT_PORTS = {"http": "80", "ws": "80", "https": "443", "wss": "443"}


def origin_allowed(origin: str | None, host: str | None, origins: Origins) -> bool:
    """Whether a handshake with this ``Origin`` and ``Host`` header may go on."""
    if origin is None or origins == "*":
        return True
    if origins is not None:
        return origin.lower() in {allowed.lower() for allowed in origins}
    if host is None:
        return False
    try:
        parts = urlsplit(origin)
        scheme, origin_host, origin_port = parts.scheme.lower(), parts.hostname, parts.port
    except ValueError:
        return False
    if origin_host is None or scheme not in _DEFAULT_PORTS:
        return False  # "null" (a sandboxed page, a file), or garbage
    default = _DEFAULT_PORTS[scheme]
    shown = f"[{origin_host}]" if ":" in origin_host else origin_host
    expected = f"{shown}:{origin_port or default}"
    host = host.lower()
    if not host.endswith("]") and ":" in host.rpartition("]")[2]:
        return host == expected
    return f"{host}:{default}" == expected


def check_origin(origins: Origins) -> Callable[[ServerConnection, Request], Response | None]:
    """A ``process_request`` hook refusing, with 403, a browser whose ``Origin`` is not allowed."""
    allowed = origins if origins is None or origins == "*" else tuple(origins)

    def origin_check(connection: ServerConnection, request: Request) -> Response | None:
        origin = request.headers.get("Origin")
        if origin_allowed(origin, request.headers.get("Host"), allowed):
            return None
        connection.logger.info("handshake refused: origin %r not allowed", origin)
        return connection.respond(HTTPStatus.FORBIDDEN, "Origin not allowed\n")

    return origin_check

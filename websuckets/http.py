"""HTTP for ``process_request`` hooks: recognising a websocket upgrade, building a plain response.

The handshake checks (`websuckets.handshake`), the static files (`websuckets.static`) and the
instruments' endpoints (health probes, ``/metrics``, the published schema) all answer plain HTTP
requests on the websocket server's own port, and all let upgrades pass. No I/O here.
"""

from __future__ import annotations

import json
from http import HTTPStatus

from websockets.datastructures import Headers
from websockets.http11 import Request, Response


def is_upgrade(request: Request) -> bool:
    """Whether ``request`` asks for a websocket (plain HTTP endpoints leave those alone)."""
    return "websocket" in request.headers.get("Upgrade", "").lower()


def url_path(request: Request) -> str:
    """The path of ``request``, without its query string."""
    return request.path.partition("?")[0]


def json_response(status: HTTPStatus, body: object, content_type: str = "application/json") -> Response:
    """A response holding ``body`` as JSON (or as text, when it is ``str`` or ``bytes``), never cached."""
    if isinstance(body, bytes):
        data = body
    elif isinstance(body, str):
        data = body.encode()
    else:
        data = json.dumps(body).encode()
    headers = Headers(
        [
            ("Connection", "close"),
            ("Content-Length", str(len(data))),
            ("Content-Type", content_type),
            ("Cache-Control", "no-store"),
            ("X-Content-Type-Options", "nosniff"),
        ]
    )
    return Response(status.value, status.phrase, headers, data)

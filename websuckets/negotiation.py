"""Protocol negotiation: the wire format of a connection, chosen once, at the handshake.

A client names the protocol it speaks in ``Sec-WebSocket-Protocol``:

- ``websuckets.v1.json``: JSON text frames, as when it offers nothing (or only ``websuckets``);
- ``websuckets.v1.msgpack``: MessagePack binary frames (`websuckets.msgpack_codec`), when
  ormsgpack is installed (``websuckets[msgpack]``).

The first of the client's offers that the server speaks is selected. A client that offers
versioned subprotocols (``websuckets.v...``) and none of them is known is refused with HTTP 400,
whose body names the ones this server speaks. Other subprotocols (``websuckets``,
``websuckets.token.<token>``, anybody else's) are left as they were: JSON, and the token goes to
`websuckets.handshake_auth`.

A MessagePack connection carries its `WireFormat` as ``connection.codec``; a JSON one carries
``None``: the message path reads that one attribute, and nothing else depends on the format.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from http import HTTPStatus
from typing import Any, NamedTuple

from websockets.asyncio.server import ServerConnection
from websockets.exceptions import InvalidHeader
from websockets.headers import parse_subprotocol
from websockets.http11 import Request, Response
from websockets.typing import Subprotocol

from . import msgpack_codec
from .envelope import Envelope, parse_msgpack_envelope, parse_traced_msgpack_envelope
from .http import is_upgrade
from .wire import JSON_SUBPROTOCOL, MSGPACK_SUBPROTOCOL, SUBPROTOCOL, VERSION_PREFIX

__all__ = ["MSGPACK", "WireFormat", "check_subprotocols", "select_subprotocol", "supported_subprotocols"]


class WireFormat(NamedTuple):
    """How a connection other than JSON reads and writes its frames."""

    subprotocol: str
    encode: Callable[[Any], Any]
    """A server's ``send`` argument (a `ClientEvent`, JSON text, bytes) as this format's frame."""
    encode_event: Callable[[str, Any, str | int | None], bytes]
    """The frame of an event from its parts: ``(event, payload, id)``."""
    parse: Callable[[str | bytes], Envelope]
    parse_traced: Callable[[str | bytes], Envelope]
    """`parse`, keeping the ``traceparent`` (when an instrument traces)."""


MSGPACK = WireFormat(
    MSGPACK_SUBPROTOCOL,
    msgpack_codec.encode_message,
    msgpack_codec.pack_event,
    parse_msgpack_envelope,
    parse_traced_msgpack_envelope,
)
"""The ``websuckets.v1.msgpack`` format."""


def supported_subprotocols() -> tuple[str, ...]:
    """The versioned subprotocols this server speaks: MessagePack only with ormsgpack installed."""
    if msgpack_codec.available():
        return (JSON_SUBPROTOCOL, MSGPACK_SUBPROTOCOL)
    return (JSON_SUBPROTOCOL,)


def select_subprotocol(connection: ServerConnection, offered: Sequence[Subprotocol]) -> Subprotocol | None:
    """The first versioned subprotocol offered that the server speaks, else ``websuckets`` if offered.

    Selecting ``websuckets.v1.msgpack`` sets ``connection.codec``: the one decision a connection's
    messages follow.
    """
    for name in offered:
        if name == JSON_SUBPROTOCOL:
            return name
        if name == MSGPACK_SUBPROTOCOL and msgpack_codec.available():
            connection.codec = MSGPACK  # type: ignore[attr-defined]  # a GuardedConnection's
            return name
    return Subprotocol(SUBPROTOCOL) if SUBPROTOCOL in offered else None


def check_subprotocols(connection: ServerConnection, request: Request) -> Response | None:
    """A handshake check refusing, with HTTP 400, a client that offers only unknown versions of the protocol."""
    if not is_upgrade(request):
        return None
    try:
        offered = [
            name for value in request.headers.get_all("Sec-WebSocket-Protocol") for name in parse_subprotocol(value)
        ]
    except InvalidHeader:
        return None  # websockets refuses it itself, with its own reason
    versions = [name for name in offered if name.startswith(VERSION_PREFIX)]
    supported = supported_subprotocols()
    if not versions or any(name in supported for name in versions):
        return None
    connection.logger.info("handshake refused: unsupported subprotocol %s", ", ".join(versions))
    return connection.respond(
        HTTPStatus.BAD_REQUEST,
        f"Unsupported subprotocol {', '.join(versions)}: this server speaks {', '.join(supported)}\n",
    )

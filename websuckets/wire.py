"""What travels on the wire and both sides must agree on: names, limits and plain value types.

The server (`websuckets.app` and the modules under it) and the Python client
(`websuckets.client`) both import these from here, so that neither depends on the other. No
I/O here, and nothing but the standard library.
"""

from __future__ import annotations

from typing import Final, NamedTuple

ERROR_EVENT: Final = "error"
"""The event of every error the server sends: ``{"event": "error", "payload": {"name", "details", "event", "id"}}``."""

RESUME_EVENT: Final = "websuckets resume"
"""The built-in command a reconnected client sends to resume its rooms, and the event of its reply."""
POSITION_EVENT: Final = "websuckets position"
"""Sent to a client joining a history room, and after each resume: where it now stands."""
GAP_EVENT: Final = "websuckets gap"
"""Sent to the members of a room whose messages were lost on their way to this process."""

STREAM_END_EVENT: Final = "websuckets end"
"""The last event of a stream: ``{"event": "websuckets end", "payload": {"items": 3, "cancelled": false}, "id": 17}``.

A stream that fails ends with an ``error`` event for its ``id`` instead.
"""
CANCEL_EVENT: Final = "websuckets cancel"
"""The built-in command that cancels the stream whose ``id`` it carries.

``{"event": "websuckets cancel", "id": 17}``; nothing answers it but the stream's end (``"cancelled": true``).
"""
MAX_STREAMS: Final = 16
"""Streams one connection may run at once, by default (``WebSuckets(max_streams=...)``)."""

MAX_ROOMS: Final = 100
"""Rooms one command may resume, and positions a connection keeps waiting for a join."""

SUBPROTOCOL: Final = "websuckets"
"""The subprotocol a websuckets server selects whenever a client offers it."""
TOKEN_SUBPROTOCOL: Final = "websuckets.token."
"""The prefix of the subprotocol that carries a token: ``websuckets.token.<token>``."""
JSON_SUBPROTOCOL: Final = "websuckets.v1.json"
"""Version 1 of the protocol in JSON text frames: the same frames as offering no subprotocol at all."""
MSGPACK_SUBPROTOCOL: Final = "websuckets.v1.msgpack"
"""Version 1 of the protocol in MessagePack binary frames (the ``websuckets[msgpack]`` extra)."""
VERSION_PREFIX: Final = "websuckets.v"
"""The prefix of every versioned subprotocol: a client offering only unknown ones is refused (HTTP 400)."""


class _Missing:
    """The type of `MISSING`: a command sent without a ``payload`` key."""

    __slots__ = ()

    def __repr__(self) -> str:
        return "MISSING"

    def __bool__(self) -> bool:
        return False


MISSING: Final = _Missing()
"""The payload of a command that has no ``payload`` key (``null`` is ``None``)."""


class Position(NamedTuple):
    """Where a message stands in its room: the room's epoch and the message's offset in it."""

    epoch: str
    offset: int

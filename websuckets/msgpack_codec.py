"""MessagePack on the wire: the codec of the ``websuckets.v1.msgpack`` subprotocol.

The same messages as the JSON protocol, as MessagePack maps in binary frames:
``{"event", "payload", "token", "id"}`` from the client, ``{"event", "payload", "id"}`` from the
server. ``bytes`` travel as MessagePack binaries, not base64. The codec is ormsgpack (the
``websuckets[msgpack]`` extra), imported only when a connection or a client uses it: it packs
pydantic models natively, about five times faster than ``msgpack`` with a ``default`` hook, and
unpacks twice as fast (see ``docs/guide/msgpack.md``).

No I/O here; the server (`websuckets.envelope`, `websuckets.connection`, `websuckets.delivery`)
and the Python client (`websuckets.client`) both use it.
"""

from __future__ import annotations

import importlib
from functools import cache
from types import ModuleType
from typing import Any

from pydantic_core import from_json, to_jsonable_python

from .events import ClientEvent

__all__ = ["MsgpackUnavailable", "available", "encode_message", "pack", "pack_event", "unpack"]


class MsgpackUnavailable(ImportError):
    """MessagePack was asked for, and ormsgpack is not installed."""

    def __str__(self) -> str:
        return "MessagePack needs ormsgpack, which is not installed: pip install 'websuckets[msgpack]'"


@cache
def _ormsgpack() -> ModuleType:
    try:
        return importlib.import_module("ormsgpack")
    except ImportError:
        raise MsgpackUnavailable() from None


def available() -> bool:
    """Whether ormsgpack can be imported: a server offers ``websuckets.v1.msgpack`` only then."""
    try:
        _ormsgpack()
    except MsgpackUnavailable:
        return False
    return True


def _default(value: Any) -> Any:
    """What ormsgpack cannot pack by itself, as JSON would send it (a set, a Decimal, a path)."""
    return to_jsonable_python(value, fallback=str)


def pack(value: Any) -> bytes:
    """``value`` as MessagePack: pydantic models, dataclasses, datetimes and UUIDs included; ``bytes`` raw."""
    ormsgpack = _ormsgpack()
    return ormsgpack.packb(value, default=_default, option=ormsgpack.OPT_SERIALIZE_PYDANTIC)  # type: ignore[no-any-return]


def unpack(data: bytes) -> Any:
    """The value of one MessagePack frame; `ValueError` when it is not valid MessagePack."""
    ormsgpack = _ormsgpack()
    try:
        return ormsgpack.unpackb(data)
    except ormsgpack.MsgpackDecodeError as exc:
        raise ValueError(str(exc)) from None


def pack_event(event: str, payload: Any = None, id: str | int | None = None) -> bytes:
    """The MessagePack frame of an event: `websuckets.events.dump_event`'s map, packed."""
    message: dict[str, Any] = {"event": event, "payload": payload}
    if id is not None:
        message["id"] = id
    return pack(message)


def encode_message(message: Any) -> Any:
    """What a MessagePack connection sends for ``message``, a server's ``send`` argument.

    A `ClientEvent` is packed from its parts (its payload's ``bytes`` stay binaries); other text
    is JSON (an error event, a message stamped with its room position) and is packed from its
    parsed value; bytes, built by hand, go out as they are.
    """
    if isinstance(message, ClientEvent):
        return pack_event(message.event, message.payload, message.id)
    if isinstance(message, str):
        return pack(from_json(message))
    return message

"""``ClientEvent``: the JSON text of a server-to-client event."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from pydantic_core import to_json

__all__ = ["ClientEvent", "dump_event"]


def dump_event(
    event: str,
    payload: Any = None,
    id: str | int | None = None,
    *,
    fallback: Callable[[Any], Any] | None = None,
) -> str:
    """Serialise an event to the wire form ``{"event": ..., "payload": ..., "id": ...}``.

    ``id`` is written only when it is not ``None``. The payload may be any JSON value,
    a pydantic model, a dataclass, a UUID or a datetime; ``fallback`` converts anything else.
    """
    message: dict[str, Any] = {"event": event, "payload": payload}
    if id is not None:
        message["id"] = id
    return to_json(message, fallback=fallback).decode()


class ClientEvent(str):
    """An event for the client, already serialised: pass it straight to ``socket.send``.

    ``ClientEvent("new token", token)`` is the string
    ``{"event":"new token","payload":"4d1d…"}``; ``.event`` and ``.payload`` keep the parts.
    """

    event: str
    payload: Any

    def __new__(cls, event: str, payload: Any = None, *, id: str | int | None = None) -> ClientEvent:
        text = super().__new__(cls, dump_event(event, payload, id))
        text.event = event
        text.payload = payload
        return text

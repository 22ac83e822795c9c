"""``ClientEvent``: the JSON text of a server-to-client event."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from pydantic_core import to_json

__all__ = ["ClientEvent", "dump_event", "with_id"]


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
    ``{"event":"new token","payload":"4d1d…"}``; ``.event``, ``.payload`` and ``.id`` keep the parts.
    """

    event: str
    payload: Any
    id: str | int | None = None
    """The command id the event answers, or ``None``."""

    def __new__(cls, event: str, payload: Any = None, *, id: str | int | None = None) -> ClientEvent:
        text = super().__new__(cls, dump_event(event, payload, id))
        text.event = event
        text.payload = payload
        if id is not None:
            text.id = id
        return text


def with_id(event: ClientEvent, id: str | int) -> str:
    """The text of ``event`` answering the command ``id``: ``"id"`` added, the payload not serialised again.

    The same text as ``ClientEvent(event.event, event.payload, id=id)``, as a plain ``str``: it
    is sent, not kept.
    """
    return f'{event[:-1]},"id":{id if type(id) is int else to_json(id).decode()}}}'

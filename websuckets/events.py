"""``ClientEvent``: the JSON text of a server-to-client event."""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from typing import Any, NamedTuple

from pydantic_core import to_json


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
        # `dump_event`, inlined: a ClientEvent is made for almost every reply
        message = {"event": event, "payload": payload} if id is None else {"event": event, "payload": payload, "id": id}
        text = str.__new__(cls, to_json(message).decode())
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
    return with_fields(event, f'"id":{id if type(id) is int else to_json(id).decode()}')


def with_fields(message: str, fields: str) -> str:
    """The JSON object text ``message`` with ``fields`` (``"key":value`` pairs, already JSON) added last.

    Nothing is parsed or serialised again: ``fields`` goes in before the object's closing brace.
    """
    body = message[:-1].rstrip()
    separator = "" if body.endswith("{") else ","  # an empty object
    return f"{body}{separator}{fields}}}"


class PendingAnswer(NamedTuple):
    """A command with an ``id`` whose handler answers with ``socket.send``: what its first event gets.

    The connection holds one while the command runs (`websuckets.answer`); its ``send`` stamps the
    first message that ``task`` sends with `answered`.
    """

    id: str | int
    """The command's ``id``."""
    task: asyncio.Task[Any] | None
    """The task running the command: only what it sends may be the answer."""


def answered(pending: PendingAnswer, message: Any) -> tuple[Any, PendingAnswer | None]:
    """What a socket sends while ``pending``, and what stays pending after it.

    The first message that the command's own task sends is the answer: a `ClientEvent` without
    an ``id`` gets the command's; anything else (an event with an ``id``, text or bytes built by
    hand) goes out as it is. Either way nothing is pending after it. A message from another task
    goes out as it is, and the answer stays pending.
    """
    if pending.task is not asyncio.current_task():
        return message, pending
    if isinstance(message, ClientEvent) and message.id is None:
        return with_id(message, pending.id), None
    return message, None

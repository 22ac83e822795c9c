"""The wire format: parsing a frame into an `Envelope`, shaping error events.

No I/O here: everything is a pure function of its arguments.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Final

from pydantic_core import from_json

from .events import dump_event
from .exc import InternalError, InvalidCommand, InvalidJSON

__all__ = ["MISSING", "Envelope", "error_event", "parse_envelope"]


class _Missing:
    """The type of `MISSING`: a command sent without a ``payload`` key."""

    __slots__ = ()

    def __repr__(self) -> str:
        return "MISSING"

    def __bool__(self) -> bool:
        return False


MISSING: Final = _Missing()
"""The payload of a command that has no ``payload`` key (``null`` is ``None``)."""


@dataclass(slots=True, frozen=True)
class Envelope:
    """A command as the client sent it: ``{"event", "payload", "token", "id"}``."""

    event: str
    payload: Any = MISSING
    token: str | None = None
    id: str | int | None = None


def parse_envelope(frame: str | bytes) -> Envelope:
    """Turn one frame into an `Envelope`.

    Raises `InvalidJSON` for a binary frame or text that is not
    JSON, and `InvalidCommand` for JSON of the wrong shape.
    Unknown extra keys are ignored.
    """
    if not isinstance(frame, str):
        raise InvalidJSON("binary frames are not accepted: send JSON in a text frame")
    try:
        data = from_json(frame)
    except ValueError as exc:
        raise InvalidJSON(f"not valid JSON: {exc}") from None
    if not isinstance(data, dict):
        raise InvalidCommand(f"a command is a JSON object, not {_json_type(data)}")
    command_id = data.get("id")
    if command_id is not None and (isinstance(command_id, bool) or not isinstance(command_id, str | int)):
        raise InvalidCommand("'id' must be a string or an integer")
    event = data.get("event")
    if not isinstance(event, str):
        raise InvalidCommand("the command needs an 'event' key holding a string", id=command_id)
    token = data.get("token")
    if token is not None and not isinstance(token, str):
        raise InvalidCommand("'token' must be a string", event=event, id=command_id)
    return Envelope(event, data.get("payload", MISSING), token, command_id)


def error_event(error: InternalError, event: str | None = None, id: str | int | None = None) -> str:
    """The wire form of an error: an event named ``error``.

    Details that JSON cannot hold (an exception, a set) are sent as their ``str``.
    """
    payload = {"name": error.name, "details": error.details, "event": event, "id": id}
    return dump_event("error", payload, fallback=str)


def _json_type(value: object) -> str:
    names = {list: "an array", str: "a string", int: "a number", float: "a number", bool: "a boolean"}
    return names.get(type(value), "null")

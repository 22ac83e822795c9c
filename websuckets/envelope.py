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


@dataclass(slots=True)
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
    # from_json builds exact dict, str and int objects (a boolean is not an int here): type() is enough
    if type(data) is not dict:
        raise InvalidCommand(f"a command is a JSON object, not {_json_type(data)}")
    get = data.get
    command_id = get("id")
    if command_id is not None and type(command_id) is not str and type(command_id) is not int:
        raise InvalidCommand("'id' must be a string or an integer")
    event = get("event")
    if type(event) is not str:
        raise InvalidCommand("the command needs an 'event' key holding a string", id=command_id)
    token = get("token")
    if token is not None and type(token) is not str:
        raise InvalidCommand("'token' must be a string", event=event, id=command_id)
    return Envelope(event, get("payload", MISSING), token, command_id)


def error_event(error: InternalError, event: str | None = None, id: str | int | None = None) -> str:
    """The wire form of an error: an event named ``error``.

    Details that JSON cannot hold (an exception, a set) are sent as their ``str``.
    """
    payload = {"name": error.name, "details": error.details, "event": event, "id": id}
    return dump_event("error", payload, fallback=str)


def _json_type(value: object) -> str:
    names = {list: "an array", str: "a string", int: "a number", float: "a number", bool: "a boolean"}
    return names.get(type(value), "null")

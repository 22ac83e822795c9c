"""The wire format: parsing a frame into an `Envelope`, shaping error events.

No I/O here: everything is a pure function of its arguments.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any, Final

from pydantic_core import from_json

from .events import dump_event
from .exc import InternalError, InvalidCommand, InvalidJSON
from .msgpack_codec import unpack
from .wire import ERROR_EVENT, MISSING

ID_MAX_LENGTH: Final = 128
"""The longest string ``id`` a command may carry; an integer ``id`` must fit in 64 bits."""
_INT64_MIN, _INT64_MAX = -(2**63), 2**63 - 1

ECHO_LIMIT: Final = 128
"""At most this many characters of what a client sent (an event name) come back in an error."""


@dataclass(slots=True)
class Envelope:
    """A command as the client sent it: ``{"event", "payload", "token", "id"}``."""

    event: str
    payload: Any = MISSING
    token: str | None = None
    id: str | int | None = None
    traceparent: str | None = None
    """The W3C trace context of the command, read by `parse_traced_envelope` only."""


def parse_envelope(frame: str | bytes) -> Envelope:
    """Turn one frame into an `Envelope`.

    Raises `InvalidJSON` for a binary frame or text that is not
    strict JSON (``NaN``, ``Infinity`` and numbers too large for a double are refused), and
    `InvalidCommand` for JSON of the wrong shape, including an ``id`` that is neither a string
    of at most `ID_MAX_LENGTH` characters nor a 64-bit integer. Unknown extra keys are ignored.
    """
    if not isinstance(frame, str):
        raise InvalidJSON("binary frames are not accepted: send JSON in a text frame")
    try:
        data = from_json(frame, allow_inf_nan=False)
    except ValueError as exc:
        raise InvalidJSON(_explain_json_error(str(exc), frame)) from None
    return _envelope_of(data)


TRACEPARENT_MAX_LENGTH: Final = 128
"""A ``traceparent`` is 55 characters today; longer ones (or non-strings) are ignored."""


def parse_traced_envelope(frame: str | bytes) -> Envelope:
    """`parse_envelope`, keeping the command's optional ``traceparent`` (a W3C trace context string).

    A ``traceparent`` that is not a short string is ignored, not an error: tracing never refuses
    a command.
    """
    if not isinstance(frame, str):
        raise InvalidJSON("binary frames are not accepted: send JSON in a text frame")
    try:
        data = from_json(frame, allow_inf_nan=False)
    except ValueError as exc:
        raise InvalidJSON(_explain_json_error(str(exc), frame)) from None
    return _traced(_envelope_of(data), data)


def _traced(envelope: Envelope, data: dict[str, Any]) -> Envelope:
    traceparent = data.get("traceparent")
    if type(traceparent) is str and len(traceparent) <= TRACEPARENT_MAX_LENGTH:
        envelope.traceparent = traceparent
    return envelope


def parse_msgpack_envelope(frame: str | bytes) -> Envelope:
    """`parse_envelope` for a ``websuckets.v1.msgpack`` connection: a binary frame is one MessagePack map.

    A text frame is read as JSON, as on any connection. Bytes that are not MessagePack raise
    `InvalidJSON` (the same error name as over JSON), a value of the wrong shape `InvalidCommand`.
    """
    if isinstance(frame, str):
        return parse_envelope(frame)
    return _envelope_of(_unpacked(frame))


def parse_traced_msgpack_envelope(frame: str | bytes) -> Envelope:
    """`parse_msgpack_envelope`, keeping the command's optional ``traceparent``, as `parse_traced_envelope`."""
    if isinstance(frame, str):
        return parse_traced_envelope(frame)
    data = _unpacked(frame)
    return _traced(_envelope_of(data), data)


def _unpacked(frame: bytes) -> Any:
    try:
        return unpack(frame)
    except ValueError as exc:
        raise InvalidJSON(f"not valid MessagePack: {exc}") from None


def _envelope_of(data: Any) -> Envelope:
    """The `Envelope` of a parsed frame, or `InvalidCommand` / `InvalidJSON` for the wrong shape."""
    # from_json builds exact dict, str and int objects (a boolean is not an int here): type() is enough
    if type(data) is not dict:
        raise InvalidCommand(f"a command is a JSON object, not {_json_type(data)}")
    get = data.get
    command_id = get("id")
    if command_id is not None and not _valid_id(command_id):
        raise InvalidCommand(f"'id' must be a string of at most {ID_MAX_LENGTH} characters or a 64-bit integer")
    event = get("event")
    if type(event) is not str:
        raise InvalidCommand("the command needs an 'event' key holding a string", id=command_id)
    token = get("token")
    if token is not None and type(token) is not str:
        raise InvalidCommand("'token' must be a string", event=event, id=command_id)
    payload = get("payload", MISSING)
    if (type(payload) is dict or type(payload) is list) and _holds_infinity(payload):
        raise InvalidJSON("not valid JSON: a number is out of range", event=event, id=command_id)
    if type(payload) is float and payload - payload:  # a bare 1e999: inf - inf is nan, which is true
        raise InvalidJSON("not valid JSON: a number is out of range", event=event, id=command_id)
    return Envelope(event, payload, token, command_id)


def _valid_id(command_id: object) -> bool:
    if type(command_id) is str:
        return len(command_id) <= ID_MAX_LENGTH
    return type(command_id) is int and _INT64_MIN <= command_id <= _INT64_MAX


_MAY_HOLD_A_FLOAT = frozenset((float, dict, list))
"""The types of a parsed value that are, or may hold, a float."""


def _holds_infinity(value: dict[str, Any] | list[Any]) -> bool:
    """Whether a parsed value holds a float that overflowed to infinity (``1e999``): a loop, no recursion.
    An object of strings, integers, booleans and nulls alone (most payloads) is answered at once."""
    if type(value) is dict and _MAY_HOLD_A_FLOAT.isdisjoint(map(type, value.values())):
        return False
    stack: list[Any] = [value]
    pop, push = stack.pop, stack.extend
    while stack:
        item = pop()
        kind = type(item)
        if kind is dict:
            push(item.values())
        elif kind is list:
            push(item)
        elif kind is float and item - item:  # finite - itself is 0.0; inf - inf is nan
            return True
    return False


def bounded(text: str, limit: int = ECHO_LIMIT) -> str:
    """``text``, or its first ``limit`` characters and an ellipsis: what an error may echo."""
    return text if len(text) <= limit else text[:limit] + "…"


def error_event(error: InternalError, event: str | None = None, id: str | int | None = None) -> str:
    """The wire form of an error: an event named ``error``.

    Details that JSON cannot hold (an exception, a set) are sent as their ``str``. The event
    name is cut to `ECHO_LIMIT` characters: an error never echoes much of what the client sent.
    """
    if event is not None and len(event) > ECHO_LIMIT:
        event = bounded(event)
    payload = {"name": error.name, "details": error.details, "event": event, "id": id}
    return dump_event(ERROR_EVENT, payload, fallback=str)


_POSITION = re.compile(r"(?P<problem>.+) at line (?P<line>\d+) column (?P<column>\d+)")

# The parser's words for what it found (pydantic-core's JSON parser, jiter), in a client developer's words
_JSON_PROBLEMS: Final = {
    "EOF while parsing a value": "the text ends where a value should be",
    "EOF while parsing a list": "the text ends inside an array: a ']' is missing",
    "EOF while parsing an object": "the text ends inside an object: a '}' is missing",
    "EOF while parsing a string": "the text ends inside a string: its closing '\"' is missing",
    "expected value": (
        "a value should be here: an object, an array, a string, a number, true, false or null"
        " (NaN and Infinity are not JSON)"
    ),
    "expected ident": "an unknown word: strings go in double quotes, and the only bare words are true, false and null",
    "expected `:`": "a ':' should follow the key",
    "expected `,` or `]`": "a ',' or the closing ']' should follow an item of the array",
    "expected `,` or `}`": "a ',' or the closing '}' should follow a value of the object",
    "key must be a string": "the keys of an object are strings in double quotes",
    "trailing comma": "a ',' before the closing bracket: JSON allows no trailing comma",
    "trailing characters": "more text after the end of the JSON value: send one command a frame",
    "invalid number": "a malformed number",
    "number out of range": "a number too large to read",
    "invalid escape": "an unknown escape after '\\' in a string",
    "invalid unicode code point": "a '\\u' escape that is not a Unicode character",
    "lone leading surrogate in hex escape": "a '\\u' escape that is half of a surrogate pair",
    "unexpected end of hex escape": "a '\\u' escape that is half of a surrogate pair",
    "control character (\\u0000-\\u001F) found while parsing a string": (
        "a control character (such as a tab or a line break) inside a string: escape it, as \\t or \\n"
    ),
    "recursion limit exceeded": "arrays and objects nested too deeply",
}


def _explain_json_error(message: str, frame: str) -> str:
    """The parser's ``message`` in words a client developer reads, with its line and column."""
    if not frame.strip():
        return "not valid JSON: the frame is empty"
    found = _POSITION.fullmatch(message)
    if found is None:
        return f"not valid JSON: {message}"
    problem = _JSON_PROBLEMS.get(found["problem"], found["problem"])
    line, column = int(found["line"]), int(found["column"])
    lines = frame.split("\n")
    if 0 < line <= len(lines):  # the parser counts bytes of UTF-8; an editor counts characters
        column = len(lines[line - 1].encode()[:column].decode(errors="ignore"))
    return f"not valid JSON at line {line}, column {column}: {problem}"


def _json_type(value: object) -> str:
    names = {list: "an array", str: "a string", int: "a number", float: "a number", bool: "a boolean"}
    return names.get(type(value), "null")

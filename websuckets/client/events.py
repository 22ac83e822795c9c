"""`ServerEvent`: one event the client received, parsed from its frame. No I/O.

A frame is an event when it is a JSON object with a string ``event``. A room message of a
room with history also carries its position (``room``, ``epoch``, ``offset``); see
`websuckets.history`.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, TypeGuard

from ..wire import ERROR_EVENT, Position


@dataclass(frozen=True, slots=True)
class ServerEvent:
    """An event from the server, or one of the client's own (``open``, ``close``, ``resumed``).

    ``room``, ``epoch`` and ``offset`` are set on a message of a room with history, else ``None``.
    ``raw`` is the frame's text; empty for the client's own events and for MessagePack frames.
    """

    event: str
    payload: Any = None
    id: str | int | None = None
    room: str | None = None
    epoch: str | None = None
    offset: int | None = None
    raw: str = ""

    @classmethod
    def read(cls, frame: str | bytes, unpack: Callable[[bytes], Any] | None) -> ServerEvent | None:
        """The event in a frame: a binary one unpacked with ``unpack`` (MessagePack), if given, else
        read as text; ``None`` when not an event."""
        if not isinstance(frame, bytes):
            return cls.parse(frame)
        if unpack is None:
            return cls.parse(frame.decode(errors="replace"))
        try:
            return cls.of(unpack(frame), "")
        except ValueError:
            return None

    @classmethod
    def parse(cls, text: str) -> ServerEvent | None:
        """The event in a frame's text; ``None`` when the frame is not an event."""
        try:
            data = json.loads(text)
        except ValueError:
            return None
        return cls.of(data, text)

    @classmethod
    def of(cls, data: Any, raw: str) -> ServerEvent | None:
        """The event in a frame's decoded value (``raw``: its text, empty for MessagePack); ``None`` if not one."""
        if not isinstance(data, dict) or not isinstance(data.get("event"), str):
            return None
        room, epoch, offset = data.get("room"), data.get("epoch"), data.get("offset")
        positioned = isinstance(room, str) and isinstance(epoch, str) and _is_int(offset)
        return cls(
            data["event"],
            data.get("payload"),
            _id(data.get("id")),
            room if positioned else None,
            epoch if positioned else None,
            offset if positioned else None,
            raw,
        )

    @classmethod
    def local(cls, event: str, payload: Any = None) -> ServerEvent:
        """One of the client's own events: ``open``, ``close`` or ``resumed``."""
        return cls(event, payload)

    @property
    def is_error(self) -> bool:
        """Whether this is an ``error`` event."""
        return self.event == ERROR_EVENT

    @property
    def answers(self) -> str | int | None:
        """The id of the command this event answers: its own ``id``, or for an error the one in its payload."""
        if self.id is None and self.is_error and isinstance(self.payload, dict):
            return _id(self.payload.get("id"))
        return self.id

    @property
    def position(self) -> Position | None:
        """Where this room message stands in its room; ``None`` for any other event."""
        if self.epoch is None or self.offset is None:
            return None
        return Position(self.epoch, self.offset)


def _is_int(value: object) -> TypeGuard[int]:
    return isinstance(value, int) and not isinstance(value, bool)


def _id(value: object) -> str | int | None:
    """A correlation id as the protocol allows it (a string or an integer); anything else is no id."""
    return value if isinstance(value, str) or _is_int(value) else None

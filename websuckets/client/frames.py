"""How a `Client` writes commands and reads events: JSON text frames, or MessagePack in binary ones. No I/O.

A command's payload is made safe to send when the command is made (JSON-safe, or checked to
pack), so that one that cannot be serialised fails the call that sent it, not the connection.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, Literal

from pydantic_core import to_json, to_jsonable_python

from ..wire import MISSING, MSGPACK_SUBPROTOCOL
from . import packing

Format = Literal["json", "msgpack"]


class Frames:
    """The frames of one format: ``"json"``, or ``"msgpack"`` (`ImportError` here without ormsgpack)."""

    def __init__(self, format: Format) -> None:
        if format not in ("json", "msgpack"):
            raise ValueError(f"format is 'json' or 'msgpack', not {format!r}")
        self.msgpack = format == "msgpack"
        if self.msgpack:
            packing.pack(None)  # without ormsgpack: ImportError, now
        self.subprotocol = MSGPACK_SUBPROTOCOL if self.msgpack else None
        """The subprotocol to offer, and that the server must select; ``None`` for JSON (none needed)."""
        self.unpack: Callable[[bytes], Any] | None = packing.unpack if self.msgpack else None
        """How a binary frame is read (``None``: as UTF-8 JSON text)."""
        self._safe: Callable[[Any], Any] = _packable if self.msgpack else to_jsonable_python

    def command(self, event: str, payload: Any, command_id: int | None = None) -> dict[str, Any]:
        """A command's frame, without its token (added as it goes out)."""
        command: dict[str, Any] = {"event": event}
        if payload is not MISSING:
            command["payload"] = self._safe(payload)
        if command_id is not None:
            command["id"] = command_id
        return command

    def encode(self, frame: dict[str, Any]) -> str | bytes:
        return packing.pack(frame) if self.msgpack else to_json(frame).decode()


def _packable(payload: Any) -> Any:
    """``payload`` as it is (``bytes`` stay bytes), once it is known to pack as MessagePack."""
    packing.pack(payload)
    return payload

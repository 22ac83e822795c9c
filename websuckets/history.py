"""Room history: which rooms keep their recent messages, where a message stands, what a resume owes.

A room with history numbers its messages: each carries a *position*, an epoch (a random
string, new whenever the room's history was lost) and an offset (1, 2, 3... within the
epoch). A client that reconnects asks to resume from the last position it saw, and gets
every message after it, in order, with ``recovered: true``; or, when any of them is gone
(history overflowed or expired, or the epoch changed), nothing replayed and
``recovered: false``, the sign to reload the room's state.

This module decides and shapes; the backends store (`MemoryBackend` in a ring buffer,
`RedisBackend` in a Redis Stream) and deliver.
"""

from __future__ import annotations

import fnmatch
import re
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, NamedTuple

from pydantic_core import to_json

from .delivery import send_batch
from .events import ClientEvent, with_fields
from .wire import GAP_EVENT, POSITION_EVENT, Position

HISTORY_IDLE = 24 * 60 * 60
"""Seconds a room's history outlives its last message (its ``ttl`` when longer); then a new epoch starts."""
MAX_TTL = 365 * 24 * 60 * 60
"""The longest ``History(ttl=...)``: a year."""


@dataclass(frozen=True, slots=True)
class History:
    """How much of a room's traffic to keep for clients that reconnect.

    Args:
        size: the last messages kept (always bounded: the oldest are dropped past it).
        ttl: seconds a message stays recoverable; ``None`` for as long as it is among the last ``size``.
    """

    size: int = 100
    ttl: float | None = None

    def __post_init__(self) -> None:
        if not isinstance(self.size, int) or self.size < 1:
            raise ValueError(f"History(size=...) is a positive number of messages, not {self.size!r}")
        if self.ttl is not None and not 0 < self.ttl <= MAX_TTL:
            raise ValueError(f"History(ttl=...) is a number of seconds up to {MAX_TTL} or None, not {self.ttl!r}")


class HistoryRules:
    """Which rooms keep history: exact names first, then fnmatch patterns in the order given.

    Each room's answer is looked up once and remembered, so a broadcast pays a dict look-up.
    """

    REMEMBERED = 10_000
    """Room names whose answer is cached; the cache starts over past it."""

    def __init__(self, rooms: Mapping[str, History] | None = None) -> None:
        rooms = dict(rooms or {})
        for name, history in rooms.items():
            if not isinstance(history, History):
                raise TypeError(f"history for {name!r} is a websuckets.History, not {history!r}")
        self._exact = {name: history for name, history in rooms.items() if not _is_pattern(name)}
        self._patterns: list[tuple[Callable[[str], Any], History]] = [
            (re.compile(fnmatch.translate(name)).match, history) for name, history in rooms.items() if _is_pattern(name)
        ]
        self._known: dict[str, History | None] = {}
        self.active = bool(self._exact or self._patterns)
        """Whether any room keeps history (checked before every look-up, so apps without pay nothing more)."""

    def for_room(self, room: str) -> History | None:
        """The room's `History`, or ``None`` when its messages are not kept."""
        try:
            return self._known[room]
        except KeyError:
            pass
        history = self._exact.get(room)
        if history is None:
            history = next((history for matches, history in self._patterns if matches(room)), None)
        if len(self._known) >= self.REMEMBERED:
            self._known.clear()
        self._known[room] = history
        return history


def _is_pattern(name: str) -> bool:
    return any(char in name for char in "*?[")


def stampable(message: str | bytes, room: str) -> str:
    """``message`` if a position can be added to it: the JSON text of an object, as `ClientEvent` is."""
    if isinstance(message, str) and message[:1] == "{" and message[-1:] == "}":
        return message
    raise TypeError(
        f"room {room!r} keeps history: its messages are JSON objects such as ClientEvent(...), not {message[:40]!r}"
    )


def stamp(message: str, room: str, position: Position) -> str:
    """The room message as clients get it: the event's object with ``room``, ``epoch`` and ``offset`` added."""
    fields = f'"room":{to_json(room).decode()},"epoch":"{position.epoch}","offset":{position.offset}'
    return with_fields(message, fields)


class Read(NamedTuple):
    """What a backend read of a room's history found: its position now, and the entries after a position."""

    epoch: str
    top: int
    entries: Sequence[tuple[int, str]]
    """(offset, message) after the asked offset, oldest first; expired ones already left out."""


def recovered(since: Position, read: Read) -> bool:
    """Whether ``read`` holds every message after ``since``: same epoch, and each offset up to the top."""
    offsets = [offset for offset, _ in read.entries]
    return (
        since.epoch == read.epoch
        and since.offset <= read.top
        and offsets == list(range(since.offset + 1, read.top + 1))
    )


def replay(socket: Any, room: str, since: Position | None, read: Read, live: Sequence[tuple[int, str]] = ()) -> bool:
    """Bring one member up to date, without awaiting: what it missed, its position, then ``live``.

    ``live`` holds the stamped messages heard for it while the history was read. After a
    resume, those the history covered (up to the top) are left out: they were replayed, or
    lost with the rest. After a plain join (``since`` is ``None``) they all go out, those up
    to the top before the position. Returns whether the client recovered (``False`` for a
    plain join).
    """
    complete = since is not None and recovered(since, read)
    if since is None:
        messages = [message for offset, message in live if offset <= read.top]
    else:
        missed = read.entries if complete else ()
        messages = [stamp(message, room, Position(read.epoch, offset)) for offset, message in missed]
    messages.append(_position_event(room, Position(read.epoch, read.top), None if since is None else complete))
    messages.extend(message for offset, message in live if offset > read.top)
    send_batch(socket, messages)
    return complete


def _position_event(room: str, position: Position, complete: bool | None) -> ClientEvent:
    payload = {"room": room, "epoch": position.epoch, "offset": position.offset, "recovered": complete}
    return ClientEvent(POSITION_EVENT, payload)


def gap_event(room: str) -> ClientEvent:
    """Tells a member that messages of ``room`` were lost before they reached it: it should resume."""
    return ClientEvent(GAP_EVENT, {"room": room})

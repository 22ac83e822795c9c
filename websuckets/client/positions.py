"""`Positions`: the last position the client saw in each room with history, for resuming. No I/O.

The client keeps them from every room message and every ``websuckets position`` event, drops
the duplicates they reveal, and asks the server to resume from them after a reconnection
(see the "Python client" guide and `websuckets.resume`).

While a resume it sent for a room is unanswered, the room is *pending*: its position stays
where the resume starts, and the room messages shown meanwhile (live ones, and those the
resume replays) are noted by offset, so that each is shown once whatever order they come in.
An app that joins the client in its connect hook sends live messages, and a plain
``websuckets position``, before the server reads the resume.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator, MutableMapping
from dataclasses import dataclass, field
from typing import Any, NamedTuple

from ..wire import MAX_ROOMS, POSITION_EVENT, Position
from .events import ServerEvent

MAX_SEEN = 1000
"""Offsets a pending room notes; past them it stops waiting and moves to the largest (see `Positions`)."""


class Report(NamedTuple):
    """What a ``websuckets position`` event says: where the client stands in a room, and whether it recovered."""

    room: str
    position: Position
    recovered: bool | None

    @classmethod
    def read(cls, event: ServerEvent) -> Report | None:
        """The report in ``event``; ``None`` when it is not a well-formed ``websuckets position``."""
        payload = event.payload
        if event.event != POSITION_EVENT or not isinstance(payload, dict):
            return None
        room, epoch, offset, recovered = (payload.get(key) for key in ("room", "epoch", "offset", "recovered"))
        if not (isinstance(room, str) and isinstance(epoch, str) and type(offset) is int):
            return None
        return cls(room, Position(epoch, offset), recovered if isinstance(recovered, bool) else None)

    def resumed(self) -> dict[str, Any]:
        """The payload of the client's own ``resumed`` event."""
        return {
            "room": self.room,
            "recovered": self.recovered,
            "epoch": self.position.epoch,
            "offset": self.position.offset,
        }


@dataclass
class _Shown:
    """A room's messages shown past its position while a resume was unanswered."""

    resume: int | str | None
    """The id of the unanswered resume; ``None`` once it failed (the room is no longer pending)."""
    seen: set[int] = field(default_factory=set)


class Positions(MutableMapping[str, Position]):
    """Room -> the `Position` the client resumes the room from; at most ``max_rooms`` rooms.

    Past ``max_rooms``, the room updated longest ago is forgotten. Set a position yourself
    (``client.positions["lobby"] = Position(epoch, offset)``, saved from an earlier run, say)
    and the client resumes the room from it when it connects.

    The position is the last message seen in the room, except while the room is `pending`
    (a resume sent for it is unanswered): then it stays where the resume starts, and the
    offsets shown meanwhile are noted (at most ``max_seen``; past them the room stops waiting
    and moves to the largest) until the answering ``websuckets position``.
    """

    def __init__(self, max_rooms: int = MAX_ROOMS, max_seen: int = MAX_SEEN) -> None:
        self.max_rooms = max_rooms
        self.max_seen = max_seen
        self._rooms: dict[str, Position] = {}
        self._shown: dict[str, _Shown] = {}

    def __getitem__(self, room: str) -> Position:
        return self._rooms[room]

    def __setitem__(self, room: str, position: Position) -> None:
        self._rooms.pop(room, None)  # to the end: the most recently updated
        self._shown.pop(room, None)
        if len(self._rooms) >= self.max_rooms > 0:
            del self[next(iter(self._rooms))]
        if self.max_rooms > 0:
            self._rooms[room] = Position(*position)

    def __delitem__(self, room: str) -> None:
        del self._rooms[room]
        self._shown.pop(room, None)

    def __iter__(self) -> Iterator[str]:
        return iter(self._rooms)

    def __len__(self) -> int:
        return len(self._rooms)

    def __repr__(self) -> str:
        return f"Positions({self._rooms!r})"

    @property
    def pending(self) -> frozenset[str]:
        """The rooms a resume was sent for and not answered yet."""
        return frozenset(room for room, shown in self._shown.items() if shown.resume is not None)

    def observe(self, event: ServerEvent) -> bool:
        """Record the position ``event`` carries; ``False`` when it is a duplicate, to drop.

        A room message is a duplicate when its epoch is the one known for its room and its
        offset is not past the known one, or was shown while the room is pending. Offsets
        that jump are not judged: a client left out of a broadcast (``exclude=``) legitimately
        misses some. A plain ``websuckets position`` (``recovered`` null) of a pending room,
        in its epoch, moves nothing: the app joined the client before the server read its
        resume, which will still be answered.
        """
        position = event.position
        if event.room is not None and position is not None:
            return self._message(event.room, position)
        if (report := Report.read(event)) is not None:
            known, shown = self._rooms.get(report.room), self._shown.get(report.room)
            pending = shown is not None and shown.resume is not None
            if report.recovered is None and pending and known is not None and known.epoch == report.position.epoch:
                return True
            self[report.room] = report.position
        return True

    def _message(self, room: str, position: Position) -> bool:
        known, shown = self._rooms.get(room), self._shown.get(room)
        if known is not None and known.epoch == position.epoch:
            if position.offset <= known.offset:
                return False
            if shown is not None:
                if position.offset in shown.seen:
                    return False
                if shown.resume is not None:  # pending: the position stays where the resume starts
                    shown.seen.add(position.offset)
                    if len(shown.seen) > self.max_seen:
                        self[room] = Position(known.epoch, max(shown.seen))
                    return True
        self[room] = position
        return True

    def resuming(self, rooms: Iterable[str], resume: int | str) -> None:
        """A resume (the command's id) was sent for ``rooms``: they are pending until answered.

        What a failed resume of the same position had shown is kept, so that it is not shown
        again when the next resume replays it.
        """
        for room in rooms:
            if room in self._rooms:
                self._shown.setdefault(room, _Shown(resume)).resume = resume

    def failed(self, resume: int | str | None = None) -> None:
        """The resume ``resume`` (every unanswered one when ``None``: the connection dropped)
        will not be answered: its rooms are no longer pending."""
        for room, shown in list(self._shown.items()):
            if resume is None or shown.resume == resume:
                shown.resume = None
                if not shown.seen:
                    del self._shown[room]

    def resume_payloads(self, rooms: Iterable[str] | None = None) -> list[dict[str, Any]]:
        """The payloads of the ``websuckets resume`` commands for ``rooms`` (all known ones by default).

        One command for every `websuckets.wire.MAX_ROOMS` rooms; none when no position is known.
        """
        known = [(room, self._rooms[room]) for room in (self._rooms if rooms is None else rooms) if room in self._rooms]
        chunks = [known[start : start + MAX_ROOMS] for start in range(0, len(known), MAX_ROOMS)]
        return [{"rooms": {room: at._asdict() for room, at in chunk}} for chunk in chunks]

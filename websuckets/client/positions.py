"""`Positions`: the last position the client saw in each room with history, for resuming. No I/O.

The client keeps them from every room message and every ``websuckets position`` event, drops
the duplicates they reveal, and asks the server to resume from them after a reconnection
(see the "Python client" guide and `websuckets.resume`).
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator, MutableMapping
from typing import Any, NamedTuple

from ..history import POSITION_EVENT, Position
from ..resume import MAX_ROOMS
from .events import ServerEvent

__all__ = ["Positions", "Report"]


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


class Positions(MutableMapping[str, Position]):
    """Room -> the `Position` of the last message seen there; at most ``max_rooms`` rooms.

    Past ``max_rooms``, the room updated longest ago is forgotten. Set a position yourself
    (``client.positions["lobby"] = Position(epoch, offset)``, saved from an earlier run, say)
    and the client resumes the room from it when it connects.
    """

    def __init__(self, max_rooms: int = MAX_ROOMS) -> None:
        self.max_rooms = max_rooms
        self._rooms: dict[str, Position] = {}

    def __getitem__(self, room: str) -> Position:
        return self._rooms[room]

    def __setitem__(self, room: str, position: Position) -> None:
        self._rooms.pop(room, None)  # to the end: the most recently updated
        if len(self._rooms) >= self.max_rooms > 0:
            del self._rooms[next(iter(self._rooms))]
        if self.max_rooms > 0:
            self._rooms[room] = Position(*position)

    def __delitem__(self, room: str) -> None:
        del self._rooms[room]

    def __iter__(self) -> Iterator[str]:
        return iter(self._rooms)

    def __len__(self) -> int:
        return len(self._rooms)

    def __repr__(self) -> str:
        return f"Positions({self._rooms!r})"

    def observe(self, event: ServerEvent) -> bool:
        """Record the position ``event`` carries; ``False`` when it is a duplicate, to drop.

        A room message is a duplicate when its epoch is the one known for its room and its
        offset is not past the known one. Offsets that jump are not judged: a client left out
        of a broadcast (``exclude=``) legitimately misses some.
        """
        position = event.position
        if event.room is not None and position is not None:
            known = self._rooms.get(event.room)
            if known is not None and known.epoch == position.epoch and position.offset <= known.offset:
                return False
            self[event.room] = position
        elif (report := Report.read(event)) is not None:
            self[report.room] = report.position
        return True

    def resume_payloads(self, rooms: Iterable[str] | None = None) -> list[dict[str, Any]]:
        """The payloads of the ``websuckets resume`` commands for ``rooms`` (all known ones by default).

        One command for every `websuckets.resume.MAX_ROOMS` rooms; none when no position is known.
        """
        known = [(room, self._rooms[room]) for room in (self._rooms if rooms is None else rooms) if room in self._rooms]
        chunks = [known[start : start + MAX_ROOMS] for start in range(0, len(known), MAX_ROOMS)]
        return [{"rooms": {room: at._asdict() for room, at in chunk}} for chunk in chunks]

"""Joining and leaving rooms for this process's own clients.

A join takes effect here at once (the membership, in the order the joins were asked), then the
process hears the room's channel and writes the client's record; a history room's live messages
are held until the client's catch-up has read what it missed (`HistorySync`). A join whose
hearing or write fails leaves no membership behind. Once a room has no member here, the process
stops hearing it and tracking its history.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Coroutine
from typing import Any

from ...presence import Presence
from ...user import User
from ...wire import Position
from .history_sync import CatchUp, HistorySync
from .keys import Keys
from .link import RedisLink


class Joins:
    """The rooms of this process's clients, kept in `Presence` and in what the process hears."""

    def __init__(
        self,
        *,
        presence: Presence,
        link: RedisLink,
        keys: Keys,
        sync: HistorySync,
        write: Callable[[User, str], Awaitable[None]],
        publish: Callable[[User], None],
        keeps_history: Callable[[str], bool],
        resume_position: Callable[[User, str], Position | None],
    ) -> None:
        self._presence = presence
        self._link = link
        self._keys = keys
        self._sync = sync
        self._write = write
        """Writes a client's record now (an error raises), ``what`` naming the operation for the log."""
        self._publish = publish
        """Queues a write of a client's record (a no-op once it has left)."""
        self._keeps_history = keeps_history
        self._resume_position = resume_position

    def join(self, user: User, room: str) -> Coroutine[Any, Any, None]:
        """Join ``user`` to ``room`` here, now; what it returns hears the room, writes the record and,
        in a history room, catches the client up."""
        if not self._keeps_history(room):
            was_member = room in user.rooms
            self._presence.join(user, room)
            return self._finish_plain(user, room, was_member)
        catch_up = self._sync.start_catch_up(user, room)
        catch_up.was_member = room in user.rooms
        self._presence.join(user, room)
        return self._finish_held(user, room, catch_up)

    def leave(self, user: User, room: str) -> None:
        """Take ``user`` out of ``room`` here (its record is the caller's to write)."""
        self._presence.leave(user, room)
        self.left_here(room)

    def left_here(self, room: str) -> None:
        """A member here left ``room``: once none is left, stop hearing the room and tracking its history."""
        if not self._presence.has_members_here(room):
            self._sync.untrack_if_empty(room)
            self._link.stop_hearing(self._keys.room_channel(room))

    async def _finish_plain(self, user: User, room: str, was_member: bool) -> None:
        try:
            await self._link.hear(self._keys.room_channel(room), "join")
            await self._write(user, "join")
        except BaseException:
            self._undo(user, room, was_member)
            raise

    async def _finish_held(self, user: User, room: str, catch_up: CatchUp) -> None:
        try:
            await self._link.hear(self._keys.room_channel(room), "join")  # before the catch-up reads
            await self._write(user, "join")
        except BaseException:
            self._sync.release(user, room, catch_up)
            self._undo(user, room, catch_up.was_member)
            raise
        await self._sync.catch_up(user, room, self._resume_position(user, room), catch_up)

    def _undo(self, user: User, room: str, was_member: bool) -> None:
        """A join whose write failed leaves no membership behind. Had the write reached Redis after all
        (no answer in time), the record written next, after it in the writer's order, takes it back."""
        if not was_member:
            self.leave(user, room)
            self._publish(user)

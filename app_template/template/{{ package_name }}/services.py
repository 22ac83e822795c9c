"""The services handlers use, and the dishka provider that builds them.

Handlers ask for a service by its type (``FromDishka[Notebook]``) and never build
one, so tests swap any of them for a fake by providing the same type.
"""

from collections import deque
from datetime import UTC, datetime
from typing import Protocol

from dishka import Provider, Scope, provide

from .models import Note
from .settings import Settings


class Clock(Protocol):
    """What the app needs of a clock: tests provide a frozen one."""

    def now(self) -> datetime: ...


class SystemClock:
    """The real clock, in UTC."""

    def now(self) -> datetime:
        return datetime.now(UTC)


class Notebook:
    """Notes kept in memory, shared by all clients; a database could stand behind it."""

    def __init__(self, clock: Clock, max_notes: int) -> None:
        self._clock = clock
        self._notes: deque[Note] = deque(maxlen=max_notes)
        self._next_id = 1

    def add(self, text: str) -> Note:
        """Keep a note, forgetting the oldest one if the notebook is full."""
        note = Note(id=self._next_id, text=text, created_at=self._clock.now())
        self._next_id += 1
        self._notes.append(note)
        return note

    def notes(self) -> list[Note]:
        """The notes kept, oldest first."""
        return list(self._notes)


class AppProvider(Provider):
    """The real services, one of each for the whole app (``Scope.APP``)."""

    scope = Scope.APP

    @provide
    def settings(self) -> Settings:
        return Settings.from_env()

    clock = provide(SystemClock, provides=Clock)

    @provide
    def notebook(self, clock: Clock, settings: Settings) -> Notebook:
        return Notebook(clock, settings.max_notes)

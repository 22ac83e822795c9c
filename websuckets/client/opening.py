"""`connect`: a `Client` made and opened in one call, awaited or used with ``async with``."""

from __future__ import annotations

from collections.abc import Generator
from types import TracebackType
from typing import Any

from .connection import Client


class connect:  # noqa: N801  (used like a function, as websockets' own connect)
    """``async with connect(url, **options) as client`` or ``client = await connect(url, **options)``.

    Creates a `Client` and waits until its connection opens (see `Client.start`); ``async with``
    closes it on the way out. The options are `Client`'s.
    """

    def __init__(self, url: str, **options: Any) -> None:
        self.client = Client(url, **options)

    def __await__(self) -> Generator[Any, None, Client]:
        return self._start().__await__()

    async def _start(self) -> Client:
        await self.client.start()
        return self.client

    async def __aenter__(self) -> Client:
        return await self._start()

    async def __aexit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        await self.client.close()

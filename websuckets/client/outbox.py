"""`Outbox`: how a `Client`'s commands go out: with the token as it is then, or kept until connected.

Commands sent while disconnected wait here, in order, up to ``max_queue``; once the connection
opens they go out right after the resume. A request that timed out, or a stream that was left,
while its command waited is never sent.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Callable
from typing import Any

from websockets.asyncio.client import ClientConnection

from .errors import ClientError
from .frames import Frames
from .pending import PendingRequests
from .streams import Streams


class Outbox:
    """The commands of one `Client`: written now, or kept for the next connection."""

    def __init__(
        self,
        frames: Frames,
        max_queue: int,
        pending: PendingRequests,
        streams: Streams,
        token: Callable[[], str | None],
    ) -> None:
        self.max_queue = max_queue
        self._frames = frames
        self._pending = pending
        self._streams = streams
        self._token = token
        self._kept: deque[dict[str, Any]] = deque()

    def keep(self, command: dict[str, Any]) -> None:
        """Keep ``command`` for the next connection; `ClientError` ``queue_full`` past ``max_queue``."""
        if len(self._kept) >= self.max_queue:
            raise ClientError("queue_full", f"{self.max_queue} commands already wait for the connection")
        self._kept.append(command)

    async def flush(self, socket: ClientConnection) -> None:
        """Send the kept commands, oldest first (each leaves once sent: a drop meanwhile keeps the rest)."""
        while self._kept:
            await self.transmit(socket, self._kept[0])
            if self._kept:  # clear() may have emptied it meanwhile
                self._kept.popleft()

    def clear(self) -> None:
        self._kept.clear()

    async def transmit(self, socket: ClientConnection, command: dict[str, Any]) -> None:
        """Send a command of `Client.send`, `Client.request` or `Client.stream`; a request or stream
        that is no longer awaited is skipped."""
        waiting = None
        if "id" in command:
            waiting = self._pending.get(command["id"]) or self._streams.get(command["id"])
            if waiting is None:
                return
        await self.write(socket, command)
        if waiting is not None:
            waiting.sent = True

    async def write(self, socket: ClientConnection, command: dict[str, Any]) -> None:
        """Send ``command`` as it is, with the token as it is now."""
        token = self._token()
        await socket.send(self._frames.encode(command if token is None else {**command, "token": token}))

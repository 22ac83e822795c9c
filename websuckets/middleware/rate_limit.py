"""``RateLimit``: a token bucket per connection, and tighter ones for chosen commands.

Each connection may send ``burst`` commands at once and ``rate`` a second after that. A command
over the limit is refused with ``rate_limited`` (``details``: ``retry_after``, in seconds); each
refusal also spends a token, so a client that keeps going goes into debt, and once the debt
reaches ``close_after`` commands the connection is closed with 1008 (policy violation). A
client that waits ``retry_after`` before sending again is never closed.

It is an ordinary middleware, placed right after error mapping (before authentication, so that
it also bounds token guessing). It sees commands that were routed: frames that fail to parse or
name no command never reach a chain; the dispatcher answers those cheaply and yields to other
connections (see ``websuckets.dispatcher``), and a flood of them is bounded by the socket's own
flow control.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Awaitable, Mapping

from websockets.frames import CloseCode

from ..connection import close_draining
from ..context import CallNext, Context
from ..exc import RateLimited

logger = logging.getLogger("websuckets.commands")


class RateLimit:
    """A per-connection rate limit, the middleware that applies it.

    Args:
        rate: commands a second, sustained.
        burst: commands that may arrive at once (the bucket's size).
        close_after: refused commands in debt before the connection is closed with 1008;
            ``burst`` when ``None``.
        per_command: tighter limits for some commands, by full name: ``{"auth login": (0.2, 5)}``
            (a ``(rate, burst)`` pair each). A command pays into both buckets.
    """

    __slots__ = ("burst", "close_after", "per_command", "rate")

    def __init__(
        self,
        rate: float = 100.0,
        burst: float = 200.0,
        *,
        close_after: float | None = None,
        per_command: Mapping[str, tuple[float, float]] | None = None,
    ) -> None:
        if rate <= 0 or burst < 1:
            raise ValueError("a rate limit needs rate > 0 and burst >= 1")
        self.rate = rate
        self.burst = burst
        self.close_after = burst if close_after is None else close_after
        self.per_command = {name: RateLimit(r, b) for name, (r, b) in (per_command or {}).items()}

    def __repr__(self) -> str:
        return f"RateLimit(rate={self.rate}, burst={self.burst}, close_after={self.close_after})"

    def take(self, buckets: dict[object, list[float]], key: object, now: float) -> float:
        """Spend one token of the bucket ``buckets[key]``; the seconds to wait if there was none, else 0."""
        bucket = buckets.get(key)
        if bucket is None:
            bucket = buckets[key] = [self.burst, now]
        tokens = bucket[0] + (now - bucket[1]) * self.rate
        if tokens > self.burst:
            tokens = self.burst
        bucket[0], bucket[1] = tokens - 1, now  # a refusal spends a token too: debt
        return 0.0 if tokens >= 1 else (1 - tokens) / self.rate

    def __call__(self, ctx: Context, call_next: CallNext) -> Awaitable[None]:
        """The rest of the chain's coroutine for a command under the limit: no coroutine of its own.

        A refused command gets `_refuse`'s coroutine, which raises `RateLimited` (or closes the
        connection) where the step before awaits it, as an ``async def`` middleware would.
        """
        buckets = ctx.connection.buckets
        now = time.monotonic()
        bucket = buckets.get(self)
        if bucket is not None and not self.per_command:  # `take`, inline, for a command under the limit
            tokens = bucket[0] + (now - bucket[1]) * self.rate
            if tokens >= 1:
                bucket[0], bucket[1] = (tokens if tokens < self.burst else self.burst) - 1, now
                return call_next(ctx)
        wait = self.take(buckets, self, now)
        limit: RateLimit = self
        if not wait and self.per_command:
            command_limit = self.per_command.get(ctx.event)
            if command_limit is not None:
                wait, limit = command_limit.take(buckets, (self, ctx.event), now), command_limit
        if not wait:
            return call_next(ctx)
        return self._refuse(ctx, wait, limit)

    async def _refuse(self, ctx: Context, wait: float, limit: RateLimit) -> None:
        if wait * limit.rate > limit.close_after:  # the debt, after this refusal
            logger.warning("client %s kept sending over its rate limit: closing with 1008", ctx.socket.id)
            if ctx.connection.task not in (None, asyncio.current_task()):  # a stream's task: the reader drains
                await ctx.socket.close(CloseCode.POLICY_VIOLATION, "rate limit exceeded")
                return
            await close_draining(ctx.socket, CloseCode.POLICY_VIOLATION, "rate limit exceeded")
            return
        raise RateLimited({"retry_after": round(wait, 3)})

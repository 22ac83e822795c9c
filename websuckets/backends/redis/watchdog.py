"""`Watchdog`: the link gives up on Redis once it has been unusable for ``exit_after`` seconds in a row.

Unusable means: the connection is lost and not rebuilt (Redis down, unreachable, not answering, or
answering every reconnection with an error), or it stands but the heartbeat, the write every process
makes every ``heartbeat`` seconds whether or not it has traffic, fails (a demoted replica answering
``READONLY``, a permission withdrawn). A refusal for want of memory does not count: the heartbeat runs
under out-of-memory, and a restart would not free any. The link tells the watchdog of each failure and
each success (`failing`, `usable`): a timer, not a loop, so that nothing runs while Redis answers.

Once it gives up it logs one ERROR line naming the cause and the duration, and `wait` returns the
error for the app to stop on (`websuckets.backends.base.Backend.failure`).
"""

from __future__ import annotations

import asyncio
import logging
import time

from ...exc import BackendUnavailable

logger = logging.getLogger("websuckets.redis")


class Watchdog:
    """Gives up once Redis has been unusable for ``after`` seconds without a break; never if ``after`` is None."""

    def __init__(self, after: float | None, where: str) -> None:
        self.after = after
        self.where = where
        """Redis's URL, without its password."""
        self.error: BackendUnavailable | None = None
        """Why it gave up, once it has."""
        self._since: float | None = None
        self._cause = ""
        self._timer: asyncio.TimerHandle | None = None
        self._gave_up = asyncio.Event()

    def failing(self, cause: str) -> None:
        """Redis is unusable now, for ``cause`` (``Type: message``): the clock starts, if it was not running."""
        if self.after is None or self.error is not None:
            return
        self._cause = cause
        if self._since is None:
            self._since = time.monotonic()
            self._timer = asyncio.get_running_loop().call_later(self.after, self._expired)

    def usable(self) -> None:
        """Redis answered: the clock stops."""
        if self._since is not None:
            self._since = None
            self.stop()

    def stop(self) -> None:
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None

    async def wait(self) -> BackendUnavailable:
        """The error to stop on, once the watchdog has given up."""
        await self._gave_up.wait()
        assert self.error is not None
        return self.error

    def _expired(self) -> None:
        self._timer = None
        if self._since is None:
            return
        unusable = time.monotonic() - self._since
        self.error = BackendUnavailable(
            f"Redis at {self.where} unusable for {unusable:.1f} s (exit_after={self.after:g}), "
            f"the latest failure: {self._cause}; stopping so that this process is restarted"
        )
        logger.error("%s", self.error.details)
        self._gave_up.set()

"""`Backoff`: how long the client waits before each reconnection attempt. No I/O."""

from __future__ import annotations

import random
from collections.abc import Callable
from dataclasses import dataclass


@dataclass(frozen=True, slots=True)
class Backoff:
    """Exponential delays, capped, partly random, as websuckets.js waits.

    Attempt ``n`` (0 first) waits ``min(max_delay, min_delay * factor ** n)``, of which the
    fraction ``jitter`` is random: a delay ``d`` becomes a value between ``d * (1 - jitter)``
    and ``d``, so that clients dropped together do not all come back at once.

    Args:
        min_delay: seconds before the first attempt.
        max_delay: the cap on the delay, in seconds.
        factor: how much the delay grows after each failed attempt.
        jitter: the random part of each delay, from 0 (none) to 1 (all of it).
        max_retries: attempts in a row before giving up; ``None`` for no limit.
    """

    min_delay: float = 0.25
    max_delay: float = 10.0
    factor: float = 2.0
    jitter: float = 0.5
    max_retries: int | None = None

    def __post_init__(self) -> None:
        if not 0 <= self.min_delay <= self.max_delay:
            raise ValueError(f"the delays must satisfy 0 <= min_delay <= max_delay: {self.min_delay}, {self.max_delay}")
        if self.factor < 1 or not 0 <= self.jitter <= 1:
            raise ValueError(f"factor must be >= 1 and jitter in [0, 1]: {self.factor}, {self.jitter}")

    def delay(self, attempt: int, random: Callable[[], float] = random.random) -> float | None:
        """Seconds to wait before attempt ``attempt`` (0 first); ``None`` once past ``max_retries``."""
        if self.max_retries is not None and attempt >= self.max_retries:
            return None
        try:
            capped = min(self.max_delay, self.min_delay * self.factor**attempt)
        except OverflowError:  # hours of attempts: the cap was reached long ago
            capped = self.max_delay
        return capped * (1 - self.jitter * random())

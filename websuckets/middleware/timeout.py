"""``CommandTimeouts``: a stuck handler is cancelled and its client gets ``command_timeout``.

The connection goes on: the next command is handled as usual. Placed innermost, right around
validation and the handler, so that the time counts the handler's own work.
"""

from __future__ import annotations

import asyncio
from collections.abc import Mapping

from ..context import CallNext, CommandInfo, Context
from ..exc import CommandTimeout


class CommandTimeouts:
    """Time limits for handlers, in seconds: ``default`` for every command, ``per_command`` by full name.

    A limit of ``None`` means none. The middleware is left out of the chains of commands that
    have no limit.
    """

    __slots__ = ("default", "per_command")

    def __init__(self, default: float | None = None, per_command: Mapping[str, float | None] | None = None) -> None:
        self.default = default
        self.per_command = dict(per_command or {})

    def limit_for(self, command: str) -> float | None:
        """The time limit of a command, or ``None``."""
        return self.per_command.get(command, self.default)

    def applies_to(self, command: CommandInfo) -> bool:
        """Whether ``command`` has a limit: the app leaves this middleware out of the others' chains."""
        return self.limit_for(command.name) is not None

    def __repr__(self) -> str:
        return f"CommandTimeouts(default={self.default}, per_command={self.per_command})"

    async def __call__(self, ctx: Context, call_next: CallNext) -> None:
        limit = self.limit_for(ctx.event)
        if limit is None:
            await call_next(ctx)
            return
        timeout = asyncio.timeout(limit)
        try:
            async with timeout:
                await call_next(ctx)
        except TimeoutError:
            if not timeout.expired():
                raise  # the handler's own TimeoutError: an error of the handler
            raise CommandTimeout(f"the command took longer than {limit} s and was cancelled") from None

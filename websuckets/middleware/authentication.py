"""``authenticate``: protected commands need the valid token of a verified user."""

from __future__ import annotations

from ..context import CallNext, Context
from ..exc import Unauthorized

__all__ = ["authenticate"]


async def authenticate(ctx: Context, call_next: CallNext) -> None:
    """Refuse a protected command unless its token is a valid, unexpired one.

    A token issued on an earlier connection verifies this one too (a client that
    reconnects keeps its token).
    """
    if ctx.command.protected:
        await _check_token(ctx)
    await call_next(ctx)


async def _check_token(ctx: Context) -> None:
    if ctx.token is None:
        raise Unauthorized("this command needs a token")
    sessions = ctx.connection.sessions
    record = await sessions.find_valid_token(ctx.token)
    if record is None:
        raise Unauthorized("the token is invalid or has expired")
    if ctx.user.id != record.user_id or ctx.user.token != ctx.token:
        sessions.adopt(ctx.user, ctx.token, record)

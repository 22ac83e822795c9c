"""``authenticate``: protected commands need the valid token of a verified user."""

from __future__ import annotations

from ..context import CallNext, CommandInfo, Context
from ..exc import Unauthorized


async def authenticate(ctx: Context, call_next: CallNext) -> None:
    """Refuse a protected command unless its token is a valid, unexpired one.

    A token issued on an earlier connection verifies this one too (a client that
    reconnects keeps its token). On an app with handshake authentication
    (`websuckets.handshake_auth.HandshakeAuth`), a command without a ``token`` field uses
    the token its connection is verified with.

    It ``applies_to`` protected commands only: the app leaves it out of the others' chains.
    """
    if ctx.command.protected:
        await _check_token(ctx)
    await call_next(ctx)


def _protected(command: CommandInfo) -> bool:
    return command.protected


authenticate.applies_to = _protected  # type: ignore[attr-defined]  # see websuckets.middleware.chain


async def _check_token(ctx: Context) -> None:
    sessions = ctx.connection.sessions
    token = ctx.token
    if token is None and ctx.connection.uses_connection_token:
        token = ctx.user.token
        if token is None and sessions.lapsed(ctx.user):
            raise Unauthorized(Unauthorized.EXPIRED)
    if token is None:
        raise Unauthorized(Unauthorized.MISSING)
    record = await sessions.find_valid_token(token)
    if record is None:
        raise Unauthorized(Unauthorized.EXPIRED if sessions.expired(token) else Unauthorized.INVALID)
    if ctx.user.id != record.user_id or ctx.user.token != token:
        sessions.adopt(ctx.user, token, record)

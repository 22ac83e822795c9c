"""``HandshakeAuth``: authenticate a connection at the handshake, before its first command.

A client presents a token that the app issued (by setting ``User.token``) when it opens the
websocket, in the first of these places that the app looks at:

- a header, ``Authorization: Bearer <token>`` by default: scripts, servers, mobile apps;
- the ``Sec-WebSocket-Protocol`` header, the one header a browser lets a page set:
  ``new WebSocket(url, ["websuckets", "websuckets.token." + token])``. The server answers
  with the ``websuckets`` subprotocol, never with the token: a browser fails a handshake
  whose answer names no subprotocol it offered;
- a cookie (``cookie="name"``), for pages of the app's own site;
- the query string (``query="name"``): URLs end up in the logs of proxies, so it is off
  unless named.

The check looks the token up with the machinery of the command's ``token`` field
(`websuckets.store.SessionStore.find_valid_token`) and refuses the handshake with HTTP 401
when the token is missing (if ``required``), unknown, revoked or expired; ``authorize`` may
refuse a valid one with 403. The token is then carried to the connection, whose `User` is
verified with it before the connect hooks run, as if it had come with a protected command.
"""

from __future__ import annotations

import contextlib
import inspect
import logging
import weakref
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass
from http import HTTPStatus
from http.cookies import CookieError, SimpleCookie
from urllib.parse import parse_qs, urlsplit

from websockets.asyncio.server import ServerConnection
from websockets.exceptions import InvalidHeader
from websockets.headers import parse_subprotocol
from websockets.http11 import Request, Response
from websockets.typing import Subprotocol

from . import wire
from .exc import BackendUnavailable
from .identity import TokenRecord, UserId
from .store import SessionStore
from .user import User
from .wire import TOKEN_SUBPROTOCOL

__all__ = ["SUBPROTOCOL", "TOKEN_SUBPROTOCOL", "Authorize", "HandshakeAuth", "HandshakeTokens", "select_subprotocol"]

logger = logging.getLogger("websuckets.handshake")

SUBPROTOCOL = Subprotocol(wire.SUBPROTOCOL)
"""The subprotocol a websuckets server selects whenever a client offers it (``wire.SUBPROTOCOL``, typed)."""

Authorize = Callable[[UserId, Request], bool | Awaitable[bool]]
"""``authorize(user_id, request)``: whether a verified user may open this websocket (403 if not)."""


@dataclass(frozen=True, slots=True)
class HandshakeAuth:
    """Where to find a token at the handshake, and what to do without one.

    Pass it as ``WebSuckets(handshake_auth=HandshakeAuth(...))``.

    Args:
        required: refuse a handshake without a token (401). With ``False`` such a client
            connects unverified (it may sign in with a command); a token that is given must
            still be valid.
        header: the header holding the token; for ``Authorization``, after ``Bearer``.
            ``None`` to ignore headers.
        subprotocol: accept ``websuckets.token.<token>`` among the offered subprotocols.
        cookie: the name of a cookie holding the token, or ``None``.
        query: the name of a query-string parameter holding the token, or ``None``.
        authorize: ``authorize(user_id, request)``, plain or async: ``False`` refuses the
            handshake of a valid token with 403.
    """

    required: bool = True
    header: str | None = "Authorization"
    subprotocol: bool = True
    cookie: str | None = None
    query: str | None = None
    authorize: Authorize | None = None

    def token_of(self, request: Request) -> str | None:
        """The token a handshake request carries, from the first place that has one."""
        headers = request.headers
        if self.header is not None:
            values = headers.get_all(self.header)
            value = values[0] if len(values) == 1 else None  # two of them: neither is trusted
            if value is not None and self.header.lower() == "authorization":
                scheme, _, value = value.partition(" ")
                value = value if scheme.lower() == "bearer" else None
            if value := (value or "").strip():
                return value
        if self.subprotocol:
            for offered in _subprotocols(headers.get_all("Sec-WebSocket-Protocol")):
                if offered.startswith(TOKEN_SUBPROTOCOL) and len(offered) > len(TOKEN_SUBPROTOCOL):
                    return offered[len(TOKEN_SUBPROTOCOL) :]
        if self.cookie is not None:
            cookies = SimpleCookie()
            with contextlib.suppress(CookieError):  # a malformed Cookie header holds no token
                cookies.load("; ".join(headers.get_all("Cookie")))
            morsel = cookies.get(self.cookie)
            if morsel is not None and morsel.value:
                return morsel.value
        if self.query is not None:
            parameters = parse_qs(urlsplit(request.path).query).get(self.query)
            if parameters and parameters[0]:
                return parameters[0]
        return None

    def bind(self, sessions: SessionStore) -> HandshakeTokens:
        """The check and the adoption of its tokens for a started app's session store."""
        return HandshakeTokens(self, sessions)


class HandshakeTokens:
    """`HandshakeAuth` at work for one started app: the handshake check, and the adoption of its tokens.

    The check (a ``process_request`` hook) keeps each verified token for its connection;
    the dispatcher calls `adopt` with the connection's new `User`.
    """

    def __init__(self, auth: HandshakeAuth, sessions: SessionStore) -> None:
        self.auth = auth
        self.sessions = sessions
        self._verified: weakref.WeakKeyDictionary[ServerConnection, tuple[str, TokenRecord, int]] = (
            weakref.WeakKeyDictionary()
        )

    async def __call__(self, connection: ServerConnection, request: Request) -> Response | None:
        """Refuse the handshake (401, 403, or 503 while the backend is away), or keep its token."""
        if "websocket" not in request.headers.get("Upgrade", "").lower():
            return None  # plain HTTP: static files, not a websocket
        token = self.auth.token_of(request)
        if token is None:
            if not self.auth.required:
                return None
            connection.logger.info("handshake refused: no token")
            return _unauthorized(connection, "A token is required\n", "")
        revocations = self.sessions.revocations
        try:
            record = await self.sessions.find_valid_token(token)
        except BackendUnavailable:
            logger.warning("handshake refused: the backend did not answer a token look-up")
            response = connection.respond(HTTPStatus.SERVICE_UNAVAILABLE, "Try again later\n")
            response.headers["Retry-After"] = "5"
            return response
        if record is None:
            expired = self.sessions.expired(token)
            connection.logger.info("handshake refused: %s token", "expired" if expired else "invalid")
            why = "The token has expired" if expired else "The token is invalid"
            return _unauthorized(connection, why + "\n", f', error="invalid_token", error_description="{why}"')
        if self.auth.authorize is not None:
            allowed = self.auth.authorize(record.user_id, request)
            if inspect.isawaitable(allowed):
                allowed = await allowed
            if not allowed:
                connection.logger.info("handshake refused: user %r not authorized", record.user_id)
                return connection.respond(HTTPStatus.FORBIDDEN, "Forbidden\n")
        self._verified[connection] = (token, record, revocations)
        return None

    async def adopt(self, socket: ServerConnection, user: User) -> bool:
        """Verify a new connection's ``user`` with its handshake token; ``False`` to refuse it.

        A token revoked between the handshake and now verifies nobody; the connection is then
        refused if a token is ``required``. So is a connection that skipped the handshake check
        (served by ``websockets.serve(app.handler)`` directly, say).
        """
        verified = self._verified.pop(socket, None)
        if verified is None:
            return not self.auth.required
        token, record, revocations = verified
        if revocations != self.sessions.revocations:  # something was revoked meanwhile: look again
            found = await self.sessions.find_valid_token(token)
            if found is None:
                return not self.auth.required
            record = found
        self.sessions.adopt(user, token, record)
        return True


def select_subprotocol(connection: ServerConnection, subprotocols: Sequence[Subprotocol]) -> Subprotocol | None:
    """Select ``websuckets`` when the client offers it, else none (websockets' ``select_subprotocol``)."""
    return SUBPROTOCOL if SUBPROTOCOL in subprotocols else None


def _subprotocols(values: Sequence[str]) -> list[str]:
    offered: list[str] = []
    for value in values:
        try:
            offered += parse_subprotocol(value)
        except InvalidHeader:
            continue  # websockets refuses the handshake for this header itself
    return offered


def _unauthorized(connection: ServerConnection, text: str, params: str) -> Response:
    response = connection.respond(HTTPStatus.UNAUTHORIZED, text)
    response.headers["WWW-Authenticate"] = f'Bearer realm="websuckets"{params}'
    return response

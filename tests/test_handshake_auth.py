"""Handshake authentication: a token in a header, the subprotocol, a cookie or the query string.

The tests that take ``make_backend`` or ``serve`` (issuing, checking, expiring and revoking tokens) are part
of the backend contract: they run on every backend of tests/conftest.py's list.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import Callable
from typing import Any

import pytest
from pydantic import BaseModel
from websockets.asyncio.client import connect
from websockets.asyncio.server import ServerConnection, serve
from websockets.datastructures import Headers
from websockets.exceptions import ConnectionClosed, InvalidStatus
from websockets.frames import CloseCode
from websockets.http11 import Request

from websuckets import CommandGroup, Context, Session, Token, User, WebSuckets
from websuckets.backends import Backend, MemoryBackend
from websuckets.backends.base import TokenRecord
from websuckets.exc import BackendUnavailable, Unauthorized
from websuckets.handshake_auth import HandshakeAuth
from websuckets.testing import TestClient

ALICE = "alice"
BackendFactory = Callable[[], Backend]
Serve = Callable[..., TestClient]


class Login(BaseModel):
    name: str


def make_app(auth: HandshakeAuth | None = None, **options: Any) -> WebSuckets:
    app = WebSuckets(handshake_auth=auth if auth is not None else HandshakeAuth(), **options)
    group = CommandGroup()

    @group.command("login")
    async def login(socket: ServerConnection, model: Login, user: User, ctx: Context) -> None:
        user.id = model.name
        user.token = Token.generate()
        await ctx.reply("token", user.token)

    @group.command("whoami", protected=True)
    async def whoami(socket: ServerConnection, user: User, ctx: Context) -> None:
        await ctx.reply("you are", user.id)

    @group.command("logout", protected=True)
    async def logout(socket: ServerConnection, user: User, ctx: Context) -> None:
        user.token = None
        await ctx.reply("bye")

    app.include_command_group(group)
    return app


def bearer(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


async def test_a_bearer_header_verifies_the_user_before_its_first_command(make_backend: BackendFactory) -> None:
    """The User is verified with the handshake's token when the connect hooks run; no token field is needed."""
    app = make_app(backend=make_backend())
    seen: list[tuple[object, bool]] = []

    @app.on_connect
    async def hello(user: User) -> None:
        seen.append((user.id, user.id in Session.verified))

    async with TestClient(app, real=True) as client:
        token = app.issue_token(ALICE)
        alice = await client.connect(headers=bearer(token))
        assert seen == [(ALICE, True)]
        assert Session.online[alice.client_id].token == token
        assert (await alice.request("whoami")).payload == ALICE
        assert (await alice.request("whoami", token=token)).payload == ALICE  # a token field still works


@pytest.mark.parametrize(
    ("auth", "how"),
    [
        (HandshakeAuth(), {"subprotocols": ["websuckets", "websuckets.token.{token}"]}),
        (HandshakeAuth(cookie="session"), {"headers": {"Cookie": "theme=dark; session={token}"}}),
        (HandshakeAuth(query="token"), {"path": "/chat?room=1&token={token}"}),
        (HandshakeAuth(header="X-Token"), {"headers": {"X-Token": "{token}"}}),
    ],
    ids=["subprotocol", "cookie", "query", "header"],
)
async def test_every_place_a_token_can_come_from(auth: HandshakeAuth, how: dict[str, Any], serve: Serve) -> None:
    """The subprotocol, a named cookie, a named query parameter, or another header: each verifies the user."""
    async with serve(make_app, auth=auth) as client:
        token = client.app.issue_token(ALICE)
        filled = json.loads(json.dumps(how).replace("{token}", token))
        alice = await client.connect(**filled)
        assert (await alice.request("whoami")).payload == ALICE


async def test_the_server_answers_the_websuckets_subprotocol_never_the_token(make_backend: BackendFactory) -> None:
    """Browsers fail a handshake whose answer names no subprotocol they offered: the server picks 'websuckets'."""
    app = make_app(backend=make_backend())
    async with TestClient(app, real=True) as client:
        token = app.issue_token(ALICE)
        offered = ["websuckets", f"websuckets.token.{token}"]
        async with connect(client.url, subprotocols=offered) as ws:  # type: ignore[arg-type]
            assert ws.subprotocol == "websuckets"
            assert token not in str(ws.response.headers)
            await ws.send(json.dumps({"event": "whoami", "id": 1}))
            assert json.loads(await ws.recv())["payload"] == ALICE


@pytest.mark.parametrize(
    ("token", "description"),
    [(None, None), ("wrong", "The token is invalid"), ("expired", "The token has expired")],
)
async def test_no_token_or_a_bad_one_is_refused_with_401(
    token: str | None,
    description: str | None,
    make_backend: BackendFactory,
    backend_name: str,
    request: pytest.FixtureRequest,
) -> None:
    """401 with WWW-Authenticate: Bearer; an error description for a token given, telling expired from invalid."""
    if backend_name in ("redis", "redis-cluster") and token == "expired":
        request.applymarker(
            pytest.mark.xfail(
                strict=True,
                reason="Redis drops a token's key at its expiry, so a token that expired before this process saw it "
                "is unknown: 'The token is invalid' (SessionStore.expired says so); MemoryBackend keeps the record",
            )
        )
    app = make_app(token_ttl=0.05, backend=make_backend())
    async with TestClient(app, real=True) as client:
        if token == "expired":
            token = app.issue_token(ALICE)
            await asyncio.sleep(0.1)
            with pytest.raises(InvalidStatus):  # found expired here...
                await client.connect(headers=bearer(token))
        with pytest.raises(InvalidStatus) as refused:  # ...and still told so afterwards
            await client.connect(headers=bearer(token) if token is not None else None)
        response = refused.value.response
        assert response.status_code == 401
        challenge = response.headers["WWW-Authenticate"]
        assert challenge.startswith("Bearer")
        if description is not None:
            assert f'error="invalid_token", error_description="{description}"' in challenge
            assert response.body.decode().strip() == description
        assert len(Session.online) == 0


async def test_authorize_refuses_a_valid_token_with_403(serve: Serve) -> None:
    """``authorize(user_id, request)``, plain or async, may refuse a verified user: 403."""

    async def only_alice(user_id: object, request: Request) -> bool:
        return user_id == ALICE

    async with serve(make_app, auth=HandshakeAuth(authorize=only_alice)) as client:
        await client.connect(headers=bearer(client.app.issue_token(ALICE)))
        with pytest.raises(InvalidStatus) as refused:
            await client.connect(headers=bearer(client.app.issue_token("mallory")))
        assert refused.value.response.status_code == 403


async def test_an_optional_token_lets_anonymous_clients_in_to_sign_in(make_backend: BackendFactory) -> None:
    """required=False: no token connects unverified and may log in with a command; a bad token is still refused."""
    app = make_app(HandshakeAuth(required=False), backend=make_backend())
    async with TestClient(app, real=True) as client:
        anonymous = await client.connect()
        assert not Session.online[anonymous.client_id].verified
        await anonymous.send("whoami")
        assert (await anonymous.receive_error("unauthorized")).payload["details"] == Unauthorized.MISSING
        token = (await anonymous.request("login", {"name": ALICE})).payload
        assert (await anonymous.request("whoami")).payload == ALICE  # the connection's token now stands in
        again = await client.connect(headers=bearer(token))  # and it opens the next connection at once
        assert Session.online[again.client_id].verified
        with pytest.raises(InvalidStatus) as refused:
            await client.connect(headers=bearer(Token.generate()))
        assert refused.value.response.status_code == 401


async def test_a_token_that_expires_while_connected_is_reported_as_expired(make_backend: BackendFactory) -> None:
    """The connection's token stops opening protected commands; every try says it expired, until a new one."""
    app = make_app(HandshakeAuth(required=False), token_ttl=0.2, backend=make_backend())
    async with TestClient(app, real=True) as client:
        alice = await client.connect(headers=bearer(app.issue_token(ALICE)))
        assert (await alice.request("whoami")).payload == ALICE
        await asyncio.sleep(0.25)
        for _ in range(2):
            await alice.send("whoami")
            assert (await alice.receive_error("unauthorized")).payload["details"] == Unauthorized.EXPIRED
        assert ALICE not in Session.verified
        await alice.request("login", {"name": ALICE})
        assert (await alice.request("whoami")).payload == ALICE


async def test_logging_out_leaves_the_connection_without_a_token(make_backend: BackendFactory) -> None:
    """After a logout, a protected command needs a token again (it is not 'expired')."""
    app = make_app(backend=make_backend())
    async with TestClient(app, real=True) as client:
        alice = await client.connect(headers=bearer(app.issue_token(ALICE)))
        await alice.request("logout")
        await alice.send("whoami")
        assert (await alice.receive_error("unauthorized")).payload["details"] == Unauthorized.MISSING


async def test_a_token_revoked_during_the_handshake_verifies_nobody(make_backend: BackendFactory) -> None:
    """Revoked between the check and the connection's start: the connection is closed with 1008."""
    issued: list[str] = []
    app = make_app(HandshakeAuth(authorize=lambda user_id, request: revoke(app, issued)), backend=make_backend())
    async with TestClient(app, real=True) as client:
        issued.append(app.issue_token(ALICE))
        alice = await client.connect(headers=bearer(issued[0]))
        assert await alice.expect_closed() == CloseCode.POLICY_VIOLATION
        assert ALICE not in Session.verified


def revoke(app: WebSuckets, tokens: list[str]) -> bool:
    """Revoke ``tokens`` as a logout on another connection would: in the backend and on this process."""
    for token in tokens:
        digest = Token.digest(token)
        app.dispatcher.sessions.revoked(digest)
        app.backend.forget_token(digest)
    return True


async def test_a_server_that_skips_the_handshake_check_refuses_unverified_connections(
    make_backend: BackendFactory,
) -> None:
    """``websockets.serve(app.handler)`` runs no handshake check: with a required token, nobody gets in."""
    app = make_app(backend=make_backend())
    async with app, serve(app.handler, "127.0.0.1", 0) as server:
        port = server.sockets[0].getsockname()[1]
        async with connect(f"ws://127.0.0.1:{port}", additional_headers=bearer(app.issue_token(ALICE))) as ws:
            with pytest.raises(ConnectionClosed) as closed:
                await ws.recv()
            assert closed.value.rcvd is not None
            assert closed.value.rcvd.code == CloseCode.POLICY_VIOLATION


class Unreachable(MemoryBackend):
    async def find_token(self, digest: str) -> TokenRecord | None:
        raise BackendUnavailable("the backend is away")


async def test_a_backend_that_does_not_answer_gets_503_with_retry_after(real: bool) -> None:
    """The token cannot be checked: 503 and Retry-After, not a 500 or a hang."""
    app = make_app(backend=Unreachable())
    async with TestClient(app, real=real) as client:
        with pytest.raises(InvalidStatus) as refused:
            await client.connect(headers=bearer(Token.generate()))
        assert refused.value.response.status_code == 503
        assert refused.value.response.headers["Retry-After"].isdigit()


@pytest.mark.parametrize(
    ("headers", "expected"),
    [
        ({"Authorization": "Bearer abc"}, "abc"),
        ({"Authorization": "bearer  abc "}, "abc"),
        ({"Authorization": "Basic abc"}, None),
        ({"Authorization": "Bearer "}, None),
        (Headers([("Authorization", "Bearer abc"), ("Authorization", "Bearer def")]), None),
        ({"Sec-WebSocket-Protocol": "websuckets, websuckets.token.abc"}, "abc"),
        ({"Sec-WebSocket-Protocol": "websuckets.token."}, None),
        ({"Sec-WebSocket-Protocol": "bad header,,"}, None),
        ({"Cookie": "a=b; session=abc"}, None),  # cookies are off unless named
    ],
)
def test_where_the_default_looks(headers: dict[str, str] | Headers, expected: str | None) -> None:
    """The Authorization header's Bearer token, then the subprotocol; cookies and the query only when named."""
    assert HandshakeAuth().token_of(Request("/?token=abc", Headers(headers))) == expected


async def test_apps_without_handshake_auth_keep_the_token_field_rule(make_backend: BackendFactory) -> None:
    """Without handshake_auth a protected command needs its token field, even on the connection that logged in."""
    app = WebSuckets(backend=make_backend())
    group = CommandGroup()

    @group.command("login")
    async def login(socket: ServerConnection, user: User, ctx: Context) -> None:
        user.id, user.token = ALICE, Token.generate()
        await ctx.reply("token", user.token)

    @group.command("whoami", protected=True)
    async def whoami(socket: ServerConnection, user: User, ctx: Context) -> None:
        await ctx.reply("you are", user.id)

    app.include_command_group(group)
    async with TestClient(app) as client:
        alice = await client.connect()
        await alice.request("login")
        await alice.send("whoami")
        assert (await alice.receive_error("unauthorized")).payload["details"] == Unauthorized.MISSING
        assert app.dispatcher.adopt_handshake is None

"""The Python client, websuckets.client, against a real websuckets server on 127.0.0.1.

The tests of tokens and of resuming rooms (those that take ``contract_server`` or ``make_backend``) are
part of the backend contract: they run on every backend of tests/conftest.py's list.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import subprocess
import sys
from collections.abc import AsyncIterator, Callable
from http import HTTPStatus

import pytest
from pydantic import BaseModel
from redis_server import free_port
from test_history import history_app
from websockets.asyncio.server import ServerConnection
from websockets.http11 import Request, Response

from websuckets import CallNext, ClientEvent, CommandGroup, Context, History, Session, WebSuckets
from websuckets.backends import Backend
from websuckets.client import Backoff, Client, ClientError, Position, Positions, ServerEvent, connect
from websuckets.exc import InternalError, WebSucketsError
from websuckets.handshake_auth import HandshakeAuth
from websuckets.security import Token

FAST = {"min_delay": 0.01, "max_delay": 0.05, "jitter": 0.0, "timeout": 2.0, "open_timeout": 2.0}
"""Reconnect at once: the tests wait on events, never on delays."""

WAIT = 2.0
"""The bound of every wait for an event."""


class Login(BaseModel):
    login: str


class Room(BaseModel):
    room: str


class Said(BaseModel):
    room: str
    text: str


class Gate:
    """The server's door: refuses connections (503) while shut, to hold a client disconnected; notes every command."""

    def __init__(self) -> None:
        self.shut = False
        self.commands: list[str] = []

    def __call__(self, connection: ServerConnection, request: Request) -> Response | None:
        return connection.respond(HTTPStatus.SERVICE_UNAVAILABLE, "shut\n") if self.shut else None

    async def note(self, ctx: Context, call_next: CallNext) -> None:
        self.commands.append(ctx.event)
        await call_next(ctx)


def make_app(gate: Gate, handshake_auth: HandshakeAuth | None = None, backend: Backend | None = None) -> WebSuckets:
    """Commands for the client: replies, errors, pushes, tokens, drops, and rooms with history."""
    app = WebSuckets(
        backend=backend,
        welcome=True,
        handshake_auth=handshake_auth,
        handshake_checks=[gate],
        history={"lobby": History(size=100), "tiny": History(size=2)},
    )
    app.add_middleware(gate.note)
    group = CommandGroup()
    answering: set[asyncio.Task[None]] = set()

    @group.command("echo")
    async def echo(socket: ServerConnection, ctx: Context) -> None:
        await ctx.reply("echo", ctx.payload)

    @group.command("later")
    async def later(socket: ServerConnection, ctx: Context) -> None:
        async def answer() -> None:  # in the background: the next command runs meanwhile
            await asyncio.sleep(ctx.payload / 1000)
            await ctx.reply("later", ctx.payload)

        task = asyncio.create_task(answer())
        answering.add(task)
        task.add_done_callback(answering.discard)

    @group.command("fail")
    async def fail(socket: ServerConnection, ctx: Context) -> None:
        raise InternalError("nope", ctx.payload)

    @group.command("push")
    async def push(socket: ServerConnection, ctx: Context) -> None:
        await socket.send(ClientEvent("pushed", ctx.payload))  # no id: answers no request

    @group.command("raw")
    async def raw(socket: ServerConnection, ctx: Context) -> None:
        await socket.send(ctx.payload)  # any frame the test forges

    @group.command("my id")
    async def my_id(socket: ServerConnection, ctx: Context) -> None:
        await ctx.reply("your id", str(socket.id))

    @group.command("who")
    async def who(socket: ServerConnection, ctx: Context) -> None:
        await ctx.reply("user", {"id": ctx.user.id, "subprotocol": socket.subprotocol})

    @group.command("login")
    async def login(socket: ServerConnection, model: Login, ctx: Context) -> None:
        ctx.user.id = model.login
        ctx.user.token = Token.generate()
        await ctx.reply("new token", {"login": model.login, "token": ctx.user.token})

    @group.command("rotate", protected=True)
    async def rotate(socket: ServerConnection, ctx: Context) -> None:
        ctx.user.token = Token.generate()
        await ctx.reply("new token", ctx.user.token)  # the other form: the token as the payload

    @group.command("whoami", protected=True)
    async def whoami(socket: ServerConnection, ctx: Context) -> None:
        await ctx.reply("you are", ctx.user.id)

    @group.command("drop")
    async def drop(socket: ServerConnection, ctx: Context) -> None:
        await socket.close(1012, "dropped for a test")

    @group.command("abort")
    async def abort(socket: ServerConnection, ctx: Context) -> None:
        socket.transport.abort()

    @group.command("join")
    async def join(socket: ServerConnection, model: Room, ctx: Context) -> None:
        await Session.join(socket.id, model.room)
        await ctx.reply("joined", model.room)

    @group.command("say")
    async def say(socket: ServerConnection, model: Said, ctx: Context) -> None:
        await Session.broadcast(ClientEvent("said", model.text), room=model.room)
        await ctx.reply("sent")

    app.include_command_group(group)
    return app


class Server:
    """A started app on a free port, its gate, and the clients a test made (closed at the end)."""

    def __init__(self, url: str, gate: Gate) -> None:
        self.url = url
        self.gate = gate
        self.clients: list[Client] = []

    def client(self, **options: object) -> Client:
        client = Client(self.url, **{**FAST, **options})  # type: ignore[arg-type]
        self.clients.append(client)
        return client

    async def started(self, **options: object) -> Client:
        client = self.client(**options)
        await client.start()
        return client


@contextlib.asynccontextmanager
async def serving(handshake_auth: HandshakeAuth | None = None, backend: Backend | None = None) -> AsyncIterator[Server]:
    gate = Gate()
    app = make_app(gate, handshake_auth, backend)
    async with app, app.serve("127.0.0.1", 0) as server:
        served = Server(f"ws://127.0.0.1:{server.sockets[0].getsockname()[1]}/", gate)
        try:
            yield served
        finally:
            for client in served.clients:
                await client.close()


@pytest.fixture
async def server() -> AsyncIterator[Server]:
    async with serving() as served:
        yield served


@pytest.fixture
async def contract_server(make_backend: Callable[[], Backend]) -> AsyncIterator[Server]:
    """The server on each backend of the contract's list (tests/conftest.py): the tests of tokens and of
    resuming that take it are part of the backend contract and run on every one."""
    async with serving(backend=make_backend()) as served:
        yield served


class Recorder:
    """Every event named in ``names`` that a client emits, and a way to wait for the next ones."""

    def __init__(self, client: Client, *names: str) -> None:
        self.events: list[ServerEvent] = []
        self._queue: asyncio.Queue[ServerEvent] = asyncio.Queue()
        for name in names:
            client.on(name, self._record)

    def _record(self, event: ServerEvent) -> None:
        self.events.append(event)
        self._queue.put_nowait(event)

    async def next(self, name: str | None = None) -> ServerEvent:
        """The next recorded event (named ``name``, skipping others), within `WAIT` seconds."""
        async with asyncio.timeout(WAIT):
            while True:
                event = await self._queue.get()
                if name is None or event.event == name:
                    return event

    def names(self) -> list[str]:
        return [event.event for event in self.events]


async def dropped(client: Client, recorder: Recorder) -> ServerEvent:
    """Have the server close the client's connection; the client's ``close`` event."""
    with pytest.raises(ClientError) as caught:
        await client.request("drop")
    assert caught.value.name == "disconnected"
    return await recorder.next("close")


# requests, commands, events


async def test_concurrent_requests_get_their_own_replies(server: Server) -> None:
    """Requests in flight together each get the reply carrying their id, whatever order replies come in."""
    client = await server.started()
    delays = [50 - 5 * n for n in range(10)]  # the last sent is answered first
    replies = await asyncio.gather(*(client.request("later", delay) for delay in delays))
    assert [reply.payload for reply in replies] == delays
    assert all(reply.event == "later" and isinstance(reply.id, int) for reply in replies)
    assert len({reply.id for reply in replies}) == len(delays)


async def test_an_error_event_raises_client_error(server: Server) -> None:
    """An error answering a request raises ClientError with the server's name, details and payload."""
    client = await server.started()
    with pytest.raises(ClientError) as caught:
        await client.request("fail", {"why": "asked to"})
    error = caught.value
    assert isinstance(error, WebSucketsError)
    assert (error.name, error.details) == ("nope", {"why": "asked to"})
    assert error.payload is not None
    assert error.payload["event"] == "fail"
    assert str(error) == 'nope: {"why": "asked to"}'
    with pytest.raises(ClientError, match="unknown_command"):
        await client.request("no such command")
    assert (await client.request("echo", 2)).payload == 2, "the connection stays usable"


async def test_a_request_without_answer_times_out(server: Server) -> None:
    """A request whose id never comes back raises ClientError "timeout" after its timeout."""
    client = await server.started()
    with pytest.raises(ClientError) as caught:
        await client.request("push", "no id", timeout=0.1)
    assert caught.value.name == "timeout"


async def test_send_needs_no_answer_and_its_errors_reach_listeners(server: Server) -> None:
    """send() returns at once; what the command causes, errors included, goes to listeners."""
    client = await server.started()
    recorder = Recorder(client, "pushed", "error")
    await client.send("push", {"n": 1})
    assert (await recorder.next("pushed")).payload == {"n": 1}
    await client.send("fail", "fire and forget")
    error = await recorder.next("error")
    assert error.payload["name"] == "nope"
    assert error.payload["details"] == "fire and forget"


async def test_on_calls_sync_and_async_callbacks_until_unsubscribed(server: Server) -> None:
    """on() takes sync and async callbacks, and returns a function that unsubscribes."""
    client = await server.started()
    seen: list[tuple[str, object]] = []
    async_called = asyncio.Event()

    async def later(event: ServerEvent) -> None:
        await asyncio.sleep(0)
        seen.append(("async", event.payload))
        async_called.set()

    stop = client.on("pushed", lambda event: seen.append(("sync", event.payload)))
    client.on("pushed", later)
    recorder = Recorder(client, "pushed")
    await client.send("push", 1)
    await recorder.next()
    async with asyncio.timeout(WAIT):
        await async_called.wait()
    stop()
    async_called.clear()
    await client.send("push", 2)
    await recorder.next()
    async with asyncio.timeout(WAIT):
        await async_called.wait()
    assert seen == [("sync", 1), ("async", 1), ("async", 2)]


async def test_a_failing_listener_is_logged_and_the_others_run(
    server: Server, caplog: pytest.LogCaptureFixture
) -> None:
    """A listener that raises is logged on websuckets.client; the next listeners still get the event."""
    client = await server.started()

    def broken(event: ServerEvent) -> None:
        raise RuntimeError("listener bug")

    client.on("pushed", broken)
    recorder = Recorder(client, "pushed")
    with caplog.at_level(logging.ERROR, "websuckets.client"):
        await client.send("push", 1)
        await recorder.next()
    assert any(record.exc_info and "listener bug" in str(record.exc_info[1]) for record in caplog.records)


async def test_async_for_yields_the_events_no_request_answers(server: Server) -> None:
    """async for yields every event that answers no request, in order, and stops once the client closes."""
    client = await server.started()
    await client.request("echo", "a reply: not iterated")
    for n in range(3):
        await client.send("push", n)
    await client.request("echo", "after the pushes")
    await client.close()
    names_and_payloads = [(event.event, event.payload) async for event in client]
    assert {name for name, _ in names_and_payloads[:2]} == {"open", "welcome"}
    assert names_and_payloads[2:] == [
        ("pushed", 0),
        ("pushed", 1),
        ("pushed", 2),
        ("close", {"code": 1000, "reason": "", "reconnect_in": None}),
    ]


async def test_welcome_gives_the_client_id(server: Server) -> None:
    """client_id is the id a welcoming server gave this connection (its socket.id)."""
    client = await server.started()
    assert client.client_id == (await client.request("my id")).payload


async def test_connect_works_with_await_and_async_with(server: Server) -> None:
    """connect() is awaited for a started client, or used with async with, which closes it."""
    client = await connect(server.url, **FAST)
    server.clients.append(client)
    assert client.connected
    async with connect(server.url, **FAST) as other:
        assert (await other.request("echo", 1)).payload == 1
    assert other.closed
    assert not other.connected


# tokens


async def test_the_token_from_new_token_is_kept_and_sent(contract_server: Server) -> None:
    """A "new token" payload (an object with a token, or the token itself) becomes client.token, sent with commands."""
    client = await contract_server.started()
    with pytest.raises(ClientError, match="unauthorized"):
        await client.request("whoami")
    reply = await client.request("login", {"login": "alice"})
    assert client.token == reply.payload["token"]
    assert (await client.request("whoami")).payload == "alice"
    rotated = await client.request("rotate")
    assert client.token == rotated.payload != reply.payload["token"]
    assert (await client.request("whoami")).payload == "alice"

    other = await contract_server.started(token=client.token)  # a token given up front works on a new connection
    assert (await other.request("whoami")).payload == "alice"
    ignoring = await contract_server.started(token_event=None)
    await ignoring.request("login", {"login": "bob"})
    assert ignoring.token is None


async def test_the_handshake_token_verifies_each_connection(make_backend: Callable[[], Backend]) -> None:
    """With handshake_token, the token goes as a subprotocol at each (re)connection: the user is verified at once."""
    async with serving(HandshakeAuth(required=False), make_backend()) as server:
        first = await server.started()
        token = (await first.request("login", {"login": "carol"})).payload["token"]
        client = await server.started(token=token, handshake_token=True)
        assert (await client.request("who")).payload == {"id": "carol", "subprotocol": "websuckets"}
        recorder = Recorder(client, "open", "close")
        await dropped(client, recorder)
        await recorder.next("open")
        assert (await client.request("who")).payload == {"id": "carol", "subprotocol": "websuckets"}


async def test_a_refused_handshake_fails_start() -> None:
    """start() raises ClientError "closed" once the retries are spent, saying why the server refused."""
    async with serving(HandshakeAuth(required=True)) as server:
        client = server.client(max_retries=2)
        with pytest.raises(ClientError) as caught:
            await client.start()
        assert caught.value.name == "closed"
        assert "401" in str(caught.value)
        assert client.closed


async def test_the_token_never_reaches_the_log(
    caplog: pytest.LogCaptureFixture, make_backend: Callable[[], Backend]
) -> None:
    """Nothing the client or websockets logs, at DEBUG level, holds the token."""
    with caplog.at_level(logging.DEBUG):
        async with serving(HandshakeAuth(required=False), make_backend()) as server:
            client = await server.started()
            token = (await client.request("login", {"login": "dave"})).payload["token"]
            again = await server.started(token=token, handshake_token=True)
            await again.request("whoami")
            recorder = Recorder(again, "open", "close")
            await dropped(again, recorder)
            await recorder.next("open")
    assert caplog.records
    assert not [record for record in caplog.records if token in record.getMessage()]


# reconnection


async def test_the_client_reconnects_after_the_server_closes(server: Server) -> None:
    """A dropped connection: in-flight requests fail "disconnected", "close" then "open", the client works again."""
    client = await server.started()
    recorder = Recorder(client, "open", "close")
    old_id = (await client.request("my id")).payload
    assert client.client_id == old_id
    closed = await dropped(client, recorder)
    assert (closed.payload["code"], type(closed.payload["code"])) == (1012, int)
    assert closed.payload["reason"] == "dropped for a test"
    assert 0 <= closed.payload["reconnect_in"] <= FAST["min_delay"]
    await recorder.next("open")
    assert (await client.request("echo", "again")).payload == "again"
    assert client.client_id is not None
    assert client.client_id != old_id


async def test_the_client_reconnects_after_the_transport_is_lost(server: Server) -> None:
    """A connection lost without a closing handshake closes with 1006, then reopens."""
    client = await server.started()
    recorder = Recorder(client, "open", "close")
    with pytest.raises(ClientError, match="disconnected"):
        await client.request("abort")
    code = (await recorder.next("close")).payload["code"]
    assert (code, type(code)) == (1006, int)  # as with a code the server sent: not websockets' CloseCode
    await recorder.next("open")
    assert (await client.request("echo", 1)).payload == 1


async def test_commands_sent_while_disconnected_go_out_on_reconnection(server: Server) -> None:
    """Commands and requests made while disconnected wait, in order, and go out once the connection reopens."""
    client = await server.started()
    recorder = Recorder(client, "open", "close", "pushed")
    server.gate.shut = True
    await dropped(client, recorder)
    assert not client.connected
    await client.send("push", 1)
    reply = asyncio.ensure_future(client.request("echo", "queued"))
    await client.send("push", 2)
    await recorder.next("close")  # an attempt refused by the gate: still disconnected
    server.gate.shut = False
    await recorder.next("open")
    assert (await reply).payload == "queued"
    assert [event.payload for event in recorder.events if event.event == "pushed"] == [1, 2]


async def test_the_queue_is_bounded(server: Server) -> None:
    """Past max_queue commands waiting for the connection, send raises ClientError "queue_full"."""
    client = await server.started(max_queue=2)
    recorder = Recorder(client, "close")
    server.gate.shut = True
    await dropped(client, recorder)
    await client.send("push", 1)
    await client.send("push", 2)
    with pytest.raises(ClientError) as caught:
        await client.send("push", 3)
    assert caught.value.name == "queue_full"


async def test_close_stops_reconnection(server: Server) -> None:
    """close() while waiting to reconnect: no more attempts, queued requests fail "closed", the client stays closed."""
    client = await server.started(min_delay=5.0, max_delay=5.0)
    recorder = Recorder(client, "open", "close")
    await dropped(client, recorder)
    queued = asyncio.ensure_future(client.request("echo", 1))
    async with asyncio.timeout(WAIT):  # not the 5 s until the next attempt
        await client.close()
    with pytest.raises(ClientError, match="closed"):
        await queued
    with pytest.raises(ClientError, match="closed"):
        await client.send("push", 1)
    assert client.closed
    assert recorder.names() == ["close"]


async def test_close_of_an_open_client_says_so(server: Server) -> None:
    """close() on an open connection: one "close" event with reconnect_in None, and no reconnection."""
    client = await server.started()
    recorder = Recorder(client, "open", "close")
    await client.close(1000, "bye")
    assert [event.payload for event in recorder.events] == [{"code": 1000, "reason": "bye", "reconnect_in": None}]


async def test_without_reconnect_a_drop_closes_the_client(server: Server) -> None:
    """reconnect=False: the first drop is the end; the "close" event says no attempt will come."""
    client = await server.started(reconnect=False)
    recorder = Recorder(client, "close")
    closed = await dropped(client, recorder)
    assert closed.payload["reconnect_in"] is None
    assert client.closed


async def test_a_request_that_timed_out_while_queued_is_never_sent(server: Server) -> None:
    """A queued request that times out is dropped from the queue: the server never runs it."""
    client = await server.started()
    recorder = Recorder(client, "open", "close")
    server.gate.shut = True
    await dropped(client, recorder)
    with pytest.raises(ClientError, match="timeout"):
        await client.request("echo", "too late", timeout=0.05)
    server.gate.shut = False
    await recorder.next("open")
    assert (await client.request("echo", "in time")).payload == "in time"
    assert server.gate.commands[-2:] == ["drop", "echo"]


async def test_start_gives_up_after_open_timeout() -> None:
    """With nothing listening, start() raises ClientError "timeout" after open_timeout, saying why."""
    client = Client(f"ws://127.0.0.1:{free_port()}/", **{**FAST, "open_timeout": 0.2})  # type: ignore[arg-type]
    with pytest.raises(ClientError) as caught:
        await client.start()
    assert caught.value.name == "timeout"
    assert "could not connect" in str(caught.value)
    assert client.closed


async def test_a_closed_client_stays_closed() -> None:
    """close() before start(): iteration ends at once, start() and send() raise ClientError "closed"."""
    client = Client("ws://127.0.0.1:9/")
    await client.close()
    assert [event async for event in client] == []
    for call in (client.start(), client.send("push")):
        with pytest.raises(ClientError, match="closed"):
            await call


# resume (docs: /work/spec-recovery.md, "What a client does")


async def joined(client: Client, room: str) -> Position:
    """Join ``room`` with the app's own command; the position the server gave."""
    await client.request("join", {"room": room})  # its "websuckets position" comes first
    return client.positions[room]


async def test_a_reconnected_client_gets_exactly_what_it_missed(contract_server: Server) -> None:
    """After a drop, the resume replays the missed room messages once, in order, then "resumed" recovered true."""
    client, speaker = await contract_server.started(), await contract_server.started()
    await joined(speaker, "lobby")
    start = await joined(client, "lobby")
    recorder = Recorder(client, "said", "websuckets position", "resumed", "open", "close", "joined")
    await speaker.request("say", {"room": "lobby", "text": "before"})
    assert (await recorder.next("said")).payload == "before"
    contract_server.gate.shut = True
    await dropped(client, recorder)
    for text in ("missed 1", "missed 2"):
        await speaker.request("say", {"room": "lobby", "text": text})
    await client.send("join", {"room": "lobby"})  # queued: the app's own join, after the resume
    contract_server.gate.shut = False
    resumed = await recorder.next("resumed")
    after_drop = recorder.events[recorder.names().index("close") :]
    assert [(e.event, e.payload) for e in after_drop if e.event in ("said", "resumed")] == [
        ("said", "missed 1"),
        ("said", "missed 2"),
        ("resumed", {"room": "lobby", "recovered": True, "epoch": start.epoch, "offset": start.offset + 3}),
    ]
    assert [e.offset for e in after_drop if e.event == "said"] == [start.offset + 2, start.offset + 3]
    assert resumed.raw == ""
    assert client.positions["lobby"] == Position(start.epoch, start.offset + 3)
    await speaker.request("say", {"room": "lobby", "text": "live"})
    assert (await recorder.next("said")).payload == "live"


async def test_an_overflowed_history_recovers_nothing(contract_server: Server) -> None:
    """When the history lost messages the client missed, nothing is replayed and "resumed" says recovered false."""
    client, speaker = await contract_server.started(), await contract_server.started()
    await joined(speaker, "tiny")
    start = await joined(client, "tiny")
    recorder = Recorder(client, "said", "resumed", "close")
    contract_server.gate.shut = True
    await dropped(client, recorder)
    for n in range(3):  # one more than the history keeps
        await speaker.request("say", {"room": "tiny", "text": f"lost {n}"})
    await client.send("join", {"room": "tiny"})
    contract_server.gate.shut = False
    resumed = await recorder.next("resumed")
    assert resumed.payload == {"room": "tiny", "recovered": False, "epoch": start.epoch, "offset": start.offset + 3}
    assert "said" not in recorder.names()


async def test_the_resume_is_the_first_frame_after_a_reconnection(contract_server: Server) -> None:
    """A client that knows positions sends "websuckets resume" before its queued commands; its reply stays internal."""
    client = await contract_server.started()
    start = await joined(client, "lobby")
    recorder = Recorder(client, "open", "close", "websuckets resume", "echo", "error")
    contract_server.gate.shut = True
    await dropped(client, recorder)
    await client.send("join", {"room": "lobby"})
    queued = asyncio.ensure_future(client.request("echo", "after the resume"))
    contract_server.gate.shut = False
    resumed_recorder = Recorder(client, "resumed")
    assert (await queued).payload == "after the resume"
    resumed = await resumed_recorder.next()
    assert contract_server.gate.commands[-3:] == ["websuckets resume", "join", "echo"]
    assert resumed.payload["recovered"] is True
    assert resumed.payload["offset"] == start.offset
    assert "websuckets resume" not in recorder.names()
    assert "error" not in recorder.names()


async def test_duplicates_are_dropped(server: Server) -> None:
    """A room message at or before the known offset of the same epoch is dropped; other epochs and rooms pass."""
    client = await server.started()
    recorder = Recorder(client, "said")

    def said(text: str, room: str, epoch: str, offset: int) -> str:
        return f'{{"event":"said","payload":"{text}","room":"{room}","epoch":"{epoch}","offset":{offset}}}'

    frames = [
        said("5", "r", "e1", 5),
        said("5 again", "r", "e1", 5),
        said("4", "r", "e1", 4),
        said("7", "r", "e1", 7),  # a jump is not judged: exclude= skips offsets
        said("other room", "s", "e1", 1),
        said("new epoch", "r", "e2", 1),
        said("last", "r", "e2", 2),
    ]
    for frame in frames:
        await client.send("raw", frame)
    await recorder_until(recorder, "last")
    assert [event.payload for event in recorder.events] == ["5", "7", "other room", "new epoch", "last"]
    assert (recorder.events[0].room, recorder.events[0].epoch, recorder.events[0].offset) == ("r", "e1", 5)
    assert client.positions == {"r": Position("e2", 2), "s": Position("e1", 1)}


async def recorder_until(recorder: Recorder, payload: object) -> None:
    async with asyncio.timeout(WAIT):
        while (await recorder.next()).payload != payload:
            pass


async def test_a_gap_makes_the_client_resume_the_room(contract_server: Server) -> None:
    """On "websuckets gap" the client resumes that room from its position: "resumed" follows."""
    client = await contract_server.started()
    start = await joined(client, "lobby")
    recorder = Recorder(client, "websuckets gap", "resumed")
    await client.send("raw", '{"event":"websuckets gap","payload":{"room":"lobby"}}')
    assert (await recorder.next()).event == "websuckets gap"
    resumed = await recorder.next()
    assert resumed.payload == {"room": "lobby", "recovered": True, "epoch": start.epoch, "offset": start.offset}


async def test_preset_positions_resume_on_the_first_connection(contract_server: Server) -> None:
    """Positions set before start (saved by an earlier run) are resumed as soon as the client connects."""
    speaker = await contract_server.started()
    start = await joined(speaker, "lobby")
    await speaker.request("say", {"room": "lobby", "text": "while away"})
    client = contract_server.client()
    client.positions["lobby"] = start
    recorder = Recorder(client, "said", "resumed")
    await client.start()
    await client.request("join", {"room": "lobby"})
    assert [event.payload for event in recorder.events][:1] == ["while away"]
    assert (await recorder.next("resumed")).payload["recovered"] is True


async def test_a_server_without_history_refuses_the_resume_and_the_client_goes_on(
    caplog: pytest.LogCaptureFixture,
) -> None:
    """A resume the server does not know (no history configured) is logged; requests still work."""
    app = WebSuckets()
    group = CommandGroup()

    @group.command("echo")
    async def echo(socket: ServerConnection, ctx: Context) -> None:
        await ctx.reply("echo", ctx.payload)

    app.include_command_group(group)
    async with app, app.serve("127.0.0.1", 0) as server:
        client = Client(f"ws://127.0.0.1:{server.sockets[0].getsockname()[1]}/", **FAST)  # type: ignore[arg-type]
        client.positions["lobby"] = Position("e", 1)
        errors = Recorder(client, "error")
        with caplog.at_level(logging.WARNING, "websuckets.client"):
            async with client:
                assert (await client.request("echo", 1)).payload == 1
        assert errors.events == []
    assert "the server refused to resume: unknown_command" in caplog.text


def auto_joining_app(backend: Backend) -> WebSuckets:
    """``history_app`` (``lobby`` keeps 5 messages) that joins every client to ``lobby`` in a connect hook,
    before the server reads the client's first frame; then broadcasts a greeting, if one was queued
    (``greet``), to the room: a live message the client gets before its resume is read."""
    app = history_app(backend)
    greetings: list[str] = []
    group = CommandGroup()

    @group.command("drop")
    async def drop(socket: ServerConnection) -> None:
        await socket.close(1012, "dropped for a test")

    @group.command("greet")
    async def greet(socket: ServerConnection, ctx: Context) -> None:
        greetings.append(ctx.payload)  # for the next client that connects
        await ctx.reply("queued")

    app.include_command_group(group)

    @app.on_connect
    async def auto_join(socket: ServerConnection) -> None:
        await Session.join(socket.id, "lobby")
        if greetings:
            await Session.broadcast(ClientEvent("said", greetings.pop(0)), room="lobby")

    return app


@pytest.mark.parametrize("greeting", [None, "hello"])
async def test_a_client_joined_on_connect_gets_what_it_missed(
    greeting: str | None, make_backend: Callable[[], Backend]
) -> None:
    """Joined by the app's connect hook, the client gets a plain position, and live messages that may come
    before its resume is answered: it still shows each missed message once, then "resumed" recovered true."""
    app = auto_joining_app(make_backend())
    async with app, app.serve("127.0.0.1", 0) as server:
        url = f"ws://127.0.0.1:{server.sockets[0].getsockname()[1]}/"
        alice, bob = Client(url, **FAST), Client(url, **FAST)  # type: ignore[arg-type]
        recorder = Recorder(alice, "said", "websuckets position", "resumed", "close")
        sent = Recorder(bob, "sent")
        async with alice, bob:
            start = (await recorder.next("websuckets position")).payload
            assert (start["offset"], start["recovered"]) == (0, None)
            await bob.send("say", {"room": "lobby", "text": "seen"})
            assert (await recorder.next("said")).payload == "seen"
            assert alice.positions["lobby"] == Position(start["epoch"], 1)

            alice.url = f"ws://127.0.0.1:{free_port()}/"  # her attempts to reconnect fail meanwhile
            await alice.send("drop")
            await recorder.next("close")
            for text in ("a", "b", "c"):
                await bob.send("say", {"room": "lobby", "text": text})
                await sent.next()
            if greeting is not None:
                await bob.request("greet", greeting)
            alice.url = url
            top = 5 if greeting else 4
            resumed = await recorder.next("resumed")
            assert resumed.payload == {"room": "lobby", "recovered": True, "epoch": start["epoch"], "offset": top}

            after_drop = recorder.events[recorder.names().index("close") :]
            shown = [(event.payload, event.offset) for event in after_drop if event.event == "said"]
            # the greeting is live: it may come before the replay (in memory) or after it (through Redis)
            missed = [("a", 2), ("b", 3), ("c", 4)] + ([("hello", 5)] if greeting else [])
            assert sorted(shown, key=lambda said: said[1]) == missed, "each missed message shown once"
            assert [said for said in shown if said[0] != "hello"] == missed[:3], "the replay in order"
            reports = [event.payload for event in after_drop if event.event == "websuckets position"]
            assert [(report["offset"], report["recovered"]) for report in reports] == [(4, None), (top, True)]
            assert alice.positions["lobby"] == Position(start["epoch"], top)
            assert alice.positions.pending == frozenset()
            await bob.send("say", {"room": "lobby", "text": "live"})
            live = await recorder.next("said")
            assert (live.payload, live.offset) == ("live", top + 1)


def test_importing_websuckets_does_not_import_the_client() -> None:
    """The client is imported only by those who use it."""
    code = "import sys, websuckets; assert 'websuckets.client' not in sys.modules"
    subprocess.run([sys.executable, "-c", code], check=True)


# the parts without I/O


def test_server_events_parse_their_frame() -> None:
    """ServerEvent.parse reads events, their position when complete, and refuses non-events."""
    event = ServerEvent.parse('{"event":"said","payload":1,"room":"r","epoch":"e","offset":3,"id":7}')
    assert event is not None
    assert (event.event, event.payload, event.id, event.position) == ("said", 1, 7, Position("e", 3))
    assert ServerEvent.parse('{"event":"said","room":"r","offset":3}').position is None  # type: ignore[union-attr]
    error = ServerEvent.parse('{"event":"error","payload":{"name":"x","id":"a"}}')
    assert error is not None
    assert error.answers == "a"
    assert [ServerEvent.parse(text) for text in ("plain text", "[1]", '{"event":1}')] == [None, None, None]


def test_positions_forget_the_oldest_room() -> None:
    """Past max_rooms, the room updated longest ago is forgotten."""
    positions = Positions(max_rooms=2)
    positions["a"] = Position("e", 1)
    positions["b"] = Position("e", 1)
    positions["a"] = Position("e", 2)
    positions["c"] = Position("e", 1)
    assert dict(positions) == {"a": Position("e", 2), "c": Position("e", 1)}
    assert positions.resume_payloads(["c", "unknown"]) == [{"rooms": {"c": {"epoch": "e", "offset": 1}}}]


def said_at(offset: int, epoch: str = "e") -> ServerEvent:
    frame = {"event": "said", "payload": offset, "room": "lobby", "epoch": epoch, "offset": offset}
    event = ServerEvent.parse(json.dumps(frame))
    assert event is not None
    return event


def position_at(offset: int, recovered: bool | None, epoch: str = "e") -> ServerEvent:
    payload = {"room": "lobby", "epoch": epoch, "offset": offset, "recovered": recovered}
    return ServerEvent("websuckets position", payload)


def test_a_pending_room_shows_live_and_replayed_messages_once() -> None:
    """While a resume is unanswered: a plain position of the room's epoch is ignored, live and replayed
    messages are each shown once in whatever order, the position stays; the answer moves it."""
    positions = Positions()
    positions["lobby"] = Position("e", 1)
    positions.resuming(["lobby", "unknown"], 7)
    assert positions.pending == {"lobby"}
    assert positions.observe(position_at(4, None))  # the app joined before the server read the resume
    live = [5, 6]
    replay = [2, 3, 4, 5, 6]
    shown = [offset for offset in live + replay if positions.observe(said_at(offset))]
    assert shown == [5, 6, 2, 3, 4]
    assert positions["lobby"] == Position("e", 1)
    assert positions.resume_payloads() == [{"rooms": {"lobby": {"epoch": "e", "offset": 1}}}]
    assert positions.observe(position_at(6, True))
    assert (positions["lobby"], positions.pending) == (Position("e", 6), frozenset())
    assert [positions.observe(said_at(offset)) for offset in (6, 7)] == [False, True]
    assert positions["lobby"] == Position("e", 7)


def test_a_failed_resume_ends_pending_and_what_it_showed_is_not_shown_again() -> None:
    """A failed resume (its id, or all on a drop) ends pending; the next resume's replay skips what was shown."""
    positions = Positions()
    positions["lobby"] = Position("e", 1)
    positions.resuming(["lobby"], 7)
    assert positions.observe(said_at(5))
    positions.failed(8)  # another resume: nothing changes
    assert positions.pending == {"lobby"}
    positions.failed()  # the connection dropped before the answer
    assert (positions.pending, positions["lobby"]) == (frozenset(), Position("e", 1))
    positions.resuming(["lobby"], 9)  # resent after the reconnection, from the same position
    assert [offset for offset in (2, 3, 4, 5) if positions.observe(said_at(offset))] == [2, 3, 4]
    positions.failed(9)  # refused
    assert positions.observe(said_at(6))  # not pending: the position moves again
    assert positions["lobby"] == Position("e", 6)


def test_a_pending_room_takes_another_epoch_and_stops_waiting_past_max_seen() -> None:
    """A position or message of another epoch is adopted at once; past max_seen offsets the room stops
    waiting and moves to the largest seen."""
    positions = Positions(max_seen=3)
    positions["lobby"] = Position("e", 1)
    positions.resuming(["lobby"], 1)
    assert positions.observe(position_at(9, None, epoch="f"))
    assert (positions["lobby"], positions.pending) == (Position("f", 9), frozenset())

    positions.resuming(["lobby"], 2)
    assert all(positions.observe(said_at(offset, "f")) for offset in (12, 11, 13))
    assert positions["lobby"] == Position("f", 9)
    assert positions.observe(said_at(10, "f"))  # the fourth: no more waiting
    assert (positions["lobby"], positions.pending) == (Position("f", 13), frozenset())
    assert not positions.observe(said_at(12, "f"))


def test_backoff_grows_caps_and_gives_up() -> None:
    """Delays grow by factor up to max_delay, the jitter takes up to its share off, max_retries ends them."""
    backoff = Backoff(min_delay=0.25, max_delay=10.0, factor=2.0, jitter=0.5, max_retries=8)
    never_random: Callable[[], float] = lambda: 0.0  # noqa: E731
    always_random: Callable[[], float] = lambda: 1.0  # noqa: E731
    assert [backoff.delay(n, never_random) for n in range(7)] == [0.25, 0.5, 1.0, 2.0, 4.0, 8.0, 10.0]
    assert backoff.delay(2, always_random) == 0.5
    assert backoff.delay(8) is None
    assert Backoff().delay(5000, never_random) == 10.0

"""Protocol negotiation (``websuckets.v1.json``, ``websuckets.v1.msgpack``) and MessagePack connections.

In memory (`TestClient`), over a real socket on 127.0.0.1 (``real=True``), and with the Python client.
"""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from typing import Any
from unittest import mock

import ormsgpack  # noqa: F401  (in the dev install: without it these tests fail, never skip)
import pytest
from pydantic import BaseModel, ConfigDict
from test_history import history_app
from websockets.asyncio.server import ServerConnection
from websockets.asyncio.server import serve as ws_serve
from websockets.exceptions import InvalidStatus

from websuckets import ClientEvent, CommandGroup, Context, Session, User, WebSuckets, delivery, msgpack_codec
from websuckets.backends import MemoryBackend
from websuckets.client import ClientError, connect
from websuckets.handshake_auth import HandshakeAuth
from websuckets.testing import TestClient
from websuckets.wire import JSON_SUBPROTOCOL, MSGPACK_SUBPROTOCOL


class Blob(BaseModel):
    """A payload with raw bytes: base64 in JSON, a MessagePack binary."""

    model_config = ConfigDict(ser_json_bytes="base64", val_json_bytes="base64")
    name: str
    data: bytes


class Room(BaseModel):
    room: str


class Upto(BaseModel):
    upto: int


def make_app(**options: Any) -> WebSuckets:
    app = WebSuckets(**options)
    group = CommandGroup()

    @group.command("blob echo")
    async def echo(socket: ServerConnection, blob: Blob, ctx: Context) -> None:
        await ctx.reply("blob echoed", blob)

    @group.command("whoami")
    async def whoami(socket: ServerConnection, user: User) -> None:
        await socket.send(ClientEvent("you are", user.id))

    @group.command("join")
    async def join(socket: ServerConnection, model: Room) -> None:
        await Session.join(socket.id, model.room)
        await socket.send(ClientEvent("joined", model.room))

    @group.command("protocol")
    async def protocol(socket: ServerConnection, ctx: Context) -> None:
        await ctx.reply("protocol", socket.subprotocol)

    @group.command("say")
    async def say(socket: ServerConnection, model: Room, ctx: Context) -> None:
        await Session.broadcast(ClientEvent("said", {"room": model.room, "blob": b"hi\x00"}), room=model.room)

    @group.command("count")
    async def count(socket: ServerConnection, model: Upto) -> AsyncIterator[int]:
        for number in range(model.upto):
            yield number

    @group.command("blobs")
    async def blobs(socket: ServerConnection, model: Upto) -> AsyncIterator[Blob | ClientEvent]:
        for number in range(model.upto):
            yield Blob(name=str(number), data=bytes([0xFF, number]))
        yield ClientEvent("last blob", Blob(name="last", data=b"\xfe"))

    app.include_command_group(group)
    return app


@pytest.fixture(params=[False, True], ids=["memory", "socket"])
async def client(request: pytest.FixtureRequest) -> AsyncIterator[TestClient]:
    async with TestClient(make_app(), real=request.param) as client:
        yield client


async def test_a_client_that_offers_nothing_or_json_gets_json_text(client: TestClient) -> None:
    """No subprotocol, ``websuckets`` or ``websuckets.v1.json``: the JSON text frames of before."""
    for offered, selected in [(None, None), (["websuckets"], "websuckets"), ([JSON_SUBPROTOCOL], JSON_SUBPROTOCOL)]:
        connection = await client.connect(subprotocols=offered)
        assert connection._socket.subprotocol == selected
        assert not connection.msgpack
        reply = await connection.request("blob echo", {"name": "a", "data": "AAE="})
        assert json.loads(connection.history[-1])["payload"]["name"] == "a"
        assert isinstance(reply.payload["data"], str)  # base64 (pydantic 2.6 reads "AAE=" as text, then encodes it)


async def test_msgpack_carries_raw_bytes_both_ways(client: TestClient) -> None:
    """The payload is validated by pydantic; bytes travel as MessagePack binaries, not base64."""
    connection = await client.connect(format="msgpack")
    assert connection._socket.subprotocol == MSGPACK_SUBPROTOCOL
    reply = await connection.request("blob echo", {"name": "a", "data": b"\xff\x00\x01"})
    assert reply.payload == {"name": "a", "data": b"\xff\x00\x01"}


async def test_the_first_known_version_offered_wins(client: TestClient) -> None:
    """Unknown versions beside a known one are skipped; the client's order decides between known ones."""
    connection = await client.connect(subprotocols=["websuckets.v9.msgpack", MSGPACK_SUBPROTOCOL, JSON_SUBPROTOCOL])
    assert connection._socket.subprotocol == MSGPACK_SUBPROTOCOL
    connection = await client.connect(subprotocols=[JSON_SUBPROTOCOL, MSGPACK_SUBPROTOCOL])
    assert connection._socket.subprotocol == JSON_SUBPROTOCOL
    other = await client.connect(subprotocols=["graphql-ws"])  # someone else's: accepted as before, JSON
    assert other._socket.subprotocol is None


async def test_only_unknown_versions_are_refused_with_400_naming_the_supported_ones(client: TestClient) -> None:
    """HTTP 400 before the websocket opens; the body lists what the server speaks."""
    with pytest.raises(InvalidStatus) as refused:
        await client.connect(subprotocols=["websuckets.v2.json", "websuckets.v9.cbor"])
    response = refused.value.response
    assert response.status_code == 400
    assert response.body == (
        b"Unsupported subprotocol websuckets.v2.json, websuckets.v9.cbor: "
        b"this server speaks websuckets.v1.json, websuckets.v1.msgpack\n"
    )


async def test_without_ormsgpack_the_server_speaks_json_only(client: TestClient) -> None:
    """A server without the extra refuses a client offering only MessagePack, and names JSON."""
    with mock.patch.object(msgpack_codec, "available", return_value=False), pytest.raises(InvalidStatus) as refused:
        await client.connect(format="msgpack")
    assert (
        refused.value.response.body
        == b"Unsupported subprotocol websuckets.v1.msgpack: this server speaks websuckets.v1.json\n"
    )


BAD_COMMANDS = [
    pytest.param(b"\xc1", "[1, 2", "invalid_json", id="not-decodable"),
    pytest.param([1, 2], [1, 2], "invalid_command", id="not-a-map"),
    pytest.param({"payload": 1}, {"payload": 1}, "invalid_command", id="no-event"),
    pytest.param({"event": "nope"}, {"event": "nope"}, "unknown_command", id="unknown"),
    pytest.param({"event": "blob echo", "payload": {"name": 1}}, None, "validation_error", id="invalid"),
    pytest.param({"event": "blob echo", "payload": float("inf")}, "1e999", "invalid_json", id="infinity"),
]


@pytest.mark.parametrize(("packed", "text", "name"), BAD_COMMANDS)
async def test_every_error_has_the_same_name_as_over_json(
    client: TestClient, packed: Any, text: Any, name: str
) -> None:
    """The same mistake, in MessagePack or in JSON, is answered with the same error name."""
    over_msgpack = await client.connect(format="msgpack")
    await over_msgpack.send_raw(packed if isinstance(packed, bytes) else msgpack_codec.pack(packed))
    assert (await over_msgpack.receive_error()).error_name == name
    over_json = await client.connect()
    if text is None:
        text = packed
    if isinstance(text, str) and text == "1e999":
        text = '{"event": "blob echo", "payload": 1e999}'
    await over_json.send_raw(text if isinstance(text, str) else json.dumps(text))
    assert (await over_json.receive_error()).error_name == name


async def test_a_text_frame_on_a_msgpack_connection_is_read_as_json(client: TestClient) -> None:
    """A text frame is JSON on any connection; the answer still comes in MessagePack."""
    connection = await client.connect(format="msgpack")
    await connection.send_raw(json.dumps({"event": "whoami", "id": 7}))
    received = await connection.receive()
    assert (received.event, received.id) == ("you are", 7)


async def test_a_stream_over_msgpack(client: TestClient) -> None:
    """Items and the end of a stream carry the command's id, in MessagePack."""
    connection = await client.connect(format="msgpack")
    stream = await connection.stream("count", {"upto": 3})
    assert [item.payload async for item in stream] == [0, 1, 2]
    assert stream.end is not None
    assert stream.end.payload == {"items": 3, "cancelled": False}


async def test_a_streams_items_keep_their_bytes_raw(client: TestClient) -> None:
    """A stream's items, models and ClientEvents alike, are packed from their parts: bytes stay binaries
    (base64 only for JSON clients), and each carries the command's id."""
    packed = await client.connect(format="msgpack")
    stream = await packed.stream("blobs", {"upto": 2}, id=7)
    items = [item async for item in stream]
    assert [item.payload for item in items] == [
        {"name": "0", "data": b"\xff\x00"},
        {"name": "1", "data": b"\xff\x01"},
        {"name": "last", "data": b"\xfe"},
    ]
    assert [(item.event, item.id) for item in items] == [("blobs", 7), ("blobs", 7), ("last blob", 7)]
    text = await client.connect()
    stream = await text.stream("blobs", {"upto": 1})
    assert [item.payload["data"] async for item in stream] == ["_wA=", "_g=="]


async def test_a_mixed_room_is_encoded_once_per_format() -> None:
    """JSON and MessagePack members of one room: one JSON frame, one MessagePack packing, each framed once."""
    async with TestClient(make_app(), real=True) as client:
        members = [await client.connect(format=format) for format in ("json", "msgpack") * 3]
        for member in members:
            await member.request("join", {"room": "mixed"})
        framed = mock.Mock(wraps=delivery._frame)
        packed = mock.Mock(wraps=msgpack_codec.pack)
        with mock.patch.object(delivery, "_frame", framed), mock.patch.object(msgpack_codec, "pack", packed):
            await Session.broadcast(ClientEvent("news", {"text": "hi"}), room="mixed")
        assert framed.call_count == 2
        assert packed.call_count == 1
        for member in members:
            received = await member.receive()
            assert (received.event, received.payload) == ("news", {"text": "hi"})


async def test_a_history_room_replays_in_the_members_format() -> None:
    """A history room's live messages (stamped with their position) and its replay (send_batch) arrive packed."""
    async with TestClient(history_app(MemoryBackend()), real=True) as client:
        listener = await client.connect(format="msgpack")
        await listener.send("join", {"room": "lobby"})
        position = await listener.receive()
        assert position.event == "websuckets position"
        speaker = await client.connect()
        for text in ("first", "second"):
            await speaker.send("say", {"room": "lobby", "text": text})
            said = await listener.receive()
            assert (said.event, said.payload) == ("said", text)
            assert json.loads(said.raw)["room"] == "lobby"
        late = await client.connect(format="msgpack")
        epoch = position.payload["epoch"]
        await late.request("websuckets resume", {"rooms": {"lobby": {"epoch": epoch, "offset": 0}}})
        await late.send("join", {"room": "lobby"})
        replayed = [await late.receive() for _ in range(3)]
        assert [event.payload for event in replayed[:2]] == ["first", "second"]
        assert replayed[2].event == "websuckets position"
        assert replayed[2].payload["recovered"] is True


async def test_the_handshake_token_goes_beside_msgpack() -> None:
    """``websuckets.token.<token>`` beside ``websuckets.v1.msgpack``: msgpack selected, the user verified."""
    async with TestClient(make_app(handshake_auth=HandshakeAuth()), real=True) as client:
        token = client.app.issue_token("alice")
        connection = await client.connect(format="msgpack", subprotocols=["websuckets", f"websuckets.token.{token}"])
        assert connection._socket.subprotocol == MSGPACK_SUBPROTOCOL
        assert (await connection.request("whoami")).payload == "alice"
        async with connect(client.url, format="msgpack", token=token, handshake_token=True) as bot:
            assert (await bot.request("whoami")).payload == "alice"


async def test_the_python_client_speaks_msgpack() -> None:
    """connect(format="msgpack"): requests, raw bytes, streams and errors by the same names."""
    async with TestClient(make_app(), real=True) as client, connect(client.url, format="msgpack") as bot:
        reply = await bot.request("blob echo", {"name": "a", "data": b"\x00\xff"})
        assert reply.payload == {"name": "a", "data": b"\x00\xff"}
        assert reply.raw == ""
        assert [event.payload async for event in bot.stream("count", {"upto": 2})] == [0, 1]
        with pytest.raises(ClientError) as failed:
            await bot.request("blob echo", {"name": 1})
        assert failed.value.name == "validation_error"


async def test_the_python_client_gives_up_on_a_server_that_does_not_select_msgpack() -> None:
    """A server that answers without the subprotocol (one from before it) fails start() with the reason."""

    async def handler(socket: ServerConnection) -> None:
        await socket.wait_closed()

    async with ws_serve(handler, "127.0.0.1", 0) as server:
        port = server.sockets[0].getsockname()[1]
        with pytest.raises(ClientError) as failed:
            await connect(f"ws://127.0.0.1:{port}", format="msgpack", reconnect=False, open_timeout=2)
    assert failed.value.name == "closed"
    assert "did not select websuckets.v1.msgpack" in str(failed.value)

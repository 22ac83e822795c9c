"""Bad input over the wire: the right error code, and the connection stays usable."""

import logging

import pytest
from pydantic import BaseModel
from websockets.asyncio.server import ServerConnection

from websuckets import CommandGroup, WebSuckets
from websuckets.exc import InternalError
from websuckets.testing import TestClient, TestConnection


class Echo(BaseModel):
    nickname: str
    n: int


def make_app(**options: object) -> WebSuckets:
    app = WebSuckets(**options)  # type: ignore[arg-type]
    group = CommandGroup("user")

    @group.command("echo")
    async def echo(socket: ServerConnection, model: Echo) -> None:
        await socket.send(model.model_dump_json())

    @group.command("ping")
    async def ping(socket: ServerConnection) -> None:
        await socket.send("pong")

    @group.command("crash")
    async def crash(socket: ServerConnection) -> None:
        raise RuntimeError("database password is hunter2")

    app.include_command_group(group)
    return app


async def still_usable(client: TestConnection) -> None:
    await client.send("user ping")
    assert await client.receive_text() == "pong"


@pytest.mark.parametrize(
    ("frame", "name", "event", "id"),
    [
        ("not json", "invalid_json", None, None),
        (b'{"event": "user ping"}', "invalid_json", None, None),
        ("[1, 2, 3]", "invalid_command", None, None),
        ('{"payload": {}}', "invalid_command", None, None),
        ('{"event": 42, "id": 3}', "invalid_command", None, 3),
        ('{"event": "nope", "id": "a"}', "unknown_command", "nope", "a"),
        ('{"event": "user echo", "id": 9}', "validation_error", "user echo", 9),
        ('{"event": "user echo", "payload": {"nickname": "a", "n": NaN}, "id": 5}', "invalid_json", None, None),
        ('{"event": "user echo", "payload": {"nickname": "a", "n": 1e999}, "id": 5}', "invalid_json", "user echo", 5),
        ('{"event": "user echo", "id": ' + "7" * 4000 + "}", "invalid_command", None, None),
        ('{"event": "user echo", "payload": [1]}', "validation_error", "user echo", None),
        ('{"event": "user echo", "payload": "text"}', "validation_error", "user echo", None),
        ('{"event": "user echo", "payload": {"nickname": 5, "n": "x"}}', "validation_error", "user echo", None),
    ],
)
async def test_bad_input_gets_its_error_and_the_connection_stays_open(
    real: bool, frame: str | bytes, name: str, event: str | None, id: object
) -> None:
    """Each kind of bad frame gets an error event with the stable name, event and id."""
    async with TestClient(make_app(), real=real) as client:
        alice = await client.connect()
        await alice.send_raw(frame)
        error = await alice.receive_error(name)
        assert (error.payload["event"], error.payload["id"]) == (event, id)
        await still_usable(alice)


async def test_validation_details_name_fields_without_echoing_input(real: bool) -> None:
    """validation_error details carry loc, msg and type for each field, never the input."""
    async with TestClient(make_app(), real=real) as client:
        alice = await client.connect()
        await alice.send("user echo", {"nickname": "SecretpaSSword"})
        error = await alice.receive_error("validation_error")
        assert error.payload["details"] == [{"loc": ["payload", "n"], "msg": "Field required", "type": "missing"}]
        await alice.send("user echo", {"nickname": ["SecretpaSSword"], "n": 1})
        error = await alice.receive_error("validation_error")
        assert [d["loc"] for d in error.payload["details"]] == [["payload", "nickname"]]
        assert "SecretpaSSword" not in error.raw


async def test_missing_payload_is_reported_as_missing(real: bool) -> None:
    """A handler with a model and no payload says the payload is required."""
    async with TestClient(make_app(), real=real) as client:
        alice = await client.connect()
        await alice.send("user echo")
        error = await alice.receive_error("validation_error")
        assert error.payload["details"] == [{"loc": ["payload"], "msg": "Field required", "type": "missing"}]


async def test_handler_without_model_ignores_payload(real: bool) -> None:
    """Any payload sent to a handler without a model is ignored."""
    async with TestClient(make_app(), real=real) as client:
        alice = await client.connect()
        await alice.send("user ping", {"whatever": [1, 2]})
        assert await alice.receive_text() == "pong"


async def test_unexpected_exception_is_logged_not_leaked(real: bool, caplog: pytest.LogCaptureFixture) -> None:
    """A crash reaches the client as internal_error with no details; the log has the traceback."""
    async with TestClient(make_app(), real=real, raise_server_exceptions=False) as client:
        alice = await client.connect()
        await alice.send("user crash", id=1)
        error = await alice.receive_error("internal_error")
        assert error.payload == {"name": "internal_error", "details": None, "event": "user crash", "id": 1}
        assert "hunter2" not in error.raw
        await still_usable(alice)
    records = [r for r in caplog.records if r.levelno == logging.ERROR]
    assert records[0].getMessage() == "unexpected error in command 'user crash'"
    assert records[0].exc_info is not None
    assert "hunter2" in str(records[0].exc_info[1])


async def test_large_message_gets_message_too_large(real: bool) -> None:
    """A message over max_message_size gets message_too_large; the connection stays open."""
    async with TestClient(make_app(max_message_size=1000), real=real) as client:
        alice = await client.connect()
        await alice.send("user echo", {"nickname": "x" * 2000, "n": 1})
        await alice.receive_error("message_too_large")
        await still_usable(alice)


async def test_message_size_counts_bytes_not_characters(real: bool) -> None:
    """The limit is in bytes: 400 four-byte characters are over a 1000-byte limit."""
    async with TestClient(make_app(max_message_size=1000), real=real) as client:
        alice = await client.connect()
        await alice.send("user echo", {"nickname": "\U0001f600" * 400, "n": 1})
        await alice.receive_error("message_too_large")


async def test_huge_payload_under_the_limit_is_handled(real: bool) -> None:
    """A large but allowed payload (500 KB) is validated and answered."""
    async with TestClient(make_app(), real=real) as client:
        alice = await client.connect()
        await alice.send("user echo", {"nickname": "x" * 500_000, "n": 1})
        assert len(await alice.receive_text()) > 500_000


async def test_frame_over_the_protocol_limit_closes_with_1009(real: bool) -> None:
    """Past four times max_message_size, the protocol itself closes the connection (1009)."""
    async with TestClient(make_app(max_message_size=1000), real=real) as client:
        alice = await client.connect()
        await alice.send("user echo", {"nickname": "x" * 5000, "n": 1})
        assert await alice.expect_closed() == 1009
        bob = await client.connect()
        await still_usable(bob)


async def test_error_details_json_cannot_hold_are_sent_as_text(real: bool) -> None:
    """An InternalError whose details are not JSON still reaches the client, as their str."""
    app = WebSuckets()
    group = CommandGroup()

    @group.command("odd")
    async def odd(socket: ServerConnection) -> None:
        raise InternalError("odd", ValueError("bad value"))

    app.include_command_group(group)
    async with TestClient(app, real=real) as client:
        alice = await client.connect()
        await alice.send("odd")
        assert (await alice.receive_error("odd")).payload["details"] == "bad value"


async def test_error_details_that_cannot_be_sent_become_internal_error(real: bool) -> None:
    """Details JSON cannot hold at all (invalid UTF-8 bytes) are an internal error, not a dead connection."""
    app = make_app()
    group = CommandGroup()

    @group.command("bytes")
    async def raw_bytes(socket: ServerConnection) -> None:
        raise InternalError("bad", {"head": b"\xff\xfe"})

    app.include_command_group(group)
    async with TestClient(app, real=real, raise_server_exceptions=False) as client:
        alice = await client.connect()
        await alice.send("bytes")
        await alice.receive_error("internal_error")
        await still_usable(alice)
    assert client.server_errors


async def test_sending_to_a_client_that_left_does_not_break_the_sender(real: bool) -> None:
    """A handler writing to another client's closed socket gets internal_error; its own client stays."""
    app = make_app()
    group = CommandGroup("room")
    sockets: list[ServerConnection] = []

    @group.command("join")
    async def join(socket: ServerConnection) -> None:
        sockets.append(socket)
        await socket.send("joined")

    @group.command("shout")
    async def shout(socket: ServerConnection) -> None:
        for member in sockets:
            await member.send("hey")

    app.include_command_group(group)
    async with TestClient(app, real=real, raise_server_exceptions=False) as client:
        alice, bob = await client.connect(), await client.connect()
        for member in (bob, alice):
            await member.send("room join")
            assert await member.receive_text() == "joined"
        await bob.close()
        await alice.send("room shout")
        await alice.receive_error("internal_error")
        await still_usable(alice)
    assert len(client.server_errors) == 1


async def test_unknown_huge_event_name_is_not_amplified(real: bool) -> None:
    """A 1 MiB unknown event name gets an error far smaller than the command: no echo of the name."""
    app = make_app(max_message_size=2**21)
    async with TestClient(app, real=real) as client:
        alice = await client.connect()
        name = "\n" + "a" * 2**20
        await alice.send(name)
        error = await alice.receive_error("unknown_command")
        assert len(error.raw) < 1024
        assert error.payload["event"] == name[:128] + "…"
        await still_usable(alice)

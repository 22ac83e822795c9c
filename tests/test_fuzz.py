"""Property-based fuzzing of the envelope path: every frame is answered, and the next command works."""

import json
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from pydantic import BaseModel
from websockets.asyncio.server import ServerConnection

from websuckets import CommandGroup, Context, WebSuckets
from websuckets.testing import TestClient, TestConnection

ERRORS = {"invalid_json", "invalid_command", "unknown_command", "validation_error", "message_too_large"}

json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(max_size=20),
    lambda children: st.lists(children, max_size=4) | st.dictionaries(st.text(max_size=8), children, max_size=4),
    max_leaves=12,
)
commands = st.fixed_dictionaries(
    {},
    optional={
        "event": st.sampled_from(["x echo", "x ping", "nope"]) | st.text(max_size=30) | json_values,
        "payload": json_values | st.fixed_dictionaries({"n": json_values}),
        "token": st.text(max_size=10) | json_values,
        "id": st.integers() | st.text(max_size=200) | json_values,
    },
)
frames = (
    commands.map(lambda c: json.dumps(c, allow_nan=True))
    | json_values.map(json.dumps)
    | st.text(max_size=60)
    | st.binary(max_size=20)
    | st.sampled_from(
        ["NaN", '{"event": "x ping", "payload": 1e999}', "[" * 300, '{"event": "x ping", "id": ' + "9" * 50 + "}"]
    )
)


class Model(BaseModel):
    n: int


def make_app() -> WebSuckets:
    app = WebSuckets(rate_limit=None, max_message_size=4096)
    group = CommandGroup("x")

    @group.command("echo")
    async def echo(socket: ServerConnection, model: Model, ctx: Context) -> None:
        await ctx.reply("echoed", model.n)

    @group.command("ping")
    async def ping(socket: ServerConnection, ctx: Context) -> None:
        await ctx.reply("pong")

    app.include_command_group(group)
    return app


async def check(client: TestConnection, frame: str | bytes) -> None:
    await client.send_raw(frame)
    reply = await client.receive()
    assert reply.event in ("echoed", "pong") or reply.error_name in ERRORS, reply.raw
    assert len(reply.raw) < 2048, "a reply is never much larger than a bounded echo"
    assert (await client.request("x ping")).event == "pong"


async def fuzz(real: bool, examples: int) -> None:
    generated: list[Any] = []
    async with TestClient(make_app(), real=real) as client:
        connection = await client.connect()

        @settings(max_examples=examples, deadline=None, suppress_health_check=list(HealthCheck), database=None)
        @given(frames)
        def run(frame: str | bytes) -> None:
            generated.append(frame)  # collected, then driven below in the test's own loop

        run()
        for frame in generated:
            await check(connection, frame)


async def test_fuzz_in_memory() -> None:
    """A few thousand generated frames in memory: each gets its reply or error, and the app goes on."""
    await fuzz(real=False, examples=3000)


async def test_fuzz_over_a_real_socket() -> None:
    """A shorter run over a real socket on loopback."""
    await fuzz(real=True, examples=300)


@pytest.mark.slow
@pytest.mark.timeout(900)  # about 3 ms a frame, with the reply and a ping after it: a few minutes
async def test_fuzz_long() -> None:
    """100,000 generated frames in memory."""
    await fuzz(real=False, examples=100_000)

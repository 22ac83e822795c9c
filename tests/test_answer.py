"""A request answered with ``socket.send``: the command's id on the first event its handler sends back."""

from __future__ import annotations

import asyncio
from typing import Any
from unittest import mock

from dishka import FromDishka, Provider, make_async_container
from examples_loader import load_example
from pydantic import BaseModel
from websockets.asyncio.server import ServerConnection

import websuckets.answer
from websuckets import ClientEvent, CommandGroup, Context, Session, WebSuckets
from websuckets.client import connect
from websuckets.di import WebSucketsProvider
from websuckets.events import with_id
from websuckets.exc import InternalError
from websuckets.handlers import HandlerKind, analyse
from websuckets.testing import TestClient, TestConnection


class Text(BaseModel):
    text: str


def make_app() -> WebSuckets:
    """Handlers in the original documentation's style (no Context), and two that take one."""
    app = WebSuckets(container=make_async_container(Provider(), WebSucketsProvider()))
    group = CommandGroup()
    background: set[asyncio.Task[None]] = set()

    @group.command("twice")
    async def twice(socket: ServerConnection, model: Text) -> None:
        await socket.send(ClientEvent("first", model.text))
        await socket.send(ClientEvent("second", model.text))

    @group.command("tell")
    async def tell(socket: ServerConnection, model: Text) -> None:
        """Sends to every other client first, then to itself."""
        for user in list(Session.online.values()):
            if user.socket is not socket:
                await user.socket.send(ClientEvent("told", model.text))
        await socket.send(ClientEvent("done"))

    @group.command("later")
    async def later(socket: ServerConnection) -> None:
        """Answers from a task of its own, after it returned."""

        async def send() -> None:
            await asyncio.sleep(0.01)
            await socket.send(ClientEvent("later"))

        task = asyncio.create_task(send())
        background.add(task)
        task.add_done_callback(background.discard)

    @group.command("tagged")
    async def tagged(socket: ServerConnection) -> None:
        await socket.send(ClientEvent("tagged", id="mine"))
        await socket.send(ClientEvent("after"))

    @group.command("raw")
    async def raw(socket: ServerConnection) -> None:
        await socket.send('{"event":"raw","payload":null}')
        await socket.send(ClientEvent("after"))

    @group.command("fail")
    async def fail(socket: ServerConnection) -> None:
        raise InternalError("nope")

    @group.command("push then reply")
    async def push_then_reply(socket: ServerConnection, ctx: Context) -> None:
        await socket.send(ClientEvent("pushed"))
        await ctx.reply("replied")

    @group.command("injected context")
    async def injected_context(socket: ServerConnection, ctx: FromDishka[Context]) -> None:
        await socket.send(ClientEvent("pushed"))
        await ctx.reply("replied")

    app.include_command_group(group)
    return app


async def events(socket: TestConnection, count: int) -> list[tuple[str | None, Any, str | int | None]]:
    return [(r.event, r.payload, r.id) for r in [await socket.receive() for _ in range(count)]]


async def test_the_first_event_answers_and_only_it(real: bool) -> None:
    """A handler without Context: its first event carries the command's id, the next does not."""
    async with TestClient(make_app(), real=real) as client:
        alice = await client.connect()
        await alice.send("twice", {"text": "a"}, id=7)
        assert await events(alice, 2) == [("first", "a", 7), ("second", "a", None)]
        reply = await alice.request("twice", {"text": "b"})
        assert (reply.event, reply.payload) == ("first", "b")
        assert (await alice.receive()).id is None


async def test_a_command_without_id_is_not_stamped(real: bool) -> None:
    """Without an id nothing changes: the events go out as the handler built them."""
    async with TestClient(make_app(), real=real) as client:
        alice = await client.connect()
        await alice.send("twice", {"text": "a"})
        assert await events(alice, 2) == [("first", "a", None), ("second", "a", None)]
        assert "id" not in alice.history[0]


async def test_events_to_other_sockets_and_after_the_handler_are_not_stamped(real: bool) -> None:
    """Only the socket of the command, and only while its handler runs in its own task."""
    async with TestClient(make_app(), real=real) as client:
        alice, bob = await client.connect(), await client.connect()
        await alice.send("tell", {"text": "hi"}, id="t")
        assert await events(bob, 1) == [("told", "hi", None)]
        assert await events(alice, 1) == [("done", None, "t")]
        await alice.send("later", id=1)
        assert await events(alice, 1) == [("later", None, None)]
        await alice.send("twice", {"text": "x"}, id=2)  # the socket answers requests as before
        assert await events(alice, 2) == [("first", "x", 2), ("second", "x", None)]


async def test_a_first_message_that_is_not_a_plain_event_is_sent_as_it_is(real: bool) -> None:
    """An event with its own id, text built by hand, or an error: unchanged, and nothing after them is stamped."""
    async with TestClient(make_app(), real=real) as client:
        alice = await client.connect()
        await alice.send("tagged", id=1)
        assert await events(alice, 2) == [("tagged", None, "mine"), ("after", None, None)]
        await alice.send("raw", id=2)
        assert await events(alice, 2) == [("raw", None, None), ("after", None, None)]
        await alice.send("fail", id=3)
        error = await alice.receive()
        assert (error.error_name, error.answers, error.id) == ("nope", 3, None)


async def test_handlers_that_take_the_context_are_left_alone(real: bool) -> None:
    """A handler with Context (a parameter or FromDishka) replies with ctx.reply; its pushes keep no id."""
    async with TestClient(make_app(), real=real) as client:
        alice = await client.connect()
        for command in ("push then reply", "injected context"):
            await alice.send(command, id=command)
            assert await events(alice, 2) == [("pushed", None, None), ("replied", None, command)]


async def test_the_choice_is_made_at_start_up() -> None:
    """Commands of Context-taking handlers use the same chain with or without an id; a command without
    an id never enters websuckets.answer."""
    app = make_app()
    async with TestClient(app) as client:
        routes = app.dispatcher.routes
        assert routes["push then reply"].request_chain is routes["push then reply"].chain
        assert routes["injected context"].request_chain is routes["injected context"].chain
        assert routes["twice"].request_chain is not routes["twice"].chain
        alice = await client.connect()
        refuse = mock.Mock(side_effect=AssertionError("a command without an id was stamped"))
        with mock.patch.object(websuckets.answer, "answer", refuse):
            await alice.send("twice", {"text": "a"})
            assert await events(alice, 2) == [("first", "a", None), ("second", "a", None)]


def test_plans_know_whether_the_handler_takes_the_context() -> None:
    """CallPlan.takes_context: a Context parameter or FromDishka[Context]."""

    async def plain(socket: ServerConnection, model: Text) -> None: ...
    async def direct(socket: ServerConnection, ctx: Context) -> None: ...
    async def injected(socket: ServerConnection, ctx: FromDishka[Context]) -> None: ...

    taken = [analyse(handler, HandlerKind.COMMAND).takes_context for handler in (plain, direct, injected)]
    assert taken == [False, True, True]


def test_with_id_adds_the_id_to_the_same_text() -> None:
    """with_id gives the text that ClientEvent(..., id=...) would."""
    for id in (17, 'a"b', 0):
        assert with_id(ClientEvent("x", {"n": [1, None]}), id) == ClientEvent("x", {"n": [1, None]}, id=id)


async def test_the_readme_example_answers_the_python_clients_request() -> None:
    """The README's first example, served on 127.0.0.1, answers websuckets.client's request()."""
    app = load_example("quickstart.py").app
    async with app, app.serve("127.0.0.1", 0) as server:
        url = f"ws://127.0.0.1:{server.sockets[0].getsockname()[1]}/"
        async with connect(url, timeout=5.0) as client:
            reply = await client.request("user hello", {"nickname": "alice"})
            assert (reply.event, reply.payload) == ("greeting", "hello, alice")
            assert (await client.request("user hello", {"nickname": "bob"})).payload == "hello, bob"

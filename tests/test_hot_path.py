"""The per-message path runs only what was decided at start-up: counted work, not timings."""

from __future__ import annotations

import asyncio
import contextlib
import inspect
import subprocess
import sys
import typing
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any
from unittest import mock

import pytest
from dishka import AsyncContainer, FromDishka, Provider, Scope, make_async_container, provide
from pydantic import BaseModel, model_validator
from websockets.asyncio.connection import Connection
from websockets.asyncio.server import ServerConnection

import websuckets.middleware.chain
from websuckets import ClientEvent, CommandGroup, Context, WebSuckets, startup
from websuckets.dispatcher import Dispatcher
from websuckets.middleware import CommandTimeouts, RateLimit
from websuckets.testing import Received, TestClient, TestConnection

MESSAGES = 20


class Counted(BaseModel):
    """A payload model that counts how often pydantic validates it."""

    validations: typing.ClassVar[int] = 0
    n: int

    @model_validator(mode="before")
    @classmethod
    def count(cls, data: Any) -> Any:
        Counted.validations += 1
        return data


class Clock:
    pass


class Services(Provider):
    clock = provide(Clock, scope=Scope.REQUEST)


def make_app(*, container: bool) -> WebSuckets:
    app = WebSuckets(container=make_async_container(Services()) if container else None)
    group = CommandGroup("job")

    @group.command("plain")
    async def plain(socket: ServerConnection) -> None:
        await socket.send(ClientEvent("plain"))

    @group.command("model")
    async def with_model(socket: ServerConnection, model: Counted) -> None:
        await socket.send(ClientEvent("model", model.n))

    if container:

        @group.command("inject")
        async def inject(socket: ServerConnection, clock: FromDishka[Clock]) -> None:
            await socket.send(ClientEvent("inject"))

    app.include_command_group(group)
    return app


async def ask(socket: TestConnection, event: str, payload: Any = None) -> Received:
    await socket.send(event, payload)
    return await socket.receive()


@contextmanager
def counting_scopes() -> Iterator[list[Scope | None]]:
    """Every dishka scope entered, by its scope."""
    entered: list[Scope | None] = []
    original = AsyncContainer.__call__

    def enter(self: AsyncContainer, *args: Any, **kwargs: Any) -> Any:
        entered.append(kwargs.get("scope"))
        return original(self, *args, **kwargs)

    with mock.patch.object(AsyncContainer, "__call__", enter):
        yield entered


@contextmanager
def no_start_up_work() -> Iterator[None]:
    """Fail on signature inspection or chain building."""
    refuse = mock.Mock(side_effect=AssertionError("start-up work on the message path"))
    with (
        mock.patch.object(inspect, "signature", refuse),
        mock.patch.object(typing, "get_type_hints", refuse),
        mock.patch.object(websuckets.middleware.chain, "_link", refuse),
    ):
        yield


async def test_messages_build_no_chain_and_inspect_no_signature() -> None:
    """Chains and call plans are made when the app starts; messages only run them."""
    async with TestClient(make_app(container=True)) as client:
        socket = await client.connect()
        with no_start_up_work():
            for n in range(MESSAGES):
                for event, payload in (("job plain", None), ("job model", {"n": n}), ("job inject", None)):
                    reply = await ask(socket, event, payload)
                    assert reply.event == event.split()[1]


@pytest.mark.parametrize("container", [False, True])
async def test_a_handler_without_services_opens_no_scope(container: bool) -> None:
    """No SESSION scope per connection and no REQUEST scope per message where nothing is injected."""
    app = make_app(container=container)
    app.commands.pop("job inject", None)  # the app's only injecting handler: now nothing injects
    with counting_scopes() as entered:
        async with TestClient(app) as client:
            socket = await client.connect()
            for _ in range(MESSAGES):
                await ask(socket, "job plain")
    assert entered == []


async def test_an_injecting_handler_opens_one_request_scope_per_message() -> None:
    """One SESSION scope for the connection, one REQUEST scope per injecting command, none for others."""
    with counting_scopes() as entered:
        async with TestClient(make_app(container=True)) as client:
            socket = await client.connect()
            for _ in range(MESSAGES):
                await ask(socket, "job inject")
                await ask(socket, "job plain")
    assert entered.count(Scope.SESSION) == 1
    assert len(entered) == 1 + MESSAGES  # the REQUEST scopes are entered with the default (next) scope


async def test_each_payload_is_validated_once_and_only_for_handlers_with_a_model() -> None:
    """One pydantic validation per command that takes a model; none for one that takes none."""
    Counted.validations = 0
    async with TestClient(make_app(container=False)) as client:
        socket = await client.connect()
        for n in range(MESSAGES):
            assert (await ask(socket, "job model", {"n": n})).payload == n
            await ask(socket, "job plain", {"n": n})
    assert Counted.validations == MESSAGES


async def test_a_replaced_auth_middleware_runs_for_every_command() -> None:
    """Leaving the built-in authentication out of unprotected commands never drops a replacement."""
    seen: list[str] = []

    async def audit(ctx: Context, call_next: Any) -> None:
        seen.append(ctx.event)
        await call_next(ctx)

    app = WebSuckets(auth_middleware=audit)
    group = CommandGroup("job")

    @group.command("plain")
    async def plain(socket: ServerConnection) -> None:
        await socket.send(ClientEvent("plain"))

    app.include_command_group(group)
    async with TestClient(app) as client:
        socket = await client.connect()
        await ask(socket, "job plain")
    assert seen == ["job plain"]


@contextmanager
def counting_calls(*classes: type) -> Iterator[dict[str, int]]:
    """How often the middlewares of these classes run, by class name."""
    calls = {cls.__name__: 0 for cls in classes}
    with contextlib.ExitStack() as stack:
        for cls in classes:
            original = cls.__call__  # type: ignore[operator]

            def counted(self: Any, ctx: Context, call_next: Any, _original: Any = original) -> Any:
                calls[type(self).__name__] += 1
                return _original(self, ctx, call_next)

            stack.enter_context(mock.patch.object(cls, "__call__", counted))
        yield calls


@pytest.mark.parametrize(
    ("options", "expected"),
    [
        ({"rate_limit": None}, {"RateLimit": 0, "CommandTimeouts": 0}),
        ({"command_timeouts": CommandTimeouts(None, {"job model": 5})}, {"RateLimit": MESSAGES, "CommandTimeouts": 0}),
        ({"rate_limit": None, "command_timeouts": 5}, {"RateLimit": 0, "CommandTimeouts": MESSAGES}),
    ],
    ids=["rate-limit-off", "timeout-of-another-command", "timeouts-on"],
)
async def test_a_switched_off_middleware_is_not_in_the_chain(options: dict[str, Any], expected: dict[str, int]) -> None:
    """rate_limit=None, or no time limit for a command, leaves the middleware out: it runs for no message."""
    app = make_app(container=False)
    for name, value in options.items():
        setattr(app, name, CommandTimeouts(value) if isinstance(value, int) else value)
    with counting_calls(RateLimit, CommandTimeouts) as calls:
        async with TestClient(app) as client:
            socket = await client.connect()
            for _ in range(MESSAGES):
                await ask(socket, "job plain")
    assert calls == expected
    assert [type(m).__name__ for m in chain_of(app, "job plain") if isinstance(m, RateLimit | CommandTimeouts)] == [
        name for name, count in expected.items() if count
    ]


def chain_of(app: WebSuckets, command: str) -> list[object]:
    """The middlewares of a command's chain, outermost first, read from the steps `build_chain` made."""
    middlewares = []
    step: Any = startup.chain_for(app, app.commands[command])
    while step.__qualname__.startswith("chain("):
        closure = dict(zip(step.__code__.co_freevars, (cell.cell_contents for cell in step.__closure__), strict=True))
        middlewares.append(closure["middleware"])
        step = closure["call_next"]
    return middlewares


def test_importing_websuckets_imports_neither_dishka_nor_pydantic_models() -> None:
    """``import websuckets`` leaves dishka to apps that inject, and pydantic's models to apps that define some."""
    code = (
        "import sys, websuckets; print(sorted(m for m in ('dishka', 'pydantic', 'pydantic.main') if m in sys.modules))"
    )
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60, check=True)
    assert result.stdout.strip() == "[]"


def test_an_app_without_container_or_models_imports_no_dishka() -> None:
    """Registering and starting an app whose handlers inject nothing and take no model never imports dishka."""
    code = """
import asyncio, sys
from websockets.asyncio.server import ServerConnection
from websuckets import ClientEvent, CommandGroup, WebSuckets
from websuckets.testing import TestClient

app = WebSuckets()
group = CommandGroup("job")

@group.command("plain")
async def plain(socket: ServerConnection) -> None:
    await socket.send(ClientEvent("plain"))

app.include_command_group(group)

async def main() -> None:
    async with TestClient(app) as client:
        socket = await client.connect()
        await socket.send("job plain")
        assert (await socket.receive()).event == "plain"

asyncio.run(main())
print("dishka" in sys.modules)
"""
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60, check=True)
    assert result.stdout.strip() == "False"


@contextmanager
def counting_send_contexts() -> Iterator[list[object]]:
    """Every ``send_context`` that websockets enters (its generic send path), by connection."""
    entered: list[object] = []
    original = Connection.send_context

    def counted(self: Connection, *args: Any, **kwargs: Any) -> Any:
        entered.append(self)
        return original(self, *args, **kwargs)

    with mock.patch.object(Connection, "send_context", counted):
        yield entered


async def test_a_reply_enters_no_send_context() -> None:
    """A text reply on an open connection is framed and written without websockets' per-message context manager."""
    async with TestClient(make_app(container=False)) as client:
        socket = await client.connect()
        with counting_send_contexts() as entered:
            for n in range(MESSAGES):
                assert (await ask(socket, "job model", {"n": n})).payload == n
                assert (await ask(socket, "job plain")).event == "plain"
    server_side = [connection for connection in entered if isinstance(connection, ServerConnection)]
    assert server_side == []


@contextmanager
def counting_fairness_yields() -> Iterator[list[float]]:
    """The ``asyncio.sleep`` calls that the dispatcher's read loop makes (its fairness yields)."""
    yields: list[float] = []
    original = asyncio.sleep
    loop_code = Dispatcher._run.__code__

    def sleep(delay: float, *args: Any, **kwargs: Any) -> Any:
        if sys._getframe(1).f_code is loop_code:
            yields.append(delay)
        return original(delay, *args, **kwargs)

    with mock.patch.object(asyncio, "sleep", sleep):
        yield yields


async def test_a_connection_whose_next_frame_has_not_arrived_never_yields_on_top_of_waiting() -> None:
    """Request, reply, request: the read loop waits for each frame, which hands the loop over; no extra yield."""
    async with TestClient(make_app(container=False)) as client:
        socket = await client.connect()
        with counting_fairness_yields() as yields:
            for n in range(MESSAGES):
                assert (await ask(socket, "job model", {"n": n})).payload == n
    assert yields == []

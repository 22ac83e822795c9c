"""`Instrument` hooks: collected at start-up from the instruments that override them, and nothing else."""

from __future__ import annotations

from typing import Any

import pytest
from pydantic import BaseModel
from websockets.asyncio.server import ServerConnection

from websuckets import CallNext, CommandGroup, Context, InternalError, WebSuckets, startup
from websuckets.context import Connection
from websuckets.dispatcher import Listeners
from websuckets.exc import PayloadInvalid
from websuckets.instrument import Instrument
from websuckets.middleware import map_errors, mark, parse_payload
from websuckets.testing import TestClient


class Name(BaseModel):
    name: str


def make_app(**options: Any) -> WebSuckets:
    app = WebSuckets(**options)
    group = CommandGroup()

    @group.command("hello")
    async def hello(socket: ServerConnection, model: Name, ctx: Context) -> None:
        await ctx.reply("hi", model.name)

    @group.command("secret", protected=True)
    async def secret(socket: ServerConnection) -> None:
        pass

    @group.command("crash")
    async def crash(socket: ServerConnection) -> None:
        raise RuntimeError("bug")

    app.include_command_group(group)
    return app


class Heard(Instrument):
    """Overrides the three dispatcher hooks and writes down what it hears."""

    def __init__(self) -> None:
        self.ready: list[Connection] = []
        self.refused: list[str] = []
        self.errors: list[tuple[BaseException, str]] = []

    def connection_ready(self, connection: Connection) -> None:
        self.ready.append(connection)

    def frame_refused(self, connection: Connection, error: InternalError) -> None:
        self.refused.append(error.name)

    def unexpected_error(self, error: BaseException, where: str) -> None:
        self.errors.append((error, where))


class OnlyRefusals(Instrument):
    def frame_refused(self, connection: Connection, error: InternalError) -> None:
        pass


async def test_an_instrument_hears_ready_connections_refused_frames_and_unexpected_errors(
    caplog: pytest.LogCaptureFixture,
) -> None:
    """Each overridden hook is told of its event: a connection once ready, a frame refused, a handler's bug."""
    caplog.set_level("CRITICAL", logger="websuckets")  # the crash's traceback is expected
    heard = Heard()
    app = make_app()
    app.add_instrument(heard)
    async with TestClient(app, raise_server_exceptions=False) as client:
        alice = await client.connect()
        assert [connection.socket.id for connection in heard.ready] == [alice.client_id]
        await alice.send("nobody")
        await alice.receive_error("unknown_command")
        await alice.send_raw("not json")
        await alice.receive_error("invalid_json")
        await alice.send("crash")
        await alice.receive_error("internal_error")
        client.server_errors.clear()
    assert heard.refused == ["unknown_command", "invalid_json"]
    [(error, where)] = heard.errors
    assert isinstance(error, RuntimeError)
    assert where == "command 'crash'"


async def test_only_the_hooks_an_instrument_overrides_are_collected() -> None:
    """An app without instruments has empty hook tuples; an instrument is listed only for the hooks it overrides."""
    app = make_app()
    async with app:
        assert app.dispatcher.listeners == Listeners((), (), ())
    app, only, heard = make_app(), OnlyRefusals(), Heard()
    for instrument in (Instrument(), only, heard):
        app.add_instrument(instrument)
    async with app:
        assert app.dispatcher.listeners == Listeners(
            (heard.connection_ready,), (only.frame_refused, heard.frame_refused), (heard.unexpected_error,)
        )


async def test_the_test_client_leaves_the_apps_instruments_as_it_found_them() -> None:
    """TestClient listens through an instrument of its own, for the test only."""
    heard = Heard()
    app = make_app()
    app.add_instrument(heard)
    async with TestClient(app) as client:
        await client.connect()
    assert app.instruments == [heard]
    async with TestClient(app) as client:  # the app runs again, with one listener of the client's
        await client.connect()
        assert len(app.dispatcher.listeners.connection_ready) == 2
    assert len(heard.ready) == 2


def chain_of(app: WebSuckets, command: str) -> list[object]:
    """The middlewares of a command's chain, outermost first, read from the steps `build_chain` made."""
    middlewares = []
    step: Any = startup.chain_for(app, app.commands[command])
    while step.__qualname__.startswith("chain("):
        closure = dict(zip(step.__code__.co_freevars, (cell.cell_contents for cell in step.__closure__), strict=True))
        middlewares.append(closure["middleware"])
        step = closure["call_next"]
    return middlewares


async def test_a_validation_middleware_of_your_own_fuses_into_the_handlers_step() -> None:
    """A validation middleware marked ``fuses_into_endpoint`` is no step: its parser runs in the handler's step."""
    parsed: list[object] = []

    def parse_counting(model: type[BaseModel], payload: object) -> BaseModel:
        parsed.append(payload)
        return parse_payload(model, payload)

    @mark(fuses_into_endpoint=parse_counting)
    async def my_validation(ctx: Context, call_next: CallNext) -> None:
        raise AssertionError("fused: never called as a middleware")

    app = make_app(validation_middleware=my_validation, rate_limit=None)
    assert chain_of(app, "hello") == [map_errors]
    async with TestClient(app) as client:
        alice = await client.connect()
        await alice.send("hello", {"name": "a"})
        assert (await alice.receive()).payload == "a"
        await alice.send("hello", {})
        await alice.receive_error(PayloadInvalid.code)
    assert parsed == [{"name": "a"}, {}]


async def test_an_unmarked_validation_middleware_keeps_its_step() -> None:
    """Without the mark, the validation middleware is a step of the chain, innermost."""

    async def my_validation(ctx: Context, call_next: CallNext) -> None:
        await call_next(ctx)

    app = make_app(validation_middleware=my_validation, rate_limit=None)
    assert chain_of(app, "hello") == [map_errors, my_validation]


async def test_a_middleware_that_applies_to_some_commands_is_left_out_of_the_others() -> None:
    """``applies_to`` decides, at start-up, which chains a middleware is in: the built-in authentication's way."""

    @mark(applies_to=lambda command: command.protected)
    async def audit(ctx: Context, call_next: CallNext) -> None:
        await call_next(ctx)

    app = make_app(rate_limit=None)
    app.add_middleware(audit)
    assert audit not in chain_of(app, "hello")
    assert chain_of(app, "secret")[-1] is audit
    assert [m.__name__ for m in chain_of(app, "secret")] == ["map_errors", "authenticate", "audit"]  # type: ignore[attr-defined]

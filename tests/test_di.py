"""Dependency injection with dishka: scopes per app, connection and command; fakes in tests."""

from collections.abc import AsyncIterator
from dataclasses import dataclass, field

import pytest
from dishka import AsyncContainer, FromDishka, Provider, Scope, make_async_container, provide
from websockets.asyncio.server import ServerConnection

from websuckets import ClientEvent, CommandGroup, Context, User, WebSuckets
from websuckets.di import WebSucketsProvider
from websuckets.exc import AppStateError
from websuckets.testing import TestClient


@dataclass
class Journal:
    """APP scope: records what happened, so tests can look."""

    events: list[str] = field(default_factory=list)


@dataclass
class Counter:
    """SESSION scope: one per connection."""

    value: int = 0


@dataclass
class Transaction:
    """REQUEST scope: one per command, finalized after it."""

    journal: Journal
    event: str


class Greeter:
    def greet(self, name: str) -> str:
        return f"hello, {name}"


class FakeGreeter(Greeter):
    def greet(self, name: str) -> str:
        return f"fake hello, {name}"


class AppProvider(Provider):
    greeter = provide(Greeter, scope=Scope.APP)

    @provide(scope=Scope.APP)
    def journal(self) -> Journal:
        return Journal()

    @provide(scope=Scope.SESSION)
    async def counter(self, journal: Journal, socket: ServerConnection) -> AsyncIterator[Counter]:
        journal.events.append("session opened")
        yield Counter()
        journal.events.append("session closed")

    @provide(scope=Scope.REQUEST)
    async def transaction(self, journal: Journal, ctx: Context) -> AsyncIterator[Transaction]:
        yield Transaction(journal, ctx.event)
        journal.events.append(f"committed {ctx.event}")


class FakeProvider(Provider):
    greeter = provide(FakeGreeter, provides=Greeter, scope=Scope.APP)


def make_container(*extra: Provider) -> AsyncContainer:
    return make_async_container(AppProvider(), WebSucketsProvider(), *extra)


group = CommandGroup()
seen: dict[str, object] = {}


@group.command("count")
async def count(socket: ServerConnection, counter: FromDishka[Counter]) -> None:
    counter.value += 1
    await socket.send(ClientEvent("count", counter.value))


@group.command("write")
async def write(socket: ServerConnection, tx: FromDishka[Transaction], journal: FromDishka[Journal]) -> None:
    journal.events.append(f"writing {tx.event}")
    await socket.send(ClientEvent("written"))


@group.command("greet")
async def greet(socket: ServerConnection, greeter: FromDishka[Greeter]) -> None:
    await socket.send(ClientEvent("greeting", greeter.greet("alice")))


@group.command("who")
async def who(
    socket: ServerConnection, injected: FromDishka[ServerConnection], user: FromDishka[User], ctx: FromDishka[Context]
) -> None:
    seen.update(injected=injected, socket=socket, user=user, ctx=ctx)
    await socket.send(ClientEvent("you", str(injected.id)))


@group.command("keywords")
async def keywords(socket: ServerConnection, *, ctx: Context, counter: FromDishka[Counter]) -> None:
    counter.value += 10
    await ctx.reply("keywords", counter.value)


@group.command("plain")
async def plain(socket: ServerConnection, ctx: Context) -> None:
    await ctx.reply("plain")


def make_app(container: AsyncContainer | None = None) -> WebSuckets:
    app = WebSuckets(container=container or make_container())
    app.include_command_group(group)
    return app


async def test_session_scope_keeps_state_per_connection(real: bool) -> None:
    """A SESSION-scoped service lives as long as its connection: two clients count separately."""
    async with TestClient(make_app(), real=real) as client:
        alice, bob = await client.connect(), await client.connect()
        for expected in (1, 2, 3):
            await alice.send("count")
            assert (await alice.receive()).payload == expected
        await bob.send("count")
        assert (await bob.receive()).payload == 1


async def test_keyword_only_parameters_are_passed_by_name(real: bool) -> None:
    """Keyword-only parameters, injected or not, reach the handler by name."""
    async with TestClient(make_app(), real=real) as client:
        alice = await client.connect()
        await alice.send("keywords", id=1)
        reply = await alice.receive()
        assert (reply.payload, reply.id) == (10, 1)


async def test_session_finalizer_runs_on_disconnect(real: bool) -> None:
    """Closing a connection closes its SESSION scope, running the service's finalizer."""
    container = make_container()
    journal = await container.get(Journal)
    async with TestClient(make_app(container), real=real) as client:
        alice = await client.connect()
        await alice.send("count")
        await alice.receive()
        assert journal.events == ["session opened"]
        await alice.close()
        assert journal.events == ["session opened", "session closed"]


async def test_request_scope_is_finalized_after_every_command(real: bool) -> None:
    """A REQUEST-scoped service is created per command and finalized when the handler returns."""
    container = make_container()
    journal = await container.get(Journal)
    async with TestClient(make_app(container), real=real) as client:
        alice = await client.connect()
        for _ in range(2):
            await alice.send("write")
            await alice.receive()
        assert journal.events == ["writing write", "committed write"] * 2


async def test_provider_override_swaps_a_service_for_a_fake(real: bool) -> None:
    """A test builds the container with a fake provider last: handlers get the fake."""
    async with TestClient(make_app(), real=real) as client:
        alice = await client.connect()
        await alice.send("greet")
        assert (await alice.receive()).payload == "hello, alice"
    app = make_app()
    async with TestClient(app, real=real, container=make_container(FakeProvider())) as client:
        alice = await client.connect()
        await alice.send("greet")
        assert (await alice.receive()).payload == "fake hello, alice"


async def test_websuckets_provider_gives_the_same_objects(real: bool) -> None:
    """The injected connection is the handler's socket; User and Context are the connection's."""
    async with TestClient(make_app(), real=real) as client:
        alice = await client.connect()
        await alice.send("who")
        assert (await alice.receive()).payload == str(alice.client_id)
    assert seen["injected"] is seen["socket"]
    assert seen["user"].socket is seen["socket"]  # type: ignore[attr-defined]
    assert seen["ctx"].event == "who"  # type: ignore[attr-defined]


async def test_handler_without_services_opens_no_request_scope(monkeypatch: pytest.MonkeyPatch) -> None:
    """Only handlers that inject open a REQUEST scope; the others leave the container alone."""
    opened: list[object] = []
    enter_scope = AsyncContainer.__call__

    def counting(self: AsyncContainer, *args: object, **kwargs: object) -> AsyncContainer:
        opened.append(kwargs.get("scope"))
        return enter_scope(self, *args, **kwargs)  # type: ignore[arg-type]

    monkeypatch.setattr(AsyncContainer, "__call__", counting)
    async with TestClient(make_app()) as client:
        alice = await client.connect()
        assert opened == [Scope.SESSION]
        await alice.request("plain")
        assert opened == [Scope.SESSION]
        await alice.send("write")
        await alice.receive()
        assert opened == [Scope.SESSION, None]  # None: the next scope down, REQUEST


async def test_app_closes_its_container_on_stop() -> None:
    """Stopping the app runs the APP scope's finalizers."""
    closed: list[str] = []

    class Closing(Provider):
        @provide(scope=Scope.APP)
        async def journal(self) -> AsyncIterator[Journal]:
            yield Journal()
            closed.append("app closed")

    app = WebSuckets(container=make_async_container(Closing()))
    async with app:
        await app.container.get(Journal)  # type: ignore[union-attr]
    assert closed == ["app closed"]


async def test_injecting_without_a_container_fails_at_start() -> None:
    """A handler asking for services in an app with no container is refused when the app starts."""
    app = WebSuckets()
    app.include_command_group(group)
    with pytest.raises(AppStateError, match=r"count \(count\) takes FromDishka parameters"):
        async with app:
            pass


async def test_container_without_injecting_handlers_opens_no_session_scope() -> None:
    """When nothing injects, connections open no SESSION scope even if the app has a container."""
    plain_group = CommandGroup()

    @plain_group.command("scope")
    async def scope(socket: ServerConnection, ctx: Context) -> None:
        await ctx.reply("scope", repr(ctx.connection.container))

    app = WebSuckets(container=make_container())
    app.include_command_group(plain_group)
    async with TestClient(app) as client:
        alice = await client.connect()
        await alice.send("scope")
        assert (await alice.receive()).payload == "None"


async def test_no_container_needed_without_services(real: bool) -> None:
    """Apps whose handlers inject nothing run without dishka, as the original documentation shows."""
    plain_group = CommandGroup()

    @plain_group.command("hi")
    async def hi(socket: ServerConnection) -> None:
        await socket.send("hi")

    app = WebSuckets()
    app.include_command_group(plain_group)
    async with TestClient(app, real=real) as client:
        alice = await client.connect()
        await alice.send("hi")
        assert await alice.receive_text() == "hi"
